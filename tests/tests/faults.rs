//! End to end under faults: the API server, etcd or the host itself goes away mid-work, watches
//! expire, another field manager edits a child, a parent is deleted mid-reconcile. Each test names
//! the invariant it checks (see docs/invariants.md). Tests that stop servers get a control plane
//! of their own; they run one at a time (a shared lock), so their timing does not depend on each
//! other's load.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e::paths::potatohead_guest;
use e2e::{
    CHILDREN_APPLIED, CHILDREN_PRUNED, DedicatedPlane, HostProcess, Options, TestNamespace,
    eventually, metric_value, potatohead_api, sample_potatohead,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const MANAGED: &str = "app.kubernetes.io/managed-by=wasm-reconciler";
const PARTS: [&str; 6] = [
    "entry",
    "hat",
    "left-arm",
    "right-arm",
    "left-leg",
    "right-leg",
];
/// Faults slow everything down: twice the standard wait.
const CONVERGE: Duration = e2e::CONVERGE.saturating_mul(2);

/// One fault test at a time: each one's servers need the machine's two cores to themselves.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every child the host manages in `namespace`: `Kind/name` -> UID.
async fn children(client: &Client, namespace: &str) -> Result<BTreeMap<String, String>, String> {
    let params = ListParams::default().labels(MANAGED);
    let mut found = BTreeMap::new();
    let named = |kind: &str, meta: &kube::api::ObjectMeta| {
        (
            format!("{kind}/{}", meta.name.clone().unwrap_or_default()),
            meta.uid.clone().unwrap_or_default(),
        )
    };
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .map_err(|e| e.to_string())?;
    found.extend(deployments.iter().map(|d| named("Deployment", &d.metadata)));
    let services = Api::<Service>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .map_err(|e| e.to_string())?;
    found.extend(services.iter().map(|s| named("Service", &s.metadata)));
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .list(&params)
        .await
        .map_err(|e| e.to_string())?;
    found.extend(config_maps.iter().map(|c| named("ConfigMap", &c.metadata)));
    Ok(found)
}

/// The 13 children the default guest wants for the full sample `parent`.
fn expected_children(parent: &str) -> Vec<String> {
    let mut names: Vec<String> = PARTS
        .iter()
        .flat_map(|part| {
            [
                format!("Deployment/{parent}-{part}"),
                format!("Service/{parent}-{part}"),
            ]
        })
        .collect();
    names.push(format!("ConfigMap/{parent}-service-discovery"));
    names
}

/// Exactly the children of `parents` exist (nothing missing, nothing extra: no duplicates, no
/// orphans), and every Deployment of parent `p` runs image tag `tags[p]` (default 0.3.0).
async fn exactly_converged(
    client: &Client,
    namespace: &str,
    parents: &[String],
    tags: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let found = children(client, namespace).await?;
    let mut expected: Vec<String> = parents.iter().flat_map(|p| expected_children(p)).collect();
    expected.sort();
    let actual: Vec<String> = found.keys().cloned().collect();
    if actual != expected {
        let missing = expected.iter().filter(|e| !found.contains_key(*e)).count();
        let extra = actual.iter().filter(|a| !expected.contains(a)).count();
        return Err(format!(
            "{} children, expected {}: {missing} missing, {extra} unexpected",
            actual.len(),
            expected.len()
        ));
    }
    let deployments = Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(MANAGED))
        .await
        .map_err(|e| e.to_string())?;
    for deployment in deployments {
        let parent = deployment.metadata.owner_references.as_ref().unwrap()[0]
            .name
            .clone();
        let want = tags.get(&parent).map_or("0.3.0", String::as_str);
        let image = deployment.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .clone()
            .unwrap_or_default();
        if !image.ends_with(&format!(":{want}")) {
            return Err(format!("{parent}: image {image}, want tag {want}"));
        }
    }
    Ok(found)
}

async fn create_samples(client: &Client, namespace: &str, names: &[String]) {
    let api = potatohead_api(client, namespace);
    for name in names {
        api.create(&PostParams::default(), &sample_potatohead(namespace, name))
            .await
            .unwrap();
    }
}

/// Like [`create_samples`], but says why it could not (an object already there counts as made).
async fn create_samples_once(
    client: &Client,
    namespace: &str,
    names: &[String],
) -> Result<(), String> {
    let api = potatohead_api(client, namespace);
    for name in names {
        match api
            .create(&PostParams::default(), &sample_potatohead(namespace, name))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(())
}

async fn set_tag(client: &Client, namespace: &str, name: &str, tag: &str) {
    potatohead_api(client, namespace)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "tag": tag } })),
        )
        .await
        .unwrap();
}

fn names(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

/// No child that existed before (same name) was deleted and made again: its UID is unchanged.
fn assert_no_child_replaced(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) {
    let replaced: Vec<&String> = before
        .iter()
        .filter(|(name, uid)| after.get(*name).is_some_and(|now| now != *uid))
        .map(|(name, _)| name)
        .collect();
    assert!(replaced.is_empty(), "deleted and recreated: {replaced:?}");
    let gone: Vec<&String> = before.keys().filter(|n| !after.contains_key(*n)).collect();
    assert!(gone.is_empty(), "deleted: {gone:?}");
}

/// Waits until the host runs no reconcile (its counters move when a reconcile ends).
async fn no_reconcile_in_flight(host: &HostProcess) {
    eventually(
        Duration::from_secs(30),
        "no reconcile in flight",
        || async {
            let (_, metrics) = host.http_get("/metrics").await;
            match metric_value(&metrics, "reconciler_reconciles_in_flight") {
                Some(0.0) => Ok(()),
                other => Err(format!("{other:?} in flight")),
            }
        },
    )
    .await;
}

/// Stops `server` for `outage` while PotatoHeads are being created and changed, then resumes it.
///
/// Invariants: never prune on incomplete information (nothing deleted across the outage);
/// writes are idempotent and the host converges after reconnecting by itself (same process).
async fn outage_while_creating_and_changing(server: &str, outage: Duration) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let plane = DedicatedPlane::start(Options::default()).await;
    let client = plane.client().await;
    let namespace = TestNamespace::create(&client, "outage").await.name;
    let mut host = HostProcess::start(&plane, &potatohead_guest(), &["--namespace", &namespace]);
    let first = names("ph-", 0..10);
    create_samples(&client, &namespace, &first).await;
    let mut tags = BTreeMap::new();
    let before = eventually(CONVERGE, "first 10 converged", || {
        exactly_converged(&client, &namespace, &first, &tags)
    })
    .await;

    // Work in flight when the server goes: new parents and changed ones.
    let second = names("ph-", 10..15);
    create_samples(&client, &namespace, &second).await;
    for name in &first[..3] {
        set_tag(&client, &namespace, name, "0.3.1").await;
        tags.insert(name.clone(), "0.3.1".to_string());
    }
    plane.stop(server);
    tokio::time::sleep(outage).await;
    plane.resume(server).await;
    let resumed = Instant::now();
    plane
        .wait_until_ready(Duration::from_secs(90))
        .await
        .unwrap();

    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    let after = eventually(CONVERGE, "all 15 converged after the outage", || {
        exactly_converged(&client, &namespace, &all, &tags)
    })
    .await;
    eprintln!(
        "{server} down {outage:?}: converged {:?} after it was started again",
        resumed.elapsed()
    );
    assert_no_child_replaced(&before, &after);
    assert!(host.is_running(), "the host exited during the outage");
    assert_eq!(
        host.counter(CHILDREN_PRUNED).await,
        0.0,
        "something was pruned"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_apiserver_down_15s_while_creating_and_changing_loses_and_duplicates_nothing() {
    outage_while_creating_and_changing("kube-apiserver", Duration::from_secs(15)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_down_15s_under_the_api_server_loses_and_duplicates_nothing() {
    outage_while_creating_and_changing("etcd", Duration::from_secs(15)).await;
}

/// Invariant: every write is idempotent; a crash at any point leaves a state the next run
/// converges from (no orphaned, duplicated or replaced children).
#[tokio::test(flavor = "multi_thread")]
async fn a_host_killed_mid_way_through_200_potatoheads_converges_after_restart() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let plane = DedicatedPlane::start(Options::default()).await;
    let client = plane.client().await;
    let namespace = TestNamespace::create(&client, "sigkill").await.name;
    let parents = names("ph-", 0..200);
    create_samples(&client, &namespace, &parents).await;

    let mut host = HostProcess::start(&plane, &potatohead_guest(), &["--namespace", &namespace]);
    let total = parents.len() * 13;
    eventually(CONVERGE, "a third of the children made", || async {
        let found = children(&client, &namespace).await?;
        if found.len() >= total / 3 {
            Ok(())
        } else {
            Err(format!("{} of {total}", found.len()))
        }
    })
    .await;
    host.kill_hard();
    let made_before_kill = children(&client, &namespace).await.unwrap();
    assert!(
        made_before_kill.len() < total,
        "the host finished all {total} children before it could be killed; the test proves nothing"
    );

    let host = HostProcess::start(&plane, &potatohead_guest(), &["--namespace", &namespace]);
    let default_tags = BTreeMap::new();
    let after = eventually(CONVERGE, "all 200 converged after the restart", || {
        exactly_converged(&client, &namespace, &parents, &default_tags)
    })
    .await;
    assert_no_child_replaced(&made_before_kill, &after);
    assert_eq!(
        host.counter(CHILDREN_PRUNED).await,
        0.0,
        "something was pruned"
    );
    eprintln!(
        "killed with {} of {total} children made; converged after restart",
        made_before_kill.len()
    );
}

/// Invariant: never prune on incomplete information. Watches that come back to a compacted
/// history get 410 Gone and relist; the relist replaces the caches whole, and nothing is
/// deleted because of it. The host still reacts to changes afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn expired_watches_relist_without_spurious_deletes() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let plane = DedicatedPlane::start(Options::default()).await;
    let client = plane.client().await;
    let namespace = TestNamespace::create(&client, "gone").await.name;
    let host = HostProcess::start(&plane, &potatohead_guest(), &["--namespace", &namespace]);
    let parents = names("ph-", 0..5);
    create_samples(&client, &namespace, &parents).await;
    let mut tags = BTreeMap::new();
    let before = eventually(CONVERGE, "5 converged", || {
        exactly_converged(&client, &namespace, &parents, &tags)
    })
    .await;

    no_reconcile_in_flight(&host).await;
    let applied_before = host.counter(CHILDREN_APPLIED).await;
    // The watches drop with the API server; etcd's history is compacted past every
    // resourceVersion the host saw, so resuming them is impossible: 410 Gone.
    plane.stop("kube-apiserver");
    let revision = plane.compact_etcd().await.unwrap();
    plane.resume("kube-apiserver").await;
    plane
        .wait_until_ready(Duration::from_secs(90))
        .await
        .unwrap();
    let gone = eventually(Duration::from_secs(60), "the host saw 410 Gone", || async {
        host.log()
            .lines()
            .find(|l| l.contains("child watch failed") && l.contains("too old resource version"))
            .map(str::to_owned)
            .ok_or_else(|| format!("no 410 in the log yet (compacted at revision {revision})"))
    })
    .await;
    eprintln!("watch expired: {gone}");
    // The changes below wait for the Deployments' relist to complete: a relist still running
    // when the host applies would show it the versions from before its own writes, and the
    // repeat (harmless, but not what this test counts) depends on timing.
    eventually(
        Duration::from_secs(60),
        "the Deployments relisted",
        || async {
            let log = host.log();
            let after_gone = &log[log.find(&gone).unwrap_or(0)..];
            after_gone
                .lines()
                .any(|l| {
                    l.contains("child cache (re)listed") && l.contains("kind=Deployment.apps/v1")
                })
                .then_some(())
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await;

    // Still watching: a deleted child comes back, a changed tag is applied.
    Api::<Deployment>::namespaced(client.clone(), &namespace)
        .delete("ph-0-hat", &DeleteParams::default())
        .await
        .unwrap();
    set_tag(&client, &namespace, "ph-1", "0.3.1").await;
    tags.insert("ph-1".to_string(), "0.3.1".to_string());
    let after = eventually(CONVERGE, "converged after the relist", || {
        exactly_converged(&client, &namespace, &parents, &tags)
    })
    .await;
    let mut untouched = before.clone();
    untouched.remove("Deployment/ph-0-hat");
    assert_no_child_replaced(&untouched, &after);
    assert_eq!(
        host.counter(CHILDREN_PRUNED).await,
        0.0,
        "something was pruned"
    );
    // Relisted children are recognised as already right: the only writes are the recreated
    // Deployment and ph-1's six Deployments with the new tag.
    eventually(
        Duration::from_secs(30),
        "exactly 7 applies after the relist",
        || async {
            match host.counter(CHILDREN_APPLIED).await - applied_before {
                7.0 => Ok(()),
                more if more > 7.0 => panic!("{more} applies after the relist, expected 7"),
                fewer => Err(format!("{fewer} counted so far")),
            }
        },
    )
    .await;
}

/// Invariant: server-side apply semantics. Another field manager's fields on a child are left
/// alone; fields the host owns are put back; the host then stops writing (no hot loop).
#[tokio::test(flavor = "multi_thread")]
async fn another_field_manager_keeps_its_fields_and_loses_ours_without_a_hot_loop() {
    let (plane, client, namespace) = e2e::scenario::namespace("managers").await;
    let host = HostProcess::start(plane, &potatohead_guest(), &["--namespace", &namespace]);
    let demo = ["demo".to_string()];
    let default_tags = BTreeMap::new();
    create_samples(&client, &namespace, &demo).await;
    eventually(CONVERGE, "converged", || {
        exactly_converged(&client, &namespace, &demo, &default_tags)
    })
    .await;

    // Another team applies its own annotation and, forcing, takes over the replica count.
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    let theirs = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": { "name": "demo-hat", "annotations": { "other-team.example.com/owner": "team-b" } },
        "spec": { "replicas": 5 }
    });
    deployments
        .patch(
            "demo-hat",
            &PatchParams::apply("other-team").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap();
    let settled = eventually(
        CONVERGE,
        "our replicas back, their annotation kept",
        || async {
            let hat = deployments
                .get("demo-hat")
                .await
                .map_err(|e| e.to_string())?;
            let replicas = hat.spec.as_ref().and_then(|s| s.replicas);
            let annotation = hat
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("other-team.example.com/owner").cloned());
            if replicas == Some(1) && annotation.as_deref() == Some("team-b") {
                Ok(hat)
            } else {
                Err(format!("replicas {replicas:?}, annotation {annotation:?}"))
            }
        },
    )
    .await;
    let managers: Vec<String> = settled
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(managers.contains(&"other-team".to_string()), "{managers:?}");

    // No hot loop: once the reconcile that put replicas back has ended, no more applies and no
    // more changes to the object over the next seconds.
    no_reconcile_in_flight(&host).await;
    let applied = host.counter(CHILDREN_APPLIED).await;
    let version = settled.metadata.resource_version.clone();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        host.counter(CHILDREN_APPLIED).await,
        applied,
        "the host kept applying"
    );
    assert_eq!(
        deployments
            .get("demo-hat")
            .await
            .unwrap()
            .metadata
            .resource_version,
        version,
        "demo-hat kept changing"
    );
}

/// Invariant: the host never adopts or recreates what garbage collection removes: a parent
/// deleted while it is being reconciled takes its children with it (kube-controller-manager's
/// garbage collector), and the host does not bring them back.
#[tokio::test(flavor = "multi_thread")]
async fn a_potatohead_deleted_mid_reconcile_is_collected_and_not_recreated() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let plane = DedicatedPlane::start(Options {
        controller_manager: true,
    })
    .await;
    let client = plane.client().await;
    let namespace = TestNamespace::create(&client, "collected").await.name;
    let host = HostProcess::start(&plane, &potatohead_guest(), &["--namespace", &namespace]);
    let parents = names("ph-", 0..10);
    create_samples(&client, &namespace, &parents).await;
    // Delete as soon as the first children appear: most reconciles are still under way.
    eventually(CONVERGE, "the first children", || async {
        let found = children(&client, &namespace).await?;
        if found.is_empty() {
            Err("none yet".to_string())
        } else {
            Ok(())
        }
    })
    .await;
    let api = potatohead_api(&client, &namespace);
    for name in &parents {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    eventually(CONVERGE, "every child collected", || async {
        let found = children(&client, &namespace).await?;
        if found.is_empty() {
            Ok(())
        } else {
            Err(format!("{} children left", found.len()))
        }
    })
    .await;
    let quiet_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < quiet_until {
        let found = children(&client, &namespace).await.unwrap();
        assert!(found.is_empty(), "the host recreated {found:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        0
    );
    assert!(
        !host.log().contains("panicked"),
        "the host panicked:\n{}",
        host.log()
    );
}

/// The parent kind's CRD is deleted while the host runs (its parents go with it), then installed
/// again: the host says so in its log and on `/readyz` instead of going quiet, stays up, and
/// reconciles the new parents once the CRD is back.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_parent_crd_is_reported_and_its_return_picked_up_without_a_restart() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let _serial = ONE_AT_A_TIME.lock().await;
    let plane = DedicatedPlane::start(Options::default()).await;
    let client = plane.client().await;
    let namespace = TestNamespace::create(&client, "crd-gone").await.name;
    let mut host = HostProcess::start(&plane, &potatohead_guest(), &["--namespace", &namespace]);
    let first = names("ph-", 0..1);
    create_samples(&client, &namespace, &first).await;
    let tags = BTreeMap::new();
    eventually(CONVERGE, "converged", || {
        exactly_converged(&client, &namespace, &first, &tags)
    })
    .await;
    assert_eq!(host.http_get("/readyz").await.0, 200);

    Api::<CustomResourceDefinition>::all(client.clone())
        .delete("potatoheads.podtato.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let host_ref = &host;
    eventually(
        Duration::from_secs(90),
        "the host reports the failing watch",
        || async {
            let (status, _) = host_ref.http_get("/readyz").await;
            let logged = host_ref.log().contains("the parent watch is failing");
            if status == 503 && logged {
                Ok(())
            } else {
                Err(format!("/readyz {status}, logged: {logged}"))
            }
        },
    )
    .await;
    assert!(host.is_running(), "the host exited");

    plane
        .install_crd(&e2e::paths::workspace_root().join("deploy/crd/potatohead.yaml"))
        .await
        .unwrap();
    let back = names("ph-", 1..2);
    eventually(
        Duration::from_secs(90),
        "a new parent can be created",
        || async { create_samples_once(&client, &namespace, &back).await },
    )
    .await;
    // The first parent's children outlive it here: this plane runs no garbage collector.
    let both: Vec<String> = first.iter().chain(&back).cloned().collect();
    eventually(Duration::from_secs(120), "the new parent converged", || {
        exactly_converged(&client, &namespace, &both, &tags)
    })
    .await;
    assert_eq!(host.http_get("/readyz").await.0, 200);
    assert!(host.is_running());
}
