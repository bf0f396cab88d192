//! End to end: what an operator of the host sees: metrics, health and readiness, against a real
//! API server with the real guest.

use std::time::Duration;

use e2e::paths::potatohead_guest;
use e2e::{
    ControlPlane, HostProcess, TestNamespace, eventually, metric_value, potatohead_api,
    sample_potatohead,
};
use kube::api::PostParams;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_the_reconciles_writes_and_guest_calls_of_the_sample() {
    let plane = ControlPlane::shared().await;
    let client = plane.client().await;
    let namespace = TestNamespace::create(&client, "metrics").await.name;
    let host = HostProcess::start(plane, &potatohead_guest(), &["--namespace", &namespace]);
    potatohead_api(&client, &namespace)
        .create(
            &PostParams::default(),
            &sample_potatohead(&namespace, "demo"),
        )
        .await
        .unwrap();

    let metrics = eventually(Duration::from_secs(30), "13 applies counted", || async {
        let (status, metrics) = host.http_get("/metrics").await;
        let applied = metric_value(&metrics, r#"reconciler_children_total{action="Applied"}"#);
        let succeeded = metric_value(&metrics, r#"reconciler_reconciles_total{result="Success"}"#);
        if status == 200 && applied == Some(13.0) && succeeded.is_some() {
            Ok(metrics)
        } else {
            Err(format!(
                "{status} applied={applied:?} succeeded={succeeded:?}"
            ))
        }
    })
    .await;
    assert!(
        metric_value(&metrics, r#"reconciler_reconciles_total{result="Success"}"#)
            .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(
        metric_value(&metrics, "reconciler_guest_call_duration_seconds_count")
            .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(
        metric_value(&metrics, "reconciler_reconcile_duration_seconds_count")
            .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert!(
        metric_value(&metrics, "reconciler_reconciles_in_flight").is_some(),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"reconciler_guest_info{name="potatohead",version="0.1.0",digest="sha256:"#),
        "{metrics}"
    );
    // Nothing failed, so no failure series exists at all.
    assert!(
        !metrics.contains("reconciler_guest_failures_total{"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_answers_at_once_and_readyz_once_caches_synced() {
    let plane = ControlPlane::shared().await;
    let client = plane.client().await;
    let namespace = TestNamespace::create(&client, "health").await.name;
    let host = HostProcess::start(plane, &potatohead_guest(), &["--namespace", &namespace]);
    assert_eq!(host.http_get("/healthz").await, (200, "ok".to_string()));
    eventually(Duration::from_secs(30), "readyz ok", || async {
        let (status, body) = host.http_get("/readyz").await;
        if status == 200 && host.log().contains("child caches synced") {
            Ok(())
        } else {
            Err(format!("{status} {body}"))
        }
    })
    .await;
}
