//! End to end: one host serving a folder of guests (`run --guests DIR`), the way the operator's
//! ConfigMap of guests mounts them: the default guest (PotatoHead) and the seed operator's own
//! API (PodTatoHead) side by side in one process over shared child caches, a guest added while
//! the host runs, a second guest for a parent kind refused, a removed guest leaving its parents
//! and children alone, and a guest whose CRD is missing neither stopping the others nor the host,
//! holding its kind while it waits, picked up once its CRD is installed, and reporting its CRD's
//! deletion while the others keep serving.

use std::time::Duration;

use e2e::folder::{add_guest, serve_folder, with_podtatohead_crd};
use e2e::paths::{podtatohead_guest, potatohead_guest, workspace_root};
use e2e::{
    CONVERGE, HostProcess, TestNamespace, by_name, eventually, image_of, metric_value,
    podtatohead_api, potatohead_api, ready_reason, sample_podtatohead, sample_potatohead,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use serde_json::json;

/// A failing parent watch is retried with backoff: noticing a deleted CRD, or its return, can take
/// a while.
const WATCH_RETRY: Duration = Duration::from_secs(90);

/// Waits until the host has refused the guest `name` as a second guest for a parent kind.
async fn wait_refused_as_duplicate(host: &HostProcess, name: &str) {
    let refused = format!(
        r#"reconciler_guest_refusals_total{{reason="duplicate_parent_kind",guest="{name}"}}"#
    );
    eventually(
        CONVERGE,
        &format!("{name} refused as a duplicate"),
        || async {
            match metric(host, &refused).await {
                Some(n) if n >= 1.0 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

/// Waits until `/readyz` answers 200: every guest of the host serving.
async fn wait_ready(host: &HostProcess, within: Duration, what: &str) {
    eventually(within, what, || async {
        match host.http_get("/readyz").await {
            (200, body) => Ok(body),
            (status, body) => Err(format!("{status}: {body}")),
        }
    })
    .await;
}

/// The Deployments of `namespace` owned by a parent of `kind`, by name.
async fn deployments_of(client: &Client, namespace: &str, kind: &str) -> Vec<String> {
    by_name::<Deployment>(client, namespace)
        .await
        .into_iter()
        .filter(|(_, d)| d.owner_references().iter().any(|o| o.kind == kind))
        .map(|(name, _)| name)
        .collect()
}

async fn wait_for_deployments(client: &Client, namespace: &str, kind: &str, count: usize) {
    eventually(
        CONVERGE,
        &format!("{count} Deployments of the {kind}"),
        || async {
            match deployments_of(client, namespace, kind).await {
                found if found.len() == count => Ok(()),
                found => Err(format!("{found:?}")),
            }
        },
    )
    .await;
}

/// The sample PotatoHead `demo`, created and converged (its 6 Deployments exist).
async fn create_demo(client: &Client, namespace: &str) {
    e2e::create_sample_potatohead(client, namespace, "demo").await;
    wait_for_deployments(client, namespace, "PotatoHead", 6).await;
}

/// A host serving the hostile guest (with its own `timeout`) beside the PodTatoHead guest in a
/// fresh namespace, with `extra` flags: the client, the namespace, the folder and the host.
async fn hostile_beside_podtatohead(
    prefix: &str,
    timeout: &str,
    extra: &[&str],
) -> (Client, String, tempfile::TempDir, HostProcess) {
    let (plane, client) = with_podtatohead_crd().await;
    let namespace = TestNamespace::create(&client, prefix).await.name;
    let folder = tempfile::tempdir().unwrap();
    add_guest(
        folder.path(),
        "hostile.wasm",
        &e2e::paths::test_guest("hostile_guest"),
    );
    std::fs::write(
        folder.path().join("hostile.yaml"),
        format!("timeout: {timeout}\n"),
    )
    .unwrap();
    add_guest(folder.path(), "podtatohead.wasm", &podtatohead_guest());
    let host = serve_folder(plane, folder.path(), &namespace, extra);
    (client, namespace, folder, host)
}

async fn metric(host: &HostProcess, series: &str) -> Option<f64> {
    metric_value(&host.http_get("/metrics").await.1, series)
}

#[tokio::test(flavor = "multi_thread")]
async fn one_host_serves_a_folder_of_guests_each_for_its_own_api() {
    let (plane, client) = with_podtatohead_crd().await;
    let namespace = TestNamespace::create(&client, "folder").await.name;
    let folder = tempfile::tempdir().unwrap();
    add_guest(folder.path(), "potatohead.wasm", &potatohead_guest());
    let host = serve_folder(plane, folder.path(), &namespace, &[]);

    // The first guest serves; the second is added while the host runs.
    create_demo(&client, &namespace).await;
    let podtatoheads = podtatohead_api(&client, &namespace);
    podtatoheads
        .create(
            &PostParams::default(),
            &sample_podtatohead(&namespace, "talk"),
        )
        .await
        .unwrap();
    add_guest(folder.path(), "podtatohead.wasm", &podtatohead_guest());
    wait_for_deployments(&client, &namespace, "PodTatoHead", 4).await;
    eventually(CONVERGE, "/readyz reports both guests", || async {
        match host.http_get("/readyz").await {
            (200, body)
                if body.contains("[+]guest potatohead ok")
                    && body.contains("[+]guest podtatohead ok") =>
            {
                Ok(())
            }
            (status, body) => Err(format!("{status}: {body}")),
        }
    })
    .await;
    let metrics = host.http_get("/metrics").await.1;
    for guest in ["potatohead", "podtatohead"] {
        assert!(
            metric_value(
                &metrics,
                &format!("reconciler_guest_info{{guest=\"{guest}\"}}")
            ) == Some(1.0),
            "{guest}: {metrics}"
        );
        // Ready means listed, not reconciled: the first reconcile may still be writing its status.
        let series = format!("reconciler_reconciles_total{{result=\"success\",guest=\"{guest}\"}}");
        eventually(
            CONVERGE,
            &format!("{guest}: a successful reconcile counted"),
            || async {
                match metric(&host, &series).await {
                    Some(n) if n >= 1.0 => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
    }

    // Its Events name the guest that published them.
    let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(client.clone(), &namespace);
    eventually(CONVERGE, "an Event of the PodTatoHead guest", || async {
        let list = events.list(&Default::default()).await.unwrap();
        let instances: Vec<_> = list
            .items
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some("PodTatoHead"))
            .map(|e| e.reporting_instance.clone().unwrap_or_default())
            .collect();
        if !instances.is_empty() && instances.iter().all(|i| i == "wasm-reconciler/podtatohead") {
            Ok(())
        } else {
            Err(format!("{instances:?}"))
        }
    })
    .await;

    // Each guest manages drift and recreates its deleted children.
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    deployments
        .patch(
            "podtato-hats",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "podtato-hats" },
                "spec": { "replicas": 3 },
            })),
        )
        .await
        .unwrap();
    let services = Api::<Service>::namespaced(client.clone(), &namespace);
    let demo_service = by_name::<Service>(&client, &namespace)
        .await
        .into_keys()
        .find(|name| name.starts_with("demo-"))
        .unwrap();
    let old_uid = services.get(&demo_service).await.unwrap().uid();
    services
        .delete(&demo_service, &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        CONVERGE,
        "drift corrected and the Service recreated",
        || async {
            let replicas = deployments
                .get("podtato-hats")
                .await
                .unwrap()
                .spec
                .and_then(|s| s.replicas);
            let service = services.get_opt(&demo_service).await.unwrap();
            match (replicas, service) {
                (Some(1), Some(s)) if s.uid() != old_uid => Ok(()),
                (replicas, s) => Err(format!(
                    "replicas {replicas:?}, Service {:?}",
                    s.map(|s| s.uid())
                )),
            }
        },
    )
    .await;

    // An invalid spec of one API is reported on that parent; the other API is untouched.
    podtatoheads
        .patch(
            "talk",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "leftArm": { "image": "" } } })),
        )
        .await
        .unwrap();
    let condition = ready_reason(&podtatoheads, "talk", "InvalidSpec", CONVERGE).await;
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("spec.leftArm.image"),
        "{condition}"
    );
    podtatoheads
        .patch(
            "talk",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "leftArm": {
                "image": "ghcr.io/podtato-head/podtato-left-arm:v0.1.1"
            } } })),
        )
        .await
        .unwrap();

    // A replaced file is that guest's hot swap: PotatoHeads get the new logic, PodTatoHeads
    // keep theirs.
    add_guest(
        folder.path(),
        "potatohead.wasm",
        &e2e::paths::test_guest("potatohead_v2_guest"),
    );
    e2e::reconciled_by(
        &potatohead_api(&client, &namespace),
        "demo",
        "potatohead-v2",
        CONVERGE,
    )
    .await;
    let talk = podtatoheads.get("talk").await.unwrap();
    assert_eq!(
        talk.data["status"]["reconciler"]["name"], "podtatohead",
        "{talk:?}"
    );
    assert!(
        metric(
            &host,
            r#"reconciler_guest_info{name="potatohead-v2",guest="potatohead"}"#
        )
        .await
            == Some(1.0)
    );

    // A second guest for PotatoHead is refused; the first keeps serving.
    add_guest(folder.path(), "potatohead-copy.wasm", &potatohead_guest());
    wait_refused_as_duplicate(&host, "potatohead-copy").await;
    assert!(
        host.log()
            .contains("which the guest potatohead of this host already reconciles"),
        "{}",
        host.log()
    );
    assert_eq!(
        metric(&host, r#"reconciler_guest_info{guest="potatohead-copy"}"#).await,
        None
    );
    std::fs::remove_file(folder.path().join("potatohead-copy.wasm")).unwrap();

    // The PodTatoHead guest removed: its reconciler stops, its parent and children stay, and a
    // change to the parent is no longer acted on.
    std::fs::remove_file(folder.path().join("podtatohead.wasm")).unwrap();
    eventually(CONVERGE, "the removed guest forgotten", || async {
        let body = host.http_get("/readyz").await.1;
        if body.contains("podtatohead") {
            Err(body)
        } else {
            Ok(())
        }
    })
    .await;
    podtatoheads
        .patch(
            "talk",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "spec": { "hats": { "image": "ghcr.io/podtato-head/hats:v0.1.2" } } }),
            ),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        deployments_of(&client, &namespace, "PodTatoHead")
            .await
            .len(),
        4,
        "children of a removed guest are left alone"
    );
    assert!(podtatoheads.get_opt("talk").await.unwrap().is_some());
    let hats = deployments.get("podtato-hats").await.unwrap();
    assert!(
        image_of(&hats).ends_with("hats:v0.1.1"),
        "{}",
        image_of(&hats)
    );

    // Put back, it takes up where it left off.
    add_guest(folder.path(), "podtatohead.wasm", &podtatohead_guest());
    eventually(
        CONVERGE,
        "the change applied once the guest is back",
        || async {
            let image = image_of(&deployments.get("podtato-hats").await.unwrap());
            if image.ends_with("hats:v0.1.2") {
                Ok(())
            } else {
                Err(image)
            }
        },
    )
    .await;
    assert_eq!(
        deployments_of(&client, &namespace, "PotatoHead")
            .await
            .len(),
        6
    );
}

fn greetings(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("examples.wasm-reconciler.io", "v1alpha1", "Greeting"),
        "greetings",
    );
    Api::namespaced_with(client.clone(), namespace, &resource)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_whose_crd_is_missing_waits_for_it_while_the_others_serve() {
    let (plane, client, namespace) = e2e::scenario::namespace("crd-later").await;
    let folder = tempfile::tempdir().unwrap();
    add_guest(folder.path(), "potatohead.wasm", &potatohead_guest());
    let greeting = workspace_root().join("target/examples/greeting_js.wasm");
    assert!(greeting.exists(), "run `make example-guests`");
    add_guest(folder.path(), "greeting.wasm", &greeting);
    let mut host = serve_folder(plane, folder.path(), &namespace, &[]);

    create_demo(&client, &namespace).await;
    let (status, body) = host.http_get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("[+]guest potatohead ok (contract 0.2.0)"),
        "{body}"
    );
    assert!(
        body.contains("[-]guest greeting not ready: the API server does not serve Greeting"),
        "{body}"
    );

    // A guest waiting for its CRD still holds its kind: a second Greeting guest is refused (its
    // name sorts first, so it is tried before the waiting guest's next attempt).
    add_guest(
        folder.path(),
        "another-greeting.wasm",
        &e2e::paths::test_guest("greeting_rust_guest"),
    );
    wait_refused_as_duplicate(&host, "another-greeting").await;
    // The waiting guest removed: its line leaves /readyz, and the other Greeting guest, free to
    // start now, waits for the CRD in its place.
    std::fs::remove_file(folder.path().join("greeting.wasm")).unwrap();
    eventually(CONVERGE, "the removed guest gone from /readyz", || async {
        match host.http_get("/readyz").await {
            (503, body)
                if !body.contains("guest greeting not ready")
                    && body.contains("[-]guest another-greeting not ready") =>
            {
                Ok(())
            }
            (status, body) => Err(format!("{status}: {body}")),
        }
    })
    .await;

    // Installed while the host runs: picked up without a restart.
    plane
        .install_crd(&workspace_root().join("examples/greeting-js/crd.yaml"))
        .await
        .unwrap();
    let mut sample: DynamicObject = serde_saphyr::from_str(
        &std::fs::read_to_string(workspace_root().join("examples/greeting-js/sample.yaml"))
            .unwrap(),
    )
    .unwrap();
    sample.metadata.namespace = Some(namespace.clone());
    let greetings = greetings(&client, &namespace);
    greetings
        .create(&PostParams::default(), &sample)
        .await
        .unwrap();
    eventually(CONVERGE, "the greeting guest's ConfigMaps", || async {
        let delivered = by_name::<ConfigMap>(&client, &namespace)
            .await
            .into_values()
            .filter(|cm| cm.owner_references().iter().any(|o| o.kind == "Greeting"))
            .count();
        match delivered {
            2 => Ok(()),
            n => Err(format!("{n} ConfigMaps")),
        }
    })
    .await;
    // The status is written after the children, so it may still be on its way.
    eventually(
        CONVERGE,
        "the Greeting's status names its guest",
        || async {
            let hello = greetings.get("hello").await.map_err(|e| e.to_string())?;
            match hello.data["status"]["reconciler"]["name"].as_str() {
                Some("greeting-rust") => Ok(()),
                _ => Err(format!("{:?}", hello.data["status"])),
            }
        },
    )
    .await;
    wait_ready(&host, CONVERGE, "ready with both guests").await;

    // The CRD deleted while the host runs: that guest says so, the other keeps serving (a new
    // PotatoHead converges meanwhile), and the CRD's return is picked up.
    Api::<CustomResourceDefinition>::all(client.clone())
        .delete(
            "greetings.examples.wasm-reconciler.io",
            &DeleteParams::default(),
        )
        .await
        .unwrap();
    eventually(WATCH_RETRY, "the deleted CRD reported", || async {
        match host.http_get("/readyz").await {
            (503, body)
                if body.contains(
                    "[-]guest another-greeting not ready: the parent watch is failing",
                ) && body.contains("[+]guest potatohead ok") =>
            {
                Ok(())
            }
            (status, body) => Err(format!("{status}: {body}")),
        }
    })
    .await;
    e2e::create_sample_potatohead(&client, &namespace, "meanwhile").await;
    wait_for_deployments(&client, &namespace, "PotatoHead", 12).await;
    plane
        .install_crd(&workspace_root().join("examples/greeting-js/crd.yaml"))
        .await
        .unwrap();
    wait_ready(&host, WATCH_RETRY, "ready again with the CRD back").await;
    assert!(host.is_running(), "the host exited");
}

// Attack: a child kind's CRD deleted while the host runs. The child watch fails while the cache
// still holds every object, and the guest went on deciding (and pruning) on it, ready all along.
#[tokio::test(flavor = "multi_thread")]
async fn a_guest_whose_child_kinds_crd_is_deleted_is_not_ready_and_prunes_nothing_until_it_returns()
{
    let (plane, client) = with_podtatohead_crd().await;
    let widget_crd = workspace_root().join("tests/guests/widget-maker/crd.yaml");
    plane.install_crd(&widget_crd).await.unwrap();
    let namespace = TestNamespace::create(&client, "child-crd").await.name;
    let folder = tempfile::tempdir().unwrap();
    add_guest(
        folder.path(),
        "widgets.wasm",
        &e2e::paths::test_guest("widget_maker_guest"),
    );
    add_guest(folder.path(), "podtatohead.wasm", &podtatohead_guest());
    let host = serve_folder(plane, folder.path(), &namespace, &[]);
    wait_ready(&host, CONVERGE, "both guests ready").await;
    let widgets = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        &namespace,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("test.wasm-reconciler.io", "v1", "Widget"),
            "widgets",
        ),
    );
    e2e::create_sample_potatohead(&client, &namespace, "w").await;
    eventually(CONVERGE, "the PotatoHead's Widget", || async {
        widgets
            .get("w-widget")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;

    Api::<CustomResourceDefinition>::all(client.clone())
        .delete("widgets.test.wasm-reconciler.io", &DeleteParams::default())
        .await
        .unwrap();
    eventually(WATCH_RETRY, "the failing child watch reported", || async {
        match host.http_get("/readyz").await {
            (503, body)
                if body.contains(
                    "[-]guest widgets not ready: the watch of child kind \
                     Widget.test.wasm-reconciler.io/v1 is failing",
                ) && body.contains("[+]guest podtatohead ok") =>
            {
                Ok(())
            }
            (status, body) => Err(format!("{status}: {body}")),
        }
    })
    .await;
    // The other guest serves meanwhile.
    let podtatoheads = podtatohead_api(&client, &namespace);
    converge_healthy(&podtatoheads, &namespace, "meanwhile").await;

    plane.install_crd(&widget_crd).await.unwrap();
    wait_ready(&host, WATCH_RETRY, "ready again with the CRD back").await;
    eventually(CONVERGE, "the Widget made again", || async {
        widgets
            .get("w-widget")
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(
        metric(
            &host,
            r#"reconciler_children_total{action="pruned",guest="widgets"}"#
        )
        .await
        .unwrap_or(0.0),
        0.0,
        "nothing was pruned"
    );
}

// Attack: a guest whose every call runs to the longest deadline its settings may set took the
// whole memory budget one turn at a time (the others waited for its deadlines), and a change of
// its settings waited for those deadlines and ran its queued reconciles with the old settings.
#[tokio::test(flavor = "multi_thread")]
async fn a_guest_looping_to_its_longest_deadline_slows_neither_the_others_nor_its_own_restart() {
    // The longest deadline the admin's ceiling lets its settings set.
    let (client, namespace, folder, host) =
        hostile_beside_podtatohead("ceiling", "20s", &["--guest-timeout-ceiling", "20s"]).await;
    wait_ready(&host, CONVERGE, "both guests ready").await;
    let podtatoheads = podtatohead_api(&client, &namespace);
    let alone = converge_healthy(&podtatoheads, &namespace, "alone").await;
    // Eight parents whose every call loops to the 20 s deadline: more than the four calls the
    // default memory budget holds.
    let potatoheads = potatohead_api(&client, &namespace);
    for i in 0..8 {
        let mut parent = sample_potatohead(&namespace, &format!("looper-{i}"));
        parent.metadata.annotations =
            Some([("hostile.example.com/attack".to_string(), "loop".to_string())].into());
        potatoheads
            .create(&PostParams::default(), &parent)
            .await
            .unwrap();
    }
    eventually(CONVERGE, "the looping guest's calls running", || async {
        match metric(&host, r#"reconciler_reconciles_in_flight{guest="hostile"}"#).await {
            Some(n) if n >= 3.0 => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let beside = converge_healthy(&podtatoheads, &namespace, "beside").await;
    eprintln!(
        "5 healthy PodTatoHeads reconciled in {alone:?} alone, {beside:?} beside 8 parents \
         looping to a 20 s deadline"
    );
    // Loose: the machine is shared; waiting for the looper's deadlines would take 20 s and more.
    assert!(
        beside <= alone * 3 + Duration::from_secs(5),
        "beside the looping guest: {beside:?}, alone: {alone:?}"
    );

    // Its settings change while its calls loop: it restarts without waiting for their deadlines.
    let starts = |log: &str| {
        log.matches("starting the guest's reconciler guest=hostile")
            .count()
    };
    let before = starts(&host.log());
    let changed = std::time::Instant::now();
    e2e::folder::write_file(folder.path(), "hostile.yaml", "timeout: 10s\n");
    eventually(Duration::from_secs(10), "the guest restarted", || async {
        let log = host.log();
        if starts(&log) > before {
            Ok(())
        } else {
            Err(format!("{} starts", starts(&log)))
        }
    })
    .await;
    eprintln!(
        "restarted {:?} after its settings changed",
        changed.elapsed()
    );
}

/// A PodTatoHead whose two parts are named after `name`, so that several live in one namespace.
fn small_podtatohead(namespace: &str, name: &str) -> DynamicObject {
    let part = |part: &str, port: u16| {
        json!({
            "name": format!("{name}-{part}"),
            "image": format!("ghcr.io/podtato-head/podtato-{part}:v0.1.1"),
            "port": port,
        })
    };
    serde_json::from_value(json!({
        "apiVersion": "crd.demo.com/v1alpha1",
        "kind": "PodTatoHead",
        "metadata": { "name": name, "namespace": namespace },
        "spec": { "main": part("main", 9000), "hats": part("hats", 9001) },
    }))
    .unwrap()
}

/// Creates five small PodTatoHeads named `<prefix>-N` and returns how long they took to be
/// reconciled. (No kubelet here: parts never become ready, so reconciled means the status says
/// 0 of 2.)
async fn converge_healthy(
    podtatoheads: &Api<DynamicObject>,
    namespace: &str,
    prefix: &str,
) -> Duration {
    let names: Vec<String> = (0..5).map(|i| format!("{prefix}-{i}")).collect();
    let started = std::time::Instant::now();
    for name in &names {
        podtatoheads
            .create(&PostParams::default(), &small_podtatohead(namespace, name))
            .await
            .unwrap();
    }
    eventually(CONVERGE, "every healthy parent reconciled", || async {
        let mut pending = Vec::new();
        for name in &names {
            let status = podtatoheads.get(name).await.unwrap().data["status"].clone();
            if status["summary"] != "0/2" {
                pending.push(format!("{name}: {status}"));
            }
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(format!("{pending:?}"))
        }
    })
    .await;
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_that_traps_or_loops_on_every_call_does_not_hold_up_another() {
    // Its own settings: a shorter deadline than the host's flag.
    let (client, namespace, _folder, host) =
        hostile_beside_podtatohead("isolation", "250ms", &[]).await;

    wait_ready(&host, CONVERGE, "both guests ready").await;
    // The healthy guest's pace alone…
    let podtatoheads = podtatohead_api(&client, &namespace);
    let alone = converge_healthy(&podtatoheads, &namespace, "alone").await;
    // …then twelve parents whose every call traps or runs into its deadline…
    let potatoheads = potatohead_api(&client, &namespace);
    for i in 0..12 {
        let mut parent = sample_potatohead(&namespace, &format!("hostile-{i}"));
        let attack = if i % 2 == 0 { "loop" } else { "panic" };
        parent.metadata.annotations =
            Some([("hostile.example.com/attack".to_string(), attack.to_string())].into());
        potatoheads
            .create(&PostParams::default(), &parent)
            .await
            .unwrap();
    }
    let loop_condition = ready_reason(&potatoheads, "hostile-0", "GuestFailed", CONVERGE).await;
    // …and five more healthy parents beside them converge at that pace all the same. (The bound
    // is loose: this machine is shared; a guest holding up another would take far longer.)
    let beside = converge_healthy(&podtatoheads, &namespace, "beside").await;
    eprintln!(
        "5 healthy PodTatoHeads reconciled in {alone:?} alone, {beside:?} beside 12 hostile \
         PotatoHeads"
    );
    assert!(
        beside <= alone * 3 + Duration::from_secs(5),
        "beside the hostile guest: {beside:?}, alone: {alone:?}"
    );
    wait_for_deployments(&client, &namespace, "PodTatoHead", 20).await;

    // The hostile guest did fail, with its own deadline, and only it did.
    assert!(
        loop_condition["message"]
            .as_str()
            .unwrap()
            .contains("250ms"),
        "{loop_condition}"
    );
    let metrics = host.http_get("/metrics").await.1;
    for kind in ["timeout", "trap"] {
        assert!(
            metric_value(
                &metrics,
                &format!("reconciler_guest_failures_total{{kind=\"{kind}\",guest=\"hostile\"}}")
            )
            .is_some_and(|n| n >= 1.0),
            "{kind}: {metrics}"
        );
    }
    assert_eq!(
        metric_value(
            &metrics,
            r#"reconciler_guest_failures_total{guest="podtatohead"}"#
        ),
        None,
        "{metrics}"
    );
}
