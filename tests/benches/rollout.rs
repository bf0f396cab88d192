//! Benchmark (not a test): rolling out a new guest, at scale on a control plane of its own.
//!
//! 1. Shadow: a rolling change (a new tag on every one of PARENTS PotatoHeads) with the host
//!    alone, then another with a shadow candidate deciding beside the active guest (the same
//!    guest under another digest, so that every parent agrees and the candidate's work is all
//!    there is to see). The host's CPU and the API server's request counts of each. Targets:
//!    CPU with the candidate ≤ 1.3× without; zero extra API requests.
//! 2. Diff: with the host stopped, a new tag on every parent; then `reconciler-host diff` over
//!    all of them, against `kubectl diff --server-side` of the same rendered children for
//!    KUBECTL_PARENTS of them (kubectl takes about 14 ms per object, so all 13 000 would take
//!    minutes), compared per object. Target: diff ≥ 5× faster.
//! 3. Rollback: a guest failing on half the parents swapped in; from the reconcile that trips
//!    the rule to the previous guest active (the host's own measure, in its log line), and from
//!    the new file written to the rollback's metric. Target: ≤ 2 s.
//!
//! Run: `make bench-rollout` (release host; `PARENTS=1000 KUBECTL_PARENTS=20`; `KUBECTL=…` for
//! another kubectl than the one on the PATH). Numbers go to docs/benchmarks.md by hand, with the
//! CPU model this prints.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::paths::{host_binary, potatohead_guest, replace_file, test_guest};
use e2e::rollout::with_custom_section;
use e2e::{DedicatedPlane, HostProcess, Options, TestNamespace, eventually, potatohead_api};
use kube::Client;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

#[path = "scale/parents.rs"]
mod parents;
#[path = "scale/requests.rs"]
mod requests;
#[path = "scale/status_watch.rs"]
mod status_watch;
use parents::{create_parents, set_tags};
use requests::request_counts;
use status_watch::StatusWatch;

/// Children per sample PotatoHead.
const CHILDREN: usize = 13;
const FIELD_MANAGER: &str = "wasm-reconciler";
const ROLLED_BACK: &str = r#"reconciler_guest_reloads_total{result="rolled_back"}"#;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The host serving `guest` in `namespace`, logging at `info` as in production.
fn start_host(plane: &DedicatedPlane, guest: &Path, namespace: &str) -> HostProcess {
    let args = [
        "run",
        "--guest",
        guest.to_str().unwrap(),
        "--namespace",
        namespace,
        "--guest-poll-interval",
        "1h",
    ]
    .map(String::from);
    HostProcess::spawn(
        plane,
        &plane.kubeconfig,
        &args,
        &[("RUST_LOG".to_string(), "info".to_string())],
    )
}

/// What one rolling change cost: wall time, host CPU seconds, API requests by verb.
struct Roll {
    time: Duration,
    cpu: f64,
    requests: BTreeMap<String, f64>,
}

async fn roll(
    client: &Client,
    host: &HostProcess,
    statuses: &mut StatusWatch,
    (namespace, names): (&str, &[String]),
    (tag, generation): (&str, i64),
) -> Roll {
    let requests_before = request_counts(client).await;
    let cpu_before = host.cpu_seconds();
    let started = Instant::now();
    set_tags(client, namespace, names, tag).await;
    statuses.wait_for(names.len(), generation).await;
    let time = started.elapsed();
    // The last status writes' echoes: let them arrive before reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu = host.cpu_seconds() - cpu_before;
    let after = request_counts(client).await;
    let requests = after
        .iter()
        .map(|(key, n)| (key.clone(), n - requests_before.get(key).unwrap_or(&0.0)))
        .filter(|(_, n)| *n > 0.0)
        .collect();
    Roll {
        time,
        cpu,
        requests,
    }
}

/// The shadow report's counts for the guest `potatohead`.
async fn shadow_counts(host: &HostProcess) -> Value {
    let (_, body) = host.http_get("/shadow").await;
    let report: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    report["guests"]["potatohead"]["counts"].clone()
}

/// `kubectl` to compare with: `$KUBECTL`, else the one on the PATH.
fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

/// The children the guest renders for each named parent as it is in the cluster, in one List.
async fn rendered_children(client: &Client, namespace: &str, names: &[String]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let api = potatohead_api(client, namespace);
    let mut items = Vec::new();
    for name in names {
        let parent = api.get(name).await.unwrap();
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, serde_saphyr::to_string(&parent).unwrap()).unwrap();
        let output = Command::new(host_binary())
            .args(["render", "-o", "json", "--guest"])
            .arg(potatohead_guest())
            .arg("--parent")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let list: Value = serde_json::from_slice(&output.stdout).unwrap();
        let rendered = list["items"].as_array().unwrap();
        // The last item is the parent with its status.
        items.extend(rendered[..rendered.len() - 1].iter().cloned());
    }
    json!({ "apiVersion": "v1", "kind": "List", "items": items })
}

/// A field `key=` of a log line.
fn log_field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(&format!("{key}="))
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or("?")
}

#[tokio::main]
async fn main() {
    let parents = env_number("PARENTS", 1000);
    let kubectl_parents = env_number("KUBECTL_PARENTS", 20).min(parents);
    println!(
        "CPU: {} ({} cores)",
        e2e::proc_stats::cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let kubectl_version = Command::new(kubectl())
        .args(["version", "--client"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_else(|e| format!("not runnable: {e}"));
    println!("{parents} PotatoHeads; kubectl: {kubectl_version}");
    let plane = DedicatedPlane::start(Options::default()).await;
    let client = plane.client().await;
    let namespace = TestNamespace::create(&client, "rollout").await.name;
    let names: Vec<String> = (0..parents).map(|i| format!("ph-{i:04}")).collect();
    let folder = tempfile::tempdir().unwrap();
    let guest = folder.path().join("potatohead.wasm");
    let candidate = folder.path().join("potatohead.candidate.wasm");
    std::fs::copy(potatohead_guest(), &guest).unwrap();

    // 1. Shadow.
    let mut statuses = StatusWatch::start(&client, &namespace).await;
    let mut host = start_host(&plane, &guest, &namespace);
    create_parents(&client, &namespace, &names).await;
    statuses.wait_for(parents, 1).await;
    println!("{parents} PotatoHeads converged");
    let alone = roll(
        &client,
        &host,
        &mut statuses,
        (&namespace, &names),
        ("0.3.1", 2),
    )
    .await;
    let same = with_custom_section(&std::fs::read(&guest).unwrap(), "bench");
    replace_file(&candidate, &same);
    let every_parent_agrees = json!({ "agree": parents, "diverge": 0, "fail": 0 });
    eventually(
        Duration::from_secs(600),
        "the candidate judged on every parent",
        || async {
            let counts = shadow_counts(&host).await;
            (counts == every_parent_agrees)
                .then_some(())
                .ok_or(format!("{counts}"))
        },
    )
    .await;
    let shadowed = roll(
        &client,
        &host,
        &mut statuses,
        (&namespace, &names),
        ("0.3.2", 3),
    )
    .await;
    let counts = shadow_counts(&host).await;
    assert_eq!(
        counts, every_parent_agrees,
        "the candidate agrees throughout"
    );
    std::fs::remove_file(&candidate).unwrap();
    host.kill_hard();

    // 2. Diff.
    set_tags(&client, &namespace, &names, "0.3.3").await;
    let started = Instant::now();
    let output = Command::new(host_binary())
        .args(["diff", "-o", "json", "--guest"])
        .arg(&guest)
        .args(["--namespace", &namespace])
        .env("KUBECONFIG", &plane.kubeconfig)
        .output()
        .unwrap();
    let diff_time = started.elapsed();
    assert_eq!(
        output.status.code(),
        Some(1),
        "diff finds differences: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let summary = &report["summary"];
    let list = rendered_children(&client, &namespace, &names[..kubectl_parents]).await;
    let objects = list["items"].as_array().unwrap().len();
    let file = folder.path().join("children.json");
    std::fs::write(&file, list.to_string()).unwrap();
    let started = Instant::now();
    let kubectl_output = Command::new(kubectl())
        .args(["diff", "--server-side", "--force-conflicts"])
        .args(["--field-manager", FIELD_MANAGER, "-f"])
        .arg(&file)
        .env("KUBECONFIG", &plane.kubeconfig)
        .env("KUBECTL_EXTERNAL_DIFF", "diff -u -N")
        .output()
        .unwrap();
    let kubectl_time = started.elapsed();
    assert_eq!(
        kubectl_output.status.code(),
        Some(1),
        "kubectl diff finds differences: {}",
        String::from_utf8_lossy(&kubectl_output.stderr)
    );

    // 3. Rollback: half the parents make the v2 test guest fail.
    let mark = Patch::Merge(
        json!({ "metadata": { "annotations": { "podtato.example.com/v2-fails": "yes" } } }),
    );
    let api = potatohead_api(&client, &namespace);
    for name in names.iter().step_by(2) {
        api.patch(name, &PatchParams::default(), &mark)
            .await
            .unwrap();
    }
    let host = start_host(&plane, &guest, &namespace);
    statuses.wait_for(parents, 4).await;
    let started = Instant::now();
    replace_file(
        &guest,
        &std::fs::read(test_guest("potatohead_v2_guest")).unwrap(),
    );
    eventually(Duration::from_secs(120), "the rollback", || async {
        let n = host.counter(ROLLED_BACK).await;
        (n >= 1.0).then_some(()).ok_or(format!("{n}"))
    })
    .await;
    let to_rollback = started.elapsed();
    let log = host.log();
    let line = log
        .lines()
        .find(|l| l.contains("rolled back: the new guest failed"))
        .expect("the rollback's log line")
        .to_owned();

    let per_object = |time: Duration, objects: usize| time.as_secs_f64() * 1e3 / objects as f64;
    let diff_objects = parents * CHILDREN;
    let total = |requests: &BTreeMap<String, f64>| requests.values().sum::<f64>();
    println!("\n| measure | value |");
    println!("|---|---|");
    println!(
        "| rolling change, host alone | {:.1} s, host CPU {:.1} s, {:.0} API requests |",
        alone.time.as_secs_f64(),
        alone.cpu,
        total(&alone.requests)
    );
    println!(
        "| rolling change, with an agreeing shadow candidate | {:.1} s, host CPU {:.1} s ({:.2}× alone), {:.0} API requests ({:+.0}) |",
        shadowed.time.as_secs_f64(),
        shadowed.cpu,
        shadowed.cpu / alone.cpu,
        total(&shadowed.requests),
        total(&shadowed.requests) - total(&alone.requests)
    );
    println!(
        "| `reconciler-host diff`, {parents} parents ({diff_objects} children; {} differ) | {:.1} s, {:.2} ms per object |",
        summary["differ"],
        diff_time.as_secs_f64(),
        per_object(diff_time, diff_objects)
    );
    println!(
        "| `kubectl diff --server-side`, the same children of {kubectl_parents} parents ({objects} objects) | {:.1} s, {:.2} ms per object |",
        kubectl_time.as_secs_f64(),
        per_object(kubectl_time, objects)
    );
    println!(
        "| diff vs kubectl, per object | {:.1}× faster |",
        per_object(kubectl_time, objects) / per_object(diff_time, diff_objects)
    );
    println!(
        "| rollback: tripping reconcile → previous guest active | {} ms ({} of {} parents newly failing) |",
        log_field(&line, "took_ms"),
        log_field(&line, "newly_failing"),
        log_field(&line, "reconciled"),
    );
    println!(
        "| rollback: new file written → rolled back (metric seen) | {:.0} ms |",
        to_rollback.as_secs_f64() * 1e3
    );
    println!("\nAPI requests by verb, alone → with the candidate:");
    let keys: std::collections::BTreeSet<&String> = alone
        .requests
        .keys()
        .chain(shadowed.requests.keys())
        .collect();
    for key in keys {
        println!(
            "  {key}: {:.0} → {:.0}",
            alone.requests.get(key).unwrap_or(&0.0),
            shadowed.requests.get(key).unwrap_or(&0.0)
        );
    }
}
