//! End to end: replicas with leader election over a real `coordination.k8s.io/v1` Lease.
//! Short timings (6 s lease, 4 s renew deadline, 1 s retry) keep the tests quick; the protocol
//! is the same at the 15/10/2 s defaults.

use std::time::{Duration, Instant};

use e2e::paths::potatohead_guest;
use e2e::{
    CHILDREN_APPLIED, CHILDREN_PRUNED, ControlPlane, HostProcess, eventually, metric_value,
    potatohead_api,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const LEASE_DURATION: Duration = Duration::from_secs(6);
const RETRY_PERIOD: Duration = Duration::from_secs(1);
/// The Lease's default name: the field manager.
const LEASE: &str = "wasm-reconciler";

fn replica(plane: &ControlPlane, namespace: &str, name: &str) -> HostProcess {
    let guest = potatohead_guest().display().to_string();
    replica_serving(plane, &["--guest", &guest], namespace, name)
}

/// A replica serving `guests` (`--guest FILE` or `--guests DIR`).
fn replica_serving(
    plane: &ControlPlane,
    guests: &[&str],
    namespace: &str,
    name: &str,
) -> HostProcess {
    let args: Vec<String> = ["run"]
        .iter()
        .chain(guests)
        .chain(&[
            "--namespace",
            namespace,
            "--pod-name",
            name,
            "--leader-elect",
            "--leader-elect-lease-duration",
            "6s",
            "--leader-elect-renew-deadline",
            "4s",
            "--leader-elect-retry-period",
            "1s",
        ])
        .map(|arg| arg.to_string())
        .collect();
    HostProcess::spawn(plane, &plane.kubeconfig, &args, &[])
}

/// (`reconciler_leader`, every reconcile and child write the replica counted).
async fn role_and_writes(host: &HostProcess) -> (Option<f64>, f64) {
    let (_, metrics) = host.http_get("/metrics").await;
    let leader = metric_value(&metrics, "reconciler_leader");
    let writes: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("reconciler_reconciles_total{")
                || l.starts_with(CHILDREN_APPLIED)
                || l.starts_with(CHILDREN_PRUNED)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    (leader, writes)
}

async fn images(client: &Client, namespace: &str) -> Vec<String> {
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|d| {
            d.spec.as_ref()?.template.spec.as_ref()?.containers[0]
                .image
                .clone()
        })
        .collect()
}

async fn all_images_have_tag(client: &Client, namespace: &str, tag: &str) -> Result<(), String> {
    let images = images(client, namespace).await;
    if images.len() == 6 && images.iter().all(|i| i.ends_with(&format!(":{tag}"))) {
        Ok(())
    } else {
        Err(format!("{images:?}"))
    }
}

async fn set_tag(client: &Client, namespace: &str, tag: &str) {
    potatohead_api(client, namespace)
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "tag": tag } })),
        )
        .await
        .unwrap();
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get(LEASE)
        .await
        .ok()?
        .spec?
        .holder_identity
        .filter(|h| !h.is_empty())
}

/// Creates the sample `demo` and waits until its six Deployments exist with the default tag.
async fn create_sample_and_wait(client: &Client, namespace: &str) {
    e2e::create_sample_potatohead(client, namespace, "demo").await;
    eventually(Duration::from_secs(60), "sample converged", || {
        all_images_have_tag(client, namespace, "0.3.0")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_one_replica_reconciles_and_a_standby_takes_over_when_the_leader_is_killed() {
    let (plane, client, namespace) = e2e::scenario::namespace("leader-kill").await;
    let leases = Api::<Lease>::namespaced(client.clone(), &namespace);
    let mut a = replica(plane, &namespace, "replica-a");
    let mut b = replica(plane, &namespace, "replica-b");
    create_sample_and_wait(&client, &namespace).await;

    // Exactly one leads; the standby has not reconciled or written anything. (Counters move when
    // a reconcile ends, which can be just after its children appear.)
    let a_leads = eventually(
        Duration::from_secs(30),
        "the leader counted its writes",
        || async {
            match (role_and_writes(&a).await, role_and_writes(&b).await) {
                ((Some(1.0), a_writes), (Some(0.0), b_writes)) if a_writes > 0.0 => {
                    assert_eq!(b_writes, 0.0, "the standby wrote");
                    Ok(true)
                }
                ((Some(0.0), a_writes), (Some(1.0), b_writes)) if b_writes > 0.0 => {
                    assert_eq!(a_writes, 0.0, "the standby wrote");
                    Ok(false)
                }
                roles => Err(format!("(role, writes) of a and b: {roles:?}")),
            }
        },
    )
    .await;
    let (leader, standby, standby_name) = if a_leads {
        (&mut a, &mut b, "replica-b")
    } else {
        (&mut b, &mut a, "replica-a")
    };
    // With `--guest`, the one guest was loaded and checked at start: a standby lists it.
    let (status, body) = standby.http_get("/readyz").await;
    assert!(
        status == 200 && body.contains("[+]standing by") && body.contains("[+]guest "),
        "a standby is ready: {status}: {body}"
    );
    let first_holder = holder(&leases).await.expect("the Lease has a holder");
    assert!(!first_holder.starts_with(standby_name), "{first_holder}");

    // The leader dies without a word; a change is made meanwhile.
    leader.kill_hard();
    let killed = Instant::now();
    set_tag(&client, &namespace, "0.3.1").await;
    let new_holder = eventually(
        Duration::from_secs(30),
        "the standby holds the Lease",
        || async {
            match holder(&leases).await {
                Some(h) if h != first_holder => Ok(h),
                h => Err(format!("holder {h:?}")),
            }
        },
    )
    .await;
    let took_over_after = killed.elapsed();
    assert!(new_holder.starts_with(standby_name), "{new_holder}");
    // It waited for the dead leader's lease to run out (counted from the last renewal it saw,
    // at most one retry period before the kill), and not much longer.
    assert!(
        took_over_after >= LEASE_DURATION - 2 * RETRY_PERIOD,
        "took over after {took_over_after:?}: before the lease ran out"
    );
    assert!(
        took_over_after <= LEASE_DURATION + 3 * RETRY_PERIOD + Duration::from_secs(2),
        "took over after {took_over_after:?}"
    );
    eventually(
        Duration::from_secs(30),
        "the change made meanwhile converged",
        || all_images_have_tag(&client, &namespace, "0.3.1"),
    )
    .await;
    // (Counted when the reconcile ends, which can be just after the children show the change.)
    eventually(
        Duration::from_secs(10),
        "the new leader counted its writes",
        || async {
            match role_and_writes(standby).await {
                (Some(1.0), writes) if writes > 0.0 => Ok(()),
                other => Err(format!("(role, writes): {other:?}")),
            }
        },
    )
    .await;
    let lease = leases.get(LEASE).await.unwrap().spec.unwrap();
    assert_eq!(lease.lease_transitions, Some(1));
    assert_eq!(lease.lease_duration_seconds, Some(6));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_that_loses_its_lease_stops_writing_and_releases_it_on_sigterm() {
    let (plane, client, namespace) = e2e::scenario::namespace("leader-lost").await;
    let leases = Api::<Lease>::namespaced(client.clone(), &namespace);
    // A folder of guests, as the shipped Deployment runs.
    let folder = tempfile::tempdir().unwrap();
    std::fs::copy(potatohead_guest(), folder.path().join("potatohead.wasm")).unwrap();
    let guests = folder.path().display().to_string();
    let mut host = replica_serving(plane, &["--guests", &guests], &namespace, "only");
    create_sample_and_wait(&client, &namespace).await;

    // Another party takes the Lease (as a replica would after a long partition).
    eventually(
        Duration::from_secs(10),
        "the Lease taken by an intruder",
        || async {
            let mut lease = leases.get(LEASE).await.map_err(|e| e.to_string())?;
            let spec = lease.spec.get_or_insert_default();
            spec.holder_identity = Some("intruder".into());
            spec.lease_duration_seconds = Some(6);
            spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
            leases
                .replace(LEASE, &PostParams::default(), &lease)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
    let taken = Instant::now();
    eventually(
        Duration::from_secs(10),
        "the host notices it lost the Lease",
        || async {
            match role_and_writes(&host).await.0 {
                Some(0.0) if host.log().contains("leadership lost") => Ok(()),
                role => Err(format!("leader metric {role:?}")),
            }
        },
    )
    .await;
    let (_, writes_when_lost) = role_and_writes(&host).await;
    // Its guests left /readyz with their controllers (a replica that leads again reads the
    // folder afresh).
    let (status, body) = host.http_get("/readyz").await;
    assert_eq!(status, 200, "a standby is ready: {body}");
    assert!(
        body.contains("[+]standing by") && !body.contains("guest"),
        "{body}"
    );
    set_tag(&client, &namespace, "0.3.2").await;
    // The intruder's record cannot have expired yet: the host must not touch the children.
    tokio::time::sleep((LEASE_DURATION - 2 * RETRY_PERIOD).saturating_sub(taken.elapsed())).await;
    assert!(
        taken.elapsed() < LEASE_DURATION,
        "the check came too late to mean anything"
    );
    all_images_have_tag(&client, &namespace, "0.3.0")
        .await
        .expect("a replica without the Lease changed children");
    assert_eq!(role_and_writes(&host).await.1, writes_when_lost);

    // The intruder never renews: the host takes the Lease back and converges the change.
    eventually(Duration::from_secs(30), "the host leads again", || async {
        match holder(&leases).await {
            Some(h) if h.starts_with("only_") => Ok(()),
            h => Err(format!("holder {h:?}")),
        }
    })
    .await;
    eventually(Duration::from_secs(30), "the change converged", || {
        all_images_have_tag(&client, &namespace, "0.3.2")
    })
    .await;
    let (status, body) = host.http_get("/readyz").await;
    assert!(
        status == 200 && body.contains("[+]guest potatohead ok"),
        "{status}: {body}"
    );

    // SIGTERM: the last write done, the Lease is handed over at once.
    let status = tokio::task::block_in_place(|| host.terminate(Duration::from_secs(15)));
    assert_eq!(status.map(|s| s.code()), Some(Some(0)));
    let lease = leases.get(LEASE).await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity, None, "released");
    assert_eq!(lease.lease_duration_seconds, Some(1));
}
