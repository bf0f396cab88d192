//! End to end: what the guests of one host (`run --guests DIR`) can do to each other, and what
//! the folder itself can do to the host. Each attack is one comment line; each was seen to break
//! a host before admission judged guests across the folder:
//! - two guests, each legal alone, whose kinds form a cycle (a fork loop);
//! - settings that would widen the admin's flags;
//! - two guests racing for one child name;
//! - a FIFO in the folder (a blocked read, a host that ignores SIGTERM).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use e2e::folder::{add_guest, serve_folder, with_podtatohead_crd, write_file};
use e2e::paths::{podtatohead_guest, potatohead_guest, test_guest, workspace_root};
use e2e::{
    CONVERGE, HostProcess, TestNamespace, eventually, metric_value, podtatohead_api, potatohead_api,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, DynamicObject, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

/// Waits until the guest `name` has been refused for `reason` at least once.
async fn wait_refused(host: &HostProcess, name: &str, reason: &str) {
    let series = format!(r#"reconciler_guest_refusals_total{{reason="{reason}",guest="{name}"}}"#);
    eventually(CONVERGE, &format!("{name} refused: {reason}"), || async {
        let metrics = host.http_get("/metrics").await.1;
        match metric_value(&metrics, &series) {
            Some(n) if n >= 1.0 => Ok(()),
            _ => Err(metrics
                .lines()
                .filter(|l| l.starts_with("reconciler_guest_refusals_total"))
                .collect::<Vec<_>>()
                .join("\n")),
        }
    })
    .await;
}

/// Waits until `/readyz` lists `line`.
async fn wait_readyz_lists(host: &HostProcess, line: &str) {
    eventually(CONVERGE, &format!("/readyz lists {line:?}"), || async {
        match host.http_get("/readyz").await {
            (_, body) if body.contains(line) => Ok(()),
            (status, body) => Err(format!("{status}: {body}")),
        }
    })
    .await;
}

// Attack: guest A (ConfigMap → ServiceAccount) and guest B (ServiceAccount → ConfigMap), each
// legal alone, make one object from another without end.
#[tokio::test(flavor = "multi_thread")]
async fn two_guests_whose_kinds_form_a_cycle_cannot_serve_together() {
    let (plane, client) = with_podtatohead_crd().await;
    let namespace = TestNamespace::create(&client, "cycle").await.name;
    let folder = tempfile::tempdir().unwrap();
    add_guest(
        folder.path(),
        "a-configmaps.wasm",
        &test_guest("configmap_echo_guest"),
    );
    add_guest(
        folder.path(),
        "b-serviceaccounts.wasm",
        &test_guest("serviceaccount_echo_guest"),
    );
    let host = serve_folder(
        plane,
        folder.path(),
        &namespace,
        &["--allow-builtin-parent-kind"],
    );
    wait_refused(&host, "b-serviceaccounts", "kind_cycle").await;
    assert!(
        host.log().contains("close a cycle (ServiceAccount (guest b-serviceaccounts) → ConfigMap (guest a-configmaps) → ServiceAccount)"),
        "{}",
        host.log()
    );

    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), &namespace);
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &namespace);
    let seed: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "seed" }, "data": { "k": "v" } }))
            .unwrap();
    config_maps
        .create(&PostParams::default(), &seed)
        .await
        .unwrap();
    eventually(CONVERGE, "the seed's ServiceAccount", || async {
        accounts
            .get("seed-echo")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
    // Time enough for a loop to show: one echo per reconcile, a few a second.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let names: BTreeSet<String> = config_maps
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["seed".to_string()]),
        "no ConfigMap made from the seed's ServiceAccount"
    );

    // The first guest goes: the cycle with it, so the second starts.
    std::fs::remove_file(folder.path().join("a-configmaps.wasm")).unwrap();
    wait_readyz_lists(&host, "[+]guest b-serviceaccounts ok (contract 0.1.0)").await;
    eventually(CONVERGE, "the ServiceAccount's ConfigMap", || async {
        config_maps
            .get("seed-echo-echo")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
}

// Attack: settings that raise a guest's memory above the budget's reach stalled every guest of
// the host; `allowed-child-kinds: []` once meant "any kind".
#[tokio::test(flavor = "multi_thread")]
async fn settings_that_would_widen_the_flags_refuse_their_guest_and_the_others_serve() {
    let (plane, client) = with_podtatohead_crd().await;
    let namespace = TestNamespace::create(&client, "widen").await.name;
    let folder = tempfile::tempdir().unwrap();
    add_guest(folder.path(), "potatohead.wasm", &potatohead_guest());
    write_file(folder.path(), "potatohead.yaml", "memory-mib: 300\n");
    add_guest(folder.path(), "podtatohead.wasm", &podtatohead_guest());
    let host = serve_folder(plane, folder.path(), &namespace, &[]);
    wait_refused(&host, "potatohead", "settings").await;
    wait_readyz_lists(&host, "[+]guest podtatohead ok").await;
    podtatohead_api(&client, &namespace)
        .create(
            &PostParams::default(),
            &e2e::sample_podtatohead(&namespace, "talk"),
        )
        .await
        .unwrap();
    e2e::ready_reason(
        &podtatohead_api(&client, &namespace),
        "talk",
        "PartsNotReady",
        CONVERGE,
    )
    .await;

    write_file(
        folder.path(),
        "potatohead.yaml",
        "allowed-child-kinds: []\n",
    );
    wait_refused(&host, "potatohead", "kind_not_allowed").await;
    write_file(folder.path(), "potatohead.yaml", "memory-mib: 32\n");
    wait_readyz_lists(&host, "[+]guest potatohead ok").await;
    e2e::create_sample_potatohead(&client, &namespace, "demo").await;
    e2e::ready_reason(
        &potatohead_api(&client, &namespace),
        "demo",
        "PartsNotReady",
        CONVERGE,
    )
    .await;
    let metrics = host.http_get("/metrics").await.1;
    assert!(
        !metrics
            .contains(r#"reconciler_guest_refusals_total{reason="settings",guest="potatohead"}"#),
        "the refusals of a guest that now serves are forgotten: {metrics}"
    );
}

/// Thirty pairs of parents, one of each guest, that want one ConfigMap name each: Greeting `rN`
/// (recipient `echo`) wants `rN-echo`, and so does ServiceAccount `rN`. A ConfigMap has no
/// immutable field that would make the second write fail (a Deployment's selector does).
const RACING_PAIRS: usize = 30;

fn greetings(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("examples.wasm-reconciler.io", "v1alpha1", "Greeting"),
        "greetings",
    );
    Api::namespaced_with(client.clone(), namespace, &resource)
}

// Attack: two guests' parents racing for one child name flipped 24 of 30 owner references.
#[tokio::test(flavor = "multi_thread")]
async fn two_guests_racing_for_one_child_name_end_with_one_owner_each() {
    let (plane, client) = with_podtatohead_crd().await;
    plane
        .install_crd(&workspace_root().join("examples/greeting-js/crd.yaml"))
        .await
        .unwrap();
    let namespace = TestNamespace::create(&client, "race").await.name;
    // Every pair exists before the host starts, so both guests reconcile all of them at once.
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &namespace);
    let pp = PostParams::default();
    for i in 0..RACING_PAIRS {
        let greeting: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "examples.wasm-reconciler.io/v1alpha1",
            "kind": "Greeting",
            "metadata": { "name": format!("r{i}"), "namespace": namespace },
            "spec": { "message": "Hello", "recipients": ["echo"] },
        }))
        .unwrap();
        greetings(&client, &namespace)
            .create(&pp, &greeting)
            .await
            .unwrap();
        let account: ServiceAccount =
            serde_json::from_value(json!({ "metadata": { "name": format!("r{i}") } })).unwrap();
        accounts.create(&pp, &account).await.unwrap();
    }
    // Every controller owner each ConfigMap ever had, as the watch saw them.
    let owners: std::sync::Arc<std::sync::Mutex<BTreeMap<String, BTreeSet<String>>>> =
        Default::default();
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), &namespace);
    let watching = {
        let owners = std::sync::Arc::clone(&owners);
        let stream = watcher(config_maps, watcher::Config::default()).applied_objects();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(Ok(config_map)) = stream.next().await {
                let controller = config_map
                    .owner_references()
                    .iter()
                    .find(|o| o.controller == Some(true))
                    .map(|o| format!("{}/{}", o.kind, o.name));
                if let Some(controller) = controller {
                    owners
                        .lock()
                        .unwrap()
                        .entry(config_map.name_any())
                        .or_default()
                        .insert(controller);
                }
            }
        })
    };
    let folder = tempfile::tempdir().unwrap();
    add_guest(
        folder.path(),
        "greetings.wasm",
        &workspace_root().join("target/wasm32-wasip2/release/greeting_rust_guest.wasm"),
    );
    add_guest(
        folder.path(),
        "serviceaccounts.wasm",
        &test_guest("serviceaccount_echo_guest"),
    );
    let _host = serve_folder(
        plane,
        folder.path(),
        &namespace,
        &["--allow-builtin-parent-kind"],
    );
    eventually(CONVERGE, "every contested ConfigMap exists", || async {
        let seen = owners.lock().unwrap().len();
        if seen >= RACING_PAIRS {
            Ok(())
        } else {
            Err(format!("{seen} of {RACING_PAIRS}"))
        }
    })
    .await;
    // Let every parent be reconciled again a few times (the losers retry with backoff).
    tokio::time::sleep(Duration::from_secs(10)).await;
    watching.abort();
    let owners = owners.lock().unwrap().clone();
    let flipped: Vec<_> = owners.iter().filter(|(_, seen)| seen.len() > 1).collect();
    assert!(
        flipped.is_empty(),
        "{} of {} contested ConfigMaps changed owner: {flipped:?}",
        flipped.len(),
        owners.len()
    );
}

// Attack: a FIFO named x.wasm froze the folder watch (a removed guest kept serving) and, once
// SIGTERM came, the host never exited (a thread blocked in its read).
#[tokio::test(flavor = "multi_thread")]
async fn a_fifo_in_the_folder_blocks_neither_the_folder_nor_the_stop() {
    let (plane, client) = with_podtatohead_crd().await;
    let namespace = TestNamespace::create(&client, "fifo").await.name;
    let folder = tempfile::tempdir().unwrap();
    add_guest(folder.path(), "potatohead.wasm", &potatohead_guest());
    add_guest(folder.path(), "podtatohead.wasm", &podtatohead_guest());
    let mkfifo = |name: &str| {
        let path = folder.path().join(name);
        let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    };
    mkfifo("x.wasm");
    mkfifo("podtatohead.yaml");
    let mut host = serve_folder(plane, folder.path(), &namespace, &[]);
    wait_readyz_lists(&host, "[+]guest potatohead ok").await;
    wait_refused(&host, "x", "unusable").await;
    wait_refused(&host, "podtatohead", "settings").await;
    assert!(
        host.log().contains("it is a FIFO, not a regular file"),
        "{}",
        host.log()
    );

    // The folder is still followed: a removed guest stops, and the FIFO's series go with it.
    std::fs::remove_file(folder.path().join("potatohead.wasm")).unwrap();
    std::fs::remove_file(folder.path().join("x.wasm")).unwrap();
    eventually(
        Duration::from_secs(20),
        "the removed guest gone from /readyz",
        || async {
            match host.http_get("/readyz").await {
                (_, body) if !body.contains("guest potatohead") => Ok(()),
                (status, body) => Err(format!("{status}: {body}")),
            }
        },
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "the FIFO's refusal forgotten",
        || async {
            let metrics = host.http_get("/metrics").await.1;
            if metrics.contains(r#"guest="x""#) {
                Err(metrics)
            } else {
                Ok(())
            }
        },
    )
    .await;
    let status = host.terminate(Duration::from_secs(20));
    assert!(
        status.is_some(),
        "the host did not exit within 20 s of SIGTERM"
    );
}
