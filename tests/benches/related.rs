//! Benchmark (not a test): related objects at scale, on a control plane of its own.
//!
//! PARENTS PotatoHeads (default 1000, two parts each: two Deployments and two Services), of which
//! READERS (default 100) read one ConfigMap through `spec.configRef`. Then, each timed:
//!
//! A. The ConfigMap changes, until every reader's two Deployments carry the new value.
//! B. The same readers' specs change directly (a new tag), until their Deployments carry it.
//!
//! For each: wall time, host CPU, the host's reconciles (its `reconciler_reconciles_total`), and
//! the parents that applied anything (its "children reconciled" log lines, one per reconcile
//! that wrote a child). Targets: in A exactly READERS parents apply and the reconciles do not
//! exceed B's (no unrelated parent is reconciled: the reverse index, not a walk over parents);
//! the host's CPU in A is at most 1.2x B's. Also: the API server's requests for ConfigMaps
//! during A (target: no GET or LIST; the host reads from its caches).
//!
//! Run: `make bench-related` (release host; `PARENTS=… READERS=…`). Numbers go to
//! docs/benchmarks.md by hand, with the CPU model this prints.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use e2e::paths::potatohead_guest;
use e2e::{CHILDREN_APPLIED, DedicatedPlane, HostProcess, Options, TestNamespace, metric_value};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const CONCURRENCY: usize = 32;
/// Children per parent: two parts, a Deployment and a Service each.
const CHILDREN: usize = 4;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let parents = env_number("PARENTS", 1000);
    let readers = env_number("READERS", 100).min(parents);
    println!(
        "CPU: {} ({} cores)",
        e2e::proc_stats::cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{parents} PotatoHeads, {readers} of them reading one ConfigMap");
    let plane = DedicatedPlane::start(Options::default()).await;
    let client = plane.client().await;
    let namespace = TestNamespace::create(&client, "related").await.name;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let map: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "shared" },
        "data": { "GREETING": "hello" },
    }))
    .unwrap();
    maps.create(&PostParams::default(), &map).await.unwrap();

    let host = HostProcess::spawn(
        &plane,
        &plane.kubeconfig,
        &[
            "run".into(),
            "--guest".into(),
            potatohead_guest().display().to_string(),
            "--namespace".into(),
            namespace.clone(),
        ],
        &[("RUST_LOG".to_string(), "info".to_string())],
    );
    let names: Vec<String> = (0..parents).map(|i| format!("ph-{i}")).collect();
    let reading: Vec<String> = names[..readers].to_vec();
    create_parents(&client, &namespace, &names, readers).await;
    wait_for_applies(&host, (parents * CHILDREN) as f64).await;
    // Let the echoes of the creation (status writes, child events) die down.
    settle(&host).await;
    println!("converged: {} children", parents * CHILDREN);

    let change = Phase::start(&host, &client).await;
    maps.patch(
        "shared",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "GREETING": "bonjour" } })),
    )
    .await
    .unwrap();
    let related = change.finish(&host, &client, readers).await;
    settle(&host).await;

    let direct = Phase::start(&host, &client).await;
    set_tags(&client, &namespace, &reading, "0.3.1").await;
    let specs = direct.finish(&host, &client, readers).await;

    println!();
    println!("| | ConfigMap change (A) | the readers' specs changed (B) |");
    println!("|---|---|---|");
    println!(
        "| wall time | {:.2} s | {:.2} s |",
        related.time.as_secs_f64(),
        specs.time.as_secs_f64()
    );
    println!(
        "| host CPU | {:.2} s | {:.2} s |",
        related.host_cpu, specs.host_cpu
    );
    println!(
        "| reconciles | {:.0} | {:.0} |",
        related.reconciles, specs.reconciles
    );
    println!(
        "| parents that applied | {} | {} |",
        related.applied_parents.len(),
        specs.applied_parents.len()
    );
    println!(
        "| ConfigMap reads (GET, LIST) by anyone | {:.0} | {:.0} |",
        related.config_map_reads, specs.config_map_reads
    );
    let outsiders: Vec<&String> = related
        .applied_parents
        .iter()
        .filter(|p| !reading.contains(p))
        .collect();
    println!();
    println!(
        "A: {} parents applied, {} of them not readers; host CPU A/B = {:.2} (target <= 1.2); reconciles A/B = {:.2}",
        related.applied_parents.len(),
        outsiders.len(),
        related.host_cpu / specs.host_cpu.max(1e-9),
        related.reconciles / specs.reconciles.max(1.0)
    );
}

/// What one phase cost.
struct Measured {
    time: Duration,
    host_cpu: f64,
    reconciles: f64,
    applied_parents: BTreeSet<String>,
    config_map_reads: f64,
}

struct Phase {
    started: Instant,
    cpu: f64,
    reconciles: f64,
    applied: f64,
    log_lines: usize,
    reads: f64,
}

impl Phase {
    async fn start(host: &HostProcess, client: &Client) -> Phase {
        Phase {
            started: Instant::now(),
            cpu: host.cpu_seconds(),
            reconciles: counter(host, "reconciler_reconciles_total").await,
            applied: counter(host, CHILDREN_APPLIED).await,
            log_lines: host.log().lines().count(),
            reads: config_map_reads(client).await,
        }
    }

    /// Waits until `readers` parents applied their two Deployments, then until the host is
    /// quiet, and says what it cost.
    async fn finish(self, host: &HostProcess, client: &Client, readers: usize) -> Measured {
        wait_for_applies(host, self.applied + (readers * 2) as f64).await;
        let time = self.started.elapsed();
        settle(host).await;
        let log = host.log();
        let applied_parents = log
            .lines()
            .skip(self.log_lines)
            .filter(|line| line.contains("children reconciled"))
            .filter_map(|line| {
                let name = line.split(" name=").nth(1)?;
                Some(name.split([' ', '}']).next()?.to_string())
            })
            .collect();
        Measured {
            time,
            host_cpu: host.cpu_seconds() - self.cpu,
            reconciles: counter(host, "reconciler_reconciles_total").await - self.reconciles,
            applied_parents,
            config_map_reads: config_map_reads(client).await - self.reads,
        }
    }
}

async fn counter(host: &HostProcess, series: &str) -> f64 {
    let (_, metrics) = host.http_get("/metrics").await;
    metric_value(&metrics, series).unwrap_or(0.0)
}

/// Waits until the host has applied `at_least` children in all.
async fn wait_for_applies(host: &HostProcess, at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(900);
    while counter(host, CHILDREN_APPLIED).await < at_least {
        assert!(
            Instant::now() < deadline,
            "the host applied fewer than {at_least} children:\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the host's reconcile count stops moving for two seconds.
async fn settle(host: &HostProcess) {
    let mut last = counter(host, "reconciler_reconciles_total").await;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = counter(host, "reconciler_reconciles_total").await;
        if now == last {
            return;
        }
        last = now;
    }
}

/// GET and LIST requests for ConfigMaps the API server has answered (its own counters).
async fn config_map_reads(client: &Client) -> f64 {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| l.contains("resource=\"configmaps\""))
        .filter(|l| l.contains("verb=\"GET\"") || l.contains("verb=\"LIST\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn create_parents(client: &Client, namespace: &str, names: &[String], readers: usize) {
    let api = e2e::potatohead_api(client, namespace);
    futures::stream::iter(names.iter().enumerate())
        .map(|(i, name)| {
            let api = api.clone();
            let mut spec =
                json!({ "tag": "0.3.0", "parts": [{ "name": "hat" }, { "name": "left-arm" }] });
            if i < readers {
                spec["configRef"] = json!({ "name": "shared" });
            }
            let parent = serde_json::from_value(json!({
                "apiVersion": "podtato.example.com/v1alpha1",
                "kind": "PotatoHead",
                "metadata": { "name": name, "namespace": namespace },
                "spec": spec,
            }))
            .unwrap();
            async move { api.create(&PostParams::default(), &parent).await }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}

async fn set_tags(client: &Client, namespace: &str, names: &[String], tag: &str) {
    let api = e2e::potatohead_api(client, namespace);
    futures::stream::iter(names)
        .map(|name| {
            let api = api.clone();
            let patch = json!({ "spec": { "tag": tag } });
            async move {
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}
