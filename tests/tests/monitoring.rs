//! What `deploy/monitoring/` ships, with real parts: the alert rules pass `promtool check` and
//! their unit tests, and a real Prometheus scraping a real host, with the rules loaded, answers
//! every dashboard query, every recording rule and what every alert compares with series.

use std::process::Command;

use e2e::folder::{add_guest, write_file};
use e2e::paths::{test_guest, workspace_root};
use e2e::prometheus::{Prometheus, prometheus_bins};
use e2e::{CONVERGE, Scenario, eventually, potatohead_api};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

fn monitoring(file: &str) -> std::path::PathBuf {
    workspace_root().join("deploy/monitoring").join(file)
}

fn promtool(args: &[&str]) -> String {
    let output = Command::new(prometheus_bins().join("promtool"))
        .args(args)
        .current_dir(monitoring(""))
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn the_alert_rules_are_valid_and_pass_their_unit_tests() {
    assert!(promtool(&["check", "rules", "alerts.yaml"]).contains("SUCCESS"));
    assert!(promtool(&["test", "rules", "alerts.test.yaml"]).contains("SUCCESS"));
}

/// What to query for each rule of alerts.yaml, as (what, expression): a recording rule's
/// expression and the series it records; what an alert compares with its threshold (the alert's
/// whole expression only returns series while it fires).
fn rule_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(monitoring("alerts.yaml")).unwrap();
    let rules: Value = serde_saphyr::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let expr = rule["expr"].as_str().unwrap();
            if let Some(record) = rule["record"].as_str() {
                queries.push((format!("recording rule {record}"), expr.to_string()));
                queries.push((format!("recorded {record}"), record.to_string()));
            } else {
                let alert = rule["alert"].as_str().unwrap();
                queries.push((format!("alert {alert}"), compared(expr).to_string()));
            }
        }
    }
    queries
}

/// What an alert's expression compares with its threshold: the part before the last comparison.
fn compared(expr: &str) -> &str {
    [" >= ", " <= ", " == ", " != ", " > ", " < "]
        .iter()
        .filter_map(|op| expr.rfind(op))
        .max()
        .map_or(expr, |at| &expr[..at])
}

/// Every query of dashboard.json, the `guest` selector set to all guests.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(monitoring("dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$guest", ".*");
            queries.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    queries
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_prometheus_scraping_a_host_answers_every_dashboard_and_alert_expression() {
    // A host whose folder makes every series the rules and the dashboard read: a guest that
    // fails for one parent and has its status refused for another, a file it refuses, a swap,
    // and a refused swap.
    let folder = tempfile::tempdir().unwrap();
    add_guest(folder.path(), "hostile.wasm", &test_guest("hostile_guest"));
    write_file(folder.path(), "junk.wasm", "not a component");
    // The per-object cap raised so that the 4 MB status reaches the API server, which refuses it.
    let scenario = Scenario::serving_folder(
        "monitoring",
        folder.path(),
        &["--guest-max-object-kib", "8192"],
    )
    .await;
    let prometheus = Prometheus::scraping(
        scenario.host.metrics_address().await,
        &monitoring("alerts.yaml"),
    );
    let api = potatohead_api(&scenario.client, &scenario.namespace);
    for (parent, attack) in [
        ("calm", "none"),
        ("panics", "panic"),
        ("loud", "huge-status"),
    ] {
        e2e::create_sample_potatohead(&scenario.client, &scenario.namespace, parent).await;
        let patch =
            json!({ "metadata": { "annotations": { "hostile.example.com/attack": attack } } });
        api.patch(parent, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }
    let host_shows = |series: &'static str| {
        let host = &scenario.host;
        async move {
            eventually(CONVERGE, &format!("the host exports {series}"), || async {
                let (_, text) = host.http_get("/metrics").await;
                if text.lines().any(|l| l.starts_with(series)) {
                    Ok(())
                } else {
                    Err("not yet".to_string())
                }
            })
            .await
        }
    };
    host_shows("reconciler_guest_failures_total{kind=\"trap\",guest=\"hostile\"}").await;
    host_shows("reconciler_reconciles_total{result=\"status_failed\",guest=\"hostile\"}").await;
    add_guest(
        folder.path(),
        "hostile.wasm",
        &test_guest("potatohead_v2_guest"),
    );
    e2e::reconciled_by(&api, "calm", "potatohead-v2", CONVERGE).await;
    write_file(folder.path(), "hostile.wasm", "not a component either");
    host_shows("reconciler_guest_reloads_total{result=\"refused\",guest=\"hostile\"}").await;

    let mut expressions = dashboard_queries();
    expressions.extend(rule_queries());
    assert!(expressions.len() > 30, "{expressions:?}");
    for (what, expr) in expressions {
        eventually(CONVERGE, &format!("{what}: {expr}"), || async {
            match prometheus.query(&expr).await {
                Ok(series) if !series.is_empty() => Ok(()),
                Ok(_) => Err("no series".to_string()),
                Err(error) => Err(format!("{error}\n{}", prometheus.log())),
            }
        })
        .await;
    }
}
