//! End to end: a shadow candidate (`potatohead.candidate.wasm` beside `potatohead.wasm`) in a
//! running host, against a real kube-apiserver. A candidate that decides as the active guest does
//! agrees on every parent and costs no write; one that decides otherwise diverges on every parent,
//! is announced once per parent (one Event each, however often it is judged), and writes nothing;
//! one for another parent kind is refused; promoting it (`mv` over the guest's file) makes it the
//! active guest, which then writes what it decided.

use std::process::Command;

use e2e::api_writes::write_requests;
use e2e::paths::{host_binary, podtatohead_guest, potatohead_guest, replace_file, test_guest};
use e2e::rollout::{
    DEPLOYMENTS_PER_PARENT, digest_of, events, every_parent_reconciled, v2_deployments,
    with_custom_section,
};
use e2e::{CONVERGE, HostProcess, Scenario, create_sample_potatohead, eventually, potatohead_api};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

const PARENTS: usize = 20;
const DEPLOYMENTS: usize = PARENTS * DEPLOYMENTS_PER_PARENT;
/// The kinds the host writes for PotatoHeads, Events aside.
const WRITTEN: [&str; 4] = ["potatoheads", "deployments", "services", "configmaps"];

fn name(i: usize) -> String {
    format!("ph-{i:02}")
}

/// The host's shadow report of the guest `potatohead` (`null`: no candidate).
async fn shadow_report(host: &HostProcess) -> Value {
    let (status, body) = host.http_get("/shadow").await;
    assert_eq!(status, 200, "{body}");
    let report: Value = serde_json::from_str(&body).expect("/shadow is JSON");
    report["guests"]["potatohead"].clone()
}

/// Waits until the candidate named `candidate` has judged every parent, with `counts`.
async fn judged(host: &HostProcess, candidate: &str, counts: Value) -> Value {
    eventually(
        CONVERGE,
        &format!("candidate {candidate} judged every parent: {counts}"),
        || async {
            let report = shadow_report(host).await;
            if report["candidate"]["name"] == candidate && report["counts"] == counts {
                Ok(report)
            } else {
                Err(format!("{report}"))
            }
        },
    )
    .await
}

/// The value of `reconciler_shadow_parents` for `verdict` and the candidate of `digest`.
async fn shadow_gauge(host: &HostProcess, digest: &str, verdict: &str) -> Option<f64> {
    let (_, metrics) = host.http_get("/metrics").await;
    metrics
        .lines()
        .filter(|line| line.starts_with("reconciler_shadow_parents{"))
        .find(|line| {
            line.contains(&format!("verdict=\"{verdict}\""))
                && line.contains(&format!("candidate_digest=\"{digest}\""))
                && line.contains("guest=\"potatohead\"")
        })
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

/// `reconciler-host shadow --endpoint …`: (exit code, stdout).
async fn shadow_command(host: &HostProcess) -> (i32, String) {
    let endpoint = format!("http://{}", host.metrics_address().await);
    let output = Command::new(host_binary())
        .args(["shadow", "--endpoint", &endpoint])
        .output()
        .expect("reconciler-host shadow runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shadow_candidate_is_judged_on_every_parent_and_writes_nothing_until_promoted() {
    let folder = tempfile::tempdir().unwrap();
    let guest = folder.path().join("potatohead.wasm");
    let candidate = folder.path().join("potatohead.candidate.wasm");
    std::fs::copy(potatohead_guest(), &guest).unwrap();
    let scenario = Scenario::start("shadow", &guest, &[]).await;
    let (client, namespace) = (scenario.client.clone(), scenario.namespace.clone());
    for i in 0..PARENTS {
        create_sample_potatohead(&client, &namespace, &name(i)).await;
    }
    every_parent_reconciled(&client, &namespace, PARENTS).await;
    assert_eq!(shadow_report(&scenario.host).await, Value::Null);
    let (code, text) = shadow_command(&scenario.host).await;
    assert_eq!(
        (code, text.lines().next()),
        (
            0,
            Some("no shadow candidate: put NAME.candidate.wasm beside a guest's NAME.wasm")
        )
    );

    // The same decisions under another digest: every parent agrees, and nothing is written.
    let before = write_requests(&client, &WRITTEN).await;
    let same = with_custom_section(&std::fs::read(&guest).unwrap(), "shadow-test");
    replace_file(&candidate, &same);
    let report = judged(
        &scenario.host,
        "potatohead",
        json!({ "agree": PARENTS, "diverge": 0, "fail": 0 }),
    )
    .await;
    assert_eq!(report["parents"], json!([]));
    let same_digest = digest_of(&candidate);
    assert_eq!(report["candidate"]["digest"], same_digest.as_str());
    assert_eq!(
        shadow_gauge(&scenario.host, &same_digest, "agree").await,
        Some(PARENTS as f64)
    );
    assert_eq!(
        write_requests(&client, &WRITTEN).await,
        before,
        "an agreeing candidate, and the sweep that judged every parent, wrote nothing"
    );
    assert_eq!(
        shadow_command(&scenario.host).await.0,
        0,
        "all agree: exit 0"
    );

    // Other decisions (a label on every child): every parent diverges, once announced each,
    // and nothing of it is written, however often the parents are judged.
    let v2 = test_guest("potatohead_v2_guest");
    replace_file(&candidate, &std::fs::read(&v2).unwrap());
    let report = judged(
        &scenario.host,
        "potatohead-v2",
        json!({ "agree": 0, "diverge": PARENTS, "fail": 0 }),
    )
    .await;
    let first = &report["parents"][0];
    assert_eq!(first["parent"], format!("{namespace}/{}", name(0)));
    assert_eq!(first["verdict"], "diverges");
    assert_eq!(first["children"][0]["change"], "changes");
    assert_eq!(
        first["children"][0]["fields"][0],
        json!({ "path": "metadata.labels[\"podtato.example.com/variant\"]", "before": null, "after": "v2" }),
        "{first}"
    );
    assert_eq!(
        shadow_gauge(&scenario.host, &digest_of(&v2), "diverge").await,
        Some(PARENTS as f64)
    );
    assert_eq!(
        shadow_gauge(&scenario.host, &same_digest, "agree").await,
        None,
        "the replaced candidate's series went with it"
    );
    eventually(
        CONVERGE,
        "one CandidateDiverges Event per parent",
        || async {
            let found = events(&client, &namespace, "CandidateDiverges").await.len();
            (found == PARENTS)
                .then_some(())
                .ok_or(format!("{found} Events"))
        },
    )
    .await;
    // Every parent judged again (a label on each makes the host reconcile it).
    let judged_before = scenario
        .host
        .counter("reconciler_reconciles_total{result=\"success\",guest=\"potatohead\"}")
        .await;
    let parents = potatohead_api(&client, &namespace);
    for i in 0..PARENTS {
        let touch = Patch::Merge(json!({ "metadata": { "labels": { "touched": "yes" } } }));
        parents
            .patch(&name(i), &PatchParams::default(), &touch)
            .await
            .unwrap();
    }
    eventually(CONVERGE, "every parent reconciled again", || async {
        let now = scenario
            .host
            .counter("reconciler_reconciles_total{result=\"success\",guest=\"potatohead\"}")
            .await;
        (now >= judged_before + PARENTS as f64)
            .then_some(())
            .ok_or(format!("{} more reconciles", now - judged_before))
    })
    .await;
    let announced = events(&client, &namespace, "CandidateDiverges").await;
    assert_eq!(announced.len(), PARENTS, "still one Event per parent");
    assert!(
        announced.iter().all(|e| e.series.is_none()),
        "and none repeated"
    );
    assert_eq!(
        v2_deployments(&client, &namespace).await,
        0,
        "nothing the candidate decided was written"
    );
    let (code, text) = shadow_command(&scenario.host).await;
    assert_eq!(code, 1, "a diverging candidate: exit 1\n{text}");
    assert!(
        text.contains(&format!(
            "guest potatohead: candidate potatohead-v2 0.2.0 ({}): 0 agree, {PARENTS} diverge, 0 fail",
            digest_of(&v2)
        )),
        "{text}"
    );
    assert!(
        text.contains("metadata.labels[\"podtato.example.com/variant\"]: (none) → \"v2\""),
        "{text}"
    );

    // A candidate for another parent kind is refused, with the reason; no candidate is left.
    replace_file(&candidate, &std::fs::read(podtatohead_guest()).unwrap());
    eventually(CONVERGE, "the PodTatoHead candidate is refused", || async {
        let log = scenario.host.log();
        (log.contains("refused the shadow candidate")
            && log.contains("the shadow candidate reconciles PodTatoHead"))
        .then_some(())
        .ok_or("not yet".to_owned())
    })
    .await;
    assert_eq!(shadow_report(&scenario.host).await, Value::Null);

    // Promotion: the candidate's file over the guest's. The hot swap makes it the active guest,
    // which writes what it decides; the candidate slot is empty.
    replace_file(&candidate, &std::fs::read(&v2).unwrap());
    judged(
        &scenario.host,
        "potatohead-v2",
        json!({ "agree": 0, "diverge": PARENTS, "fail": 0 }),
    )
    .await;
    std::fs::rename(&candidate, &guest).unwrap();
    eventually(
        CONVERGE,
        "the promoted guest's label on every Deployment",
        || async {
            let found = v2_deployments(&client, &namespace).await;
            (found == DEPLOYMENTS)
                .then_some(())
                .ok_or(format!("{found}/{DEPLOYMENTS}"))
        },
    )
    .await;
    eventually(CONVERGE, "no candidate after the promotion", || async {
        let report = shadow_report(&scenario.host).await;
        report.is_null().then_some(()).ok_or(format!("{report}"))
    })
    .await;
}
