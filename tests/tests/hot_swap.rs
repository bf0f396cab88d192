//! End to end: the guest file is replaced while `reconciler-host` runs, against a real API server.
//! The host must notice, check, switch and re-reconcile without restarting, and must refuse bad
//! files while the previous guest keeps serving.
//!
//! These hosts run with `--guest-poll-interval 1h`, so only the file-system watch can notice a
//! change within the tests' deadlines.

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::paths::{potatohead_guest, replace_file, test_guest};
use e2e::{CONVERGE, HostProcess, Scenario, eventually, metric_value, potatohead_api};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, ListParams};
use kube::{Client, ResourceExt};

const VARIANT_LABEL: &str = "podtato.example.com/variant";
const SWAP_DEADLINE: Duration = Duration::from_secs(10);

/// Names of the parents each test creates.
const PARENTS: [&str; 2] = ["demo", "second"];

fn v2_guest() -> PathBuf {
    test_guest("potatohead_v2_guest")
}

/// Label value of `VARIANT_LABEL` on every child in the namespace, by "Kind/name".
async fn variants(client: &Client, namespace: &str) -> Vec<(String, Option<String>)> {
    let params = ListParams::default().labels("app.kubernetes.io/managed-by=wasm-reconciler");
    let mut found = Vec::new();
    let variant =
        |labels: &std::collections::BTreeMap<String, String>| labels.get(VARIANT_LABEL).cloned();
    for d in Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .unwrap()
    {
        found.push((format!("Deployment/{}", d.name_any()), variant(d.labels())));
    }
    for s in Api::<Service>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .unwrap()
    {
        found.push((format!("Service/{}", s.name_any()), variant(s.labels())));
    }
    for c in Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .unwrap()
    {
        found.push((format!("ConfigMap/{}", c.name_any()), variant(c.labels())));
    }
    found
}

/// Waits until both parents' 13 children exist and all carry `variant` (None: no label).
async fn all_children_are(
    client: &Client,
    namespace: &str,
    variant: Option<&str>,
    within: Duration,
) {
    eventually(
        within,
        &format!("all 26 children have variant {variant:?}"),
        || async {
            let found = variants(client, namespace).await;
            let wrong: Vec<_> = found
                .iter()
                .filter(|(_, v)| v.as_deref() != variant)
                .collect();
            if found.len() == 26 && wrong.is_empty() {
                Ok(())
            } else {
                Err(format!("{} children; wrong: {wrong:?}", found.len()))
            }
        },
    )
    .await
}

async fn reconciler_names(client: &Client, namespace: &str) -> Vec<String> {
    reconciler_field(client, namespace, "name").await
}

/// `status.reconciler.<field>` of each PotatoHead, empty where it is absent.
async fn reconciler_field(client: &Client, namespace: &str, field: &str) -> Vec<String> {
    let mut values = Vec::new();
    for parent in PARENTS {
        let object = potatohead_api(client, namespace).get(parent).await.unwrap();
        values.push(
            object.data["status"]["reconciler"][field]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    values
}

/// A scenario whose guest lies in a temporary folder (deleted with it).
struct Setup {
    scenario: Scenario,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Setup {
    type Target = Scenario;
    fn deref(&self) -> &Scenario {
        &self.scenario
    }
}

impl std::ops::DerefMut for Setup {
    fn deref_mut(&mut self) -> &mut Scenario {
        &mut self.scenario
    }
}

/// A namespace with two PotatoHeads, and a host (poll interval 1 h, so only file events count)
/// running the guest at `guest_path`, which `lay_out` prepares in the temporary folder.
async fn setup(prefix: &str, lay_out: impl FnOnce(&Path) -> PathBuf) -> Setup {
    setup_with(prefix, lay_out, &[]).await
}

async fn setup_with(
    prefix: &str,
    lay_out: impl FnOnce(&Path) -> PathBuf,
    extra_args: &[&str],
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let guest_path = lay_out(dir.path());
    let cache = dir.path().join("compile-cache");
    let mut args = vec![
        "--guest-poll-interval",
        "1h",
        "--compile-cache-dir",
        cache.to_str().unwrap(),
    ];
    args.extend_from_slice(extra_args);
    let scenario = Scenario::start(prefix, &guest_path, &args).await;
    for parent in PARENTS {
        e2e::create_sample_potatohead(&scenario.client, &scenario.namespace, parent).await;
    }
    all_children_are(&scenario.client, &scenario.namespace, None, CONVERGE).await;
    Setup {
        scenario,
        _dir: dir,
    }
}

/// Waits until both PotatoHeads' `status.reconciler` names the v2 guest.
async fn both_reconciled_by_v2(setup: &Setup) {
    let api = potatohead_api(&setup.client, &setup.namespace);
    for parent in PARENTS {
        e2e::reconciled_by(&api, parent, "potatohead-v2", SWAP_DEADLINE).await;
    }
}

fn plain_file_layout(dir: &Path) -> PathBuf {
    let path = dir.join("guest.wasm");
    std::fs::copy(potatohead_guest(), &path).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_the_guest_file_switches_every_potatohead_to_the_new_logic_without_a_restart() {
    let mut setup = setup("swap-file", plain_file_layout).await;
    let pid = setup.host.pid();
    assert_eq!(
        reconciler_names(&setup.client, &setup.namespace).await,
        ["potatohead", "potatohead"]
    );
    // The default guest speaks contract 0.2, the v2 test guest the frozen 0.1 (whose stamp
    // names no contract): the swap crosses versions both ways in this file's tests.
    assert_eq!(
        reconciler_field(&setup.client, &setup.namespace, "contract").await,
        ["0.2.0", "0.2.0"]
    );

    replace_file(
        &setup._dir.path().join("guest.wasm"),
        &std::fs::read(v2_guest()).unwrap(),
    );
    all_children_are(&setup.client, &setup.namespace, Some("v2"), SWAP_DEADLINE).await;
    both_reconciled_by_v2(&setup).await;
    assert_eq!(
        reconciler_field(&setup.client, &setup.namespace, "contract").await,
        ["", ""]
    );
    assert!(setup.host.is_running(), "the host restarted or died");
    assert_eq!(setup.host.pid(), pid);
    assert!(
        setup.host.log().contains("guest swapped"),
        "the swap is logged"
    );
    // Both parents went through the sweep that follows a swap, which says so.
    let (_, metrics) = setup.host.http_get("/metrics").await;
    assert_eq!(
        metric_value(&metrics, "reconciler_swap_sweep_remaining"),
        Some(0.0),
        "{metrics}"
    );
    assert!(
        setup
            .host
            .log()
            .contains("every parent sent to be reconciled with the new guest parents=2"),
        "{}",
        setup.host.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_makes_the_host_read_a_guest_file_its_folder_watch_cannot_see_change() {
    // The guest path is a link into another folder: a new file there changes nothing in the
    // watched folder, so (with the 1 h poll) only SIGHUP makes the host look.
    let setup = setup("swap-sighup", |dir| {
        let elsewhere = dir.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::copy(potatohead_guest(), elsewhere.join("guest.wasm")).unwrap();
        let watched = dir.join("watched");
        std::fs::create_dir(&watched).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("guest.wasm"), watched.join("guest.wasm"))
            .unwrap();
        watched.join("guest.wasm")
    })
    .await;
    // The host checks the file once right after its controller starts, which can be after both
    // parents converged: a change before that check would be seen without SIGHUP.
    eventually(
        Duration::from_secs(10),
        "the start-up check of the guest file",
        || async {
            if setup.host.log().contains("guest file unchanged") {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await;
    replace_file(
        &setup._dir.path().join("elsewhere/guest.wasm"),
        &std::fs::read(v2_guest()).unwrap(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        reconciler_names(&setup.client, &setup.namespace).await,
        ["potatohead", "potatohead"],
        "the change was seen without SIGHUP: this test would prove nothing"
    );
    // SAFETY: kill(2) on our own child process.
    unsafe { libc::kill(setup.host.pid() as i32, libc::SIGHUP) };
    both_reconciled_by_v2(&setup).await;
    assert!(
        setup.host.log().contains("cause=SIGHUP"),
        "{}",
        setup.host.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configmap_volume_update_switches_the_guest() {
    // The kubelet's layout: guest.wasm -> ..data/guest.wasm, ..data -> ..<timestamp>/.
    let setup = setup("swap-configmap", |dir| {
        let first = dir.join("..2026_11_24_01_00_00.000000001");
        std::fs::create_dir(&first).unwrap();
        std::fs::copy(potatohead_guest(), first.join("guest.wasm")).unwrap();
        std::os::unix::fs::symlink("..2026_11_24_01_00_00.000000001", dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/guest.wasm", dir.join("guest.wasm")).unwrap();
        dir.join("guest.wasm")
    })
    .await;

    // The kubelet's atomic update: a new timestamped folder, a new ..data_tmp link renamed over
    // ..data, then the old folder removed.
    let dir = setup._dir.path();
    let second = dir.join("..2026_11_24_02_00_00.000000002");
    std::fs::create_dir(&second).unwrap();
    std::fs::copy(v2_guest(), second.join("guest.wasm")).unwrap();
    std::os::unix::fs::symlink("..2026_11_24_02_00_00.000000002", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..2026_11_24_01_00_00.000000001")).unwrap();

    all_children_are(&setup.client, &setup.namespace, Some("v2"), SWAP_DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_and_incompatible_guests_are_refused_while_the_old_guest_keeps_serving() {
    let setup = setup("swap-refused", plain_file_layout).await;
    let guest_path = setup._dir.path().join("guest.wasm");
    let refusals = |host: &HostProcess| host.log().matches("refused the new guest file").count();

    replace_file(&guest_path, b"definitely not webassembly");
    eventually(SWAP_DEADLINE, "garbage refused", || async {
        if refusals(&setup.host) >= 1 {
            Ok(())
        } else {
            Err("no refusal logged".into())
        }
    })
    .await;

    // A component built against a future, incompatible version of the WIT package.
    let incompatible = wat::parse_str(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $guest (export "describe" (func $f)))
            (export "wasm-reconciler:reconciler/guest@9.0.0" (instance $guest)))"#,
    )
    .unwrap();
    replace_file(&guest_path, &incompatible);
    eventually(SWAP_DEADLINE, "incompatible guest refused", || async {
        if refusals(&setup.host) >= 2 {
            Ok(())
        } else {
            Err("one refusal logged".into())
        }
    })
    .await;
    let log = setup.host.log();
    assert!(
        log.contains("is not a WebAssembly file"),
        "garbage named as such"
    );
    assert!(
        log.contains("no exported instance named `wasm-reconciler:reconciler/guest@0.2.0`"),
        "version mismatch named"
    );

    // The old guest still serves: a deleted child comes back, without the v2 label.
    Api::<Deployment>::namespaced(setup.client.clone(), &setup.namespace)
        .delete("demo-hat", &DeleteParams::default())
        .await
        .unwrap();
    all_children_are(&setup.client, &setup.namespace, None, CONVERGE).await;

    let (_, metrics) = setup.host.http_get("/metrics").await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"reconciler_guest_reloads_total{result="refused"}"#
        ),
        Some(2.0),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"reconciler_guest_info{name="potatohead",version="0.1.0""#),
        "{metrics}"
    );

    // A good file after the bad ones is picked up.
    replace_file(&guest_path, &std::fs::read(v2_guest()).unwrap());
    all_children_are(&setup.client, &setup.namespace, Some("v2"), SWAP_DEADLINE).await;
    let (_, metrics) = setup.host.http_get("/metrics").await;
    assert_eq!(
        metric_value(
            &metrics,
            r#"reconciler_guest_reloads_total{result="swapped"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"reconciler_guest_info{name="potatohead-v2",version="0.2.0""#),
        "{metrics}"
    );
    assert!(
        !metrics.contains(r#"reconciler_guest_info{name="potatohead","#),
        "only the active guest: {metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_for_another_parent_kind_is_refused_unless_allowed() {
    let setup = setup("swap-parent-refused", plain_file_layout).await;
    replace_file(
        &setup._dir.path().join("guest.wasm"),
        &std::fs::read(test_guest("configmap_echo_guest")).unwrap(),
    );
    refused_and_still_serving(&setup, "--allow-parent-kind-change").await;
}

/// Waits for the host to refuse the new guest file with a reason naming `flag`, then checks that
/// the PotatoHead guest keeps serving (a deleted child comes back).
async fn refused_and_still_serving(setup: &Setup, flag: &str) {
    eventually(
        SWAP_DEADLINE,
        &format!("refused, naming {flag}"),
        || async {
            let log = setup.host.log();
            if log.contains("refused the new guest file") && log.contains(flag) {
                Ok(())
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await;
    Api::<Deployment>::namespaced(setup.client.clone(), &setup.namespace)
        .delete("demo-hat", &DeleteParams::default())
        .await
        .unwrap();
    all_children_are(&setup.client, &setup.namespace, None, CONVERGE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_allow_parent_kind_change_the_host_restarts_its_controller_for_the_new_kind() {
    let mut setup = setup_with(
        "swap-parent-allowed",
        plain_file_layout,
        // The new guest reconciles ConfigMaps, one of Kubernetes' own kinds.
        &["--allow-parent-kind-change", "--allow-builtin-parent-kind"],
    )
    .await;
    let pid = setup.host.pid();
    replace_file(
        &setup._dir.path().join("guest.wasm"),
        &std::fs::read(test_guest("configmap_echo_guest")).unwrap(),
    );
    // The new guest reconciles ConfigMaps: the PotatoHeads' discovery ConfigMaps get an echo.
    let accounts = Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
        setup.client.clone(),
        &setup.namespace,
    );
    eventually(
        SWAP_DEADLINE,
        "ServiceAccount demo-service-discovery-echo exists",
        || async {
            accounts
                .get("demo-service-discovery-echo")
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
    assert!(setup.host.is_running());
    assert_eq!(
        setup.host.pid(),
        pid,
        "restarted in-process, not as a new process"
    );
    // The old kind's children are left alone.
    assert_eq!(variants(&setup.client, &setup.namespace).await.len(), 26);
}

/// A guest for one of Kubernetes' own kinds is refused on swap unless the host was started to
/// accept that, and the refusal stops nothing: the active guest keeps serving, same process.
#[tokio::test(flavor = "multi_thread")]
async fn a_guest_for_a_builtin_parent_kind_is_refused_before_anything_stops() {
    let mut setup = setup_with(
        "swap-parent-builtin",
        plain_file_layout,
        &["--allow-parent-kind-change"],
    )
    .await;
    let pid = setup.host.pid();
    replace_file(
        &setup._dir.path().join("guest.wasm"),
        &std::fs::read(test_guest("configmap_echo_guest")).unwrap(),
    );
    refused_and_still_serving(&setup, "--allow-builtin-parent-kind").await;
    assert!(setup.host.is_running());
    assert_eq!(setup.host.pid(), pid);
}
