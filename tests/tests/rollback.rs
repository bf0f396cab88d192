//! End to end: rollback by itself, against a real kube-apiserver. A new guest that fails on half
//! of the parents (where the guest before it did not) is rolled back to the previous guest within
//! the window: a log line, the `rolled_back` reload metric, a `GuestRolledBack` Event on the
//! parents it failed, the previous guest's decisions back on every child, and the rolled-back
//! file not taken again while it stays as it is. A new guest that is fine stays.

use std::time::{Duration, Instant};

use e2e::paths::{potatohead_guest, replace_file, test_guest};
use e2e::rollout::{
    DEPLOYMENTS_PER_PARENT, digest_of, events, every_parent_reconciled, v2_deployments,
    with_custom_section,
};
use e2e::{CONVERGE, HostProcess, Scenario, create_sample_potatohead, eventually, potatohead_api};
use kube::Client;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const PARENTS: usize = 20;
const DEPLOYMENTS: usize = PARENTS * DEPLOYMENTS_PER_PARENT;
/// The potatohead-v2 test guest fails on the parents with this annotation.
const FAILS: &str = "podtato.example.com/v2-fails";
const ROLLED_BACK: &str =
    r#"reconciler_guest_reloads_total{guest="potatohead",result="rolled_back"}"#;
const SWAPPED: &str = r#"reconciler_guest_reloads_total{guest="potatohead",result="swapped"}"#;

fn name(i: usize) -> String {
    format!("ph-{i:02}")
}

/// Sets (`Some`) or removes (`None`) the failing annotation on the even-numbered parents.
async fn mark_half(client: &Client, namespace: &str, value: Option<&str>) {
    let parents = potatohead_api(client, namespace);
    for i in (0..PARENTS).step_by(2) {
        let patch = Patch::Merge(json!({ "metadata": { "annotations": { FAILS: value } } }));
        parents
            .patch(&name(i), &PatchParams::default(), &patch)
            .await
            .unwrap();
    }
}

/// How many parents' status names the guest of `digest` as the one that decided last.
async fn decided_by(client: &Client, namespace: &str, digest: &str) -> usize {
    potatohead_api(client, namespace)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|p| p.data["status"]["reconciler"]["digest"] == digest)
        .count()
}

async fn all_decided_by(scenario: &Scenario, digest: &str) {
    let (client, namespace) = (&scenario.client, &scenario.namespace);
    eventually(
        CONVERGE,
        &format!("every parent decided by {digest}"),
        || async {
            let found = decided_by(client, namespace, digest).await;
            (found == PARENTS)
                .then_some(())
                .ok_or(format!("{found}/{PARENTS}"))
        },
    )
    .await;
}

async fn counter(host: &HostProcess, series: &str) -> f64 {
    host.counter(series).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_failing_on_half_the_parents_is_rolled_back_and_a_fine_one_stays() {
    let folder = tempfile::tempdir().unwrap();
    let guest = folder.path().join("potatohead.wasm");
    std::fs::copy(potatohead_guest(), &guest).unwrap();
    let original = digest_of(&guest);
    // The file's digest checked every second: a rolled-back file would be taken again at once
    // if the host did not remember it.
    let scenario = Scenario::start("rollback", &guest, &["--guest-poll-interval", "1s"]).await;
    let (client, namespace) = (scenario.client.clone(), scenario.namespace.clone());
    for i in 0..PARENTS {
        create_sample_potatohead(&client, &namespace, &name(i)).await;
    }
    every_parent_reconciled(&client, &namespace, PARENTS).await;
    // Half the parents marked: the active guest pays the annotation no heed.
    mark_half(&client, &namespace, Some("yes")).await;
    all_decided_by(&scenario, &original).await;

    // The new guest fails on the marked half: rolled back.
    let v2 = test_guest("potatohead_v2_guest");
    let started = Instant::now();
    replace_file(&guest, &std::fs::read(&v2).unwrap());
    let bad = digest_of(&guest);
    eventually(CONVERGE, "the new guest rolled back", || async {
        let rolled_back = counter(&scenario.host, ROLLED_BACK).await;
        (rolled_back == 1.0)
            .then_some(())
            .ok_or(format!("{rolled_back} rollbacks"))
    })
    .await;
    eprintln!("swap to rollback: {:?}", started.elapsed());
    let log = scenario.host.log();
    let line = log
        .lines()
        .find(|line| line.contains("rolled back: the new guest failed"))
        .unwrap_or_else(|| panic!("no rollback log line:\n{log}"));
    // Guests are named by their digest's first 12 hex digits in the log.
    let short = |digest: &str| digest[.."sha256:".len() + 12].to_owned();
    assert!(
        line.contains(&format!("rolled_back=potatohead-v2 0.2.0 ({}", short(&bad)))
            && line.contains(&format!("active=potatohead 0.1.0 ({}", short(&original))),
        "{line}"
    );
    // The previous guest decides again, everywhere: the v2 label it never set is gone from the
    // children the rolled-back guest wrote.
    all_decided_by(&scenario, &original).await;
    eventually(CONVERGE, "no v2 Deployment left", || async {
        let found = v2_deployments(&client, &namespace).await;
        (found == 0)
            .then_some(())
            .ok_or(format!("{found} v2 Deployments"))
    })
    .await;
    let announced = eventually(CONVERGE, "GuestRolledBack Events", || async {
        let found = events(&client, &namespace, "GuestRolledBack").await;
        (!found.is_empty())
            .then_some(found)
            .ok_or("none yet".to_owned())
    })
    .await;
    let marked: Vec<String> = (0..PARENTS).step_by(2).map(name).collect();
    for event in &announced {
        let parent = event.regarding.as_ref().and_then(|r| r.name.clone());
        assert!(
            parent.as_ref().is_some_and(|p| marked.contains(p)),
            "only the parents it failed on are told: {parent:?}"
        );
        let note = event.note.as_deref().unwrap_or_default();
        assert!(note.contains(&bad), "{note}");
    }
    assert!(
        announced.len() >= 5,
        "at least the rule's 5 failing parents are told: {}",
        announced.len()
    );
    // The rolled-back file stays where it is, checked every second, and is not taken again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        counter(&scenario.host, SWAPPED).await,
        1.0,
        "one swap, to v2"
    );
    assert_eq!(decided_by(&client, &namespace, &original).await, PARENTS);

    // A new guest that is fine on every parent (no parent marked): it stays.
    mark_half(&client, &namespace, None).await;
    replace_file(
        &guest,
        &with_custom_section(&std::fs::read(&v2).unwrap(), "fine"),
    );
    let fine = digest_of(&guest);
    all_decided_by(&scenario, &fine).await;
    eventually(
        CONVERGE,
        "the fine guest's label on every Deployment",
        || async {
            let found = v2_deployments(&client, &namespace).await;
            (found == DEPLOYMENTS)
                .then_some(())
                .ok_or(format!("{found}/{DEPLOYMENTS}"))
        },
    )
    .await;
    assert_eq!(counter(&scenario.host, SWAPPED).await, 2.0);
    assert_eq!(
        counter(&scenario.host, ROLLED_BACK).await,
        1.0,
        "no second rollback"
    );
}
