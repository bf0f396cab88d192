//! End to end: what an operator of the host sees: metrics, health and readiness, against a real
//! API server with the real guest.

use std::time::Duration;

use e2e::paths::potatohead_guest;
use e2e::{CHILDREN_APPLIED, HostProcess, eventually, metric_value, potatohead_api};

/// A fresh namespace with a host reconciling only it, and the sample PotatoHead `demo` in it.
async fn host_with_sample(prefix: &str) -> (kube::Client, String, HostProcess) {
    let (plane, client, namespace) = e2e::scenario::namespace(prefix).await;
    let host = HostProcess::start(plane, &potatohead_guest(), &["--namespace", &namespace]);
    e2e::create_sample_potatohead(&client, &namespace, "demo").await;
    (client, namespace, host)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_the_reconciles_writes_and_guest_calls_of_the_sample() {
    let (_client, _namespace, host) = host_with_sample("metrics").await;

    let metrics = eventually(Duration::from_secs(30), "13 applies counted", || async {
        let (status, metrics) = host.http_get("/metrics").await;
        let applied = metric_value(&metrics, CHILDREN_APPLIED);
        let succeeded = metric_value(&metrics, r#"reconciler_reconciles_total{result="success"}"#);
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
        metric_value(&metrics, r#"reconciler_reconciles_total{result="success"}"#)
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
    // Without leader election this replica reconciles.
    assert_eq!(
        metric_value(&metrics, "reconciler_leader"),
        Some(1.0),
        "{metrics}"
    );
    // Every parent's generation reconciled: nothing waits.
    eventually(Duration::from_secs(30), "queue depth 0", || async {
        let (_, metrics) = host.http_get("/metrics").await;
        match metric_value(&metrics, "reconciler_queue_depth") {
            Some(0.0) => Ok(()),
            depth => Err(format!("{depth:?}")),
        }
    })
    .await;
    // Nothing failed, so no failure series exists at all.
    assert!(
        !metrics.contains("reconciler_guest_failures_total{"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_answers_at_once_and_readyz_once_caches_synced() {
    let (plane, _, namespace) = e2e::scenario::namespace("health").await;
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

#[tokio::test(flavor = "multi_thread")]
async fn events_tell_of_created_children_and_of_an_invalid_spec_once() {
    use kube::api::{Patch, PatchParams};

    let (client, namespace, _host) = host_with_sample("events").await;
    let with_reason = |reason: &'static str| e2e::events_about(&client, &namespace, "demo", reason);

    let created = eventually(Duration::from_secs(30), "ChildrenCreated event", || {
        with_reason("ChildrenCreated")
    })
    .await;
    assert_eq!(created[0].type_.as_deref(), Some("Normal"));
    assert!(
        created[0]
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("Deployment demo-hat"),
        "{:?}",
        created[0].note
    );

    let invalid = serde_json::json!({ "spec": { "parts": [{ "name": "hat", "env": [{ "name": "PODTATO_PORT", "value": "1" }] }] } });
    potatohead_api(&client, &namespace)
        .patch("demo", &PatchParams::default(), &Patch::Merge(invalid))
        .await
        .unwrap();
    let warned = eventually(Duration::from_secs(30), "InvalidSpec event", || {
        with_reason("InvalidSpec")
    })
    .await;
    assert_eq!(warned[0].type_.as_deref(), Some("Warning"));
    assert!(
        warned[0]
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("spec.parts[0].env[0].name"),
        "{:?}",
        warned[0].note
    );
    // The status write and later reconciles do not repeat it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = with_reason("InvalidSpec").await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].series, None, "the event was repeated as a series");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_host_promptly_and_cleanly() {
    let (_client, _namespace, mut host) = host_with_sample("sigterm").await;
    eventually(Duration::from_secs(30), "host reconciling", || async {
        if host.log().contains("children reconciled") {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await;
    let status = tokio::task::block_in_place(|| host.terminate(Duration::from_secs(10)));
    assert_eq!(
        status.map(|s| s.code()),
        Some(Some(0)),
        "exit status after SIGTERM"
    );
    assert!(
        host.log().contains("controller stopped"),
        "stopped through the graceful path"
    );
}
