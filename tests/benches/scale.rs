//! Benchmark (not a test): the host at scale on the local control plane (kube-apiserver + etcd of
//! its own), measured against the API server's own limit in the same run.
//!
//! 1. Convergence: PARENTS PotatoHeads (13 children each) created at once, until every child
//!    exists and every status is written; versus the *floor*: a minimal client issuing the same
//!    PotatoHead creates and the same child applies with the same concurrency (32 parents at a
//!    time, 8 children per parent at a time, as the host) and nothing else. Each floor runs
//!    before and after the host's phase (the API server slows as it holds more objects); the host
//!    is compared with their mean.
//! 2. API requests per PotatoHead on first convergence, by verb (the API server's own counters).
//! 3. Steady state: the host restarted against the converged cluster reconciles every parent; the
//!    write requests that causes (target: none) and the time it takes.
//! 4. Host memory (RSS) idle with the guest loaded and with everything cached.
//! 5. Rolling change: a new tag on every PotatoHead, until every status reports the new
//!    generation; versus the floor for the same updates (the parent patches and the 6
//!    Deployment applies per parent).
//! 6. The peer a user would otherwise write (`scale/native_peer.rs`): a plain kube-rs controller
//!    with the same decision compiled natively, applying every child on every reconcile; same
//!    concurrency, same wait as the host.
//! 7. Memory baseline: the same watches and caches without wasmtime (`scale/cache_baseline.rs`,
//!    a process of its own), read beside the host's RSS with everything cached.
//! 8. Start-up: process start to first reconcile (its debug log line), with a cold and a warm
//!    compile cache, against the converged cluster.
//!
//! Run: `make bench-scale` (release host; `PARENTS=1000` by default, e.g. `PARENTS=200` for a
//! quick run; `API_SERVER_PROFILES=<dir>` for a CPU profile of the API server per phase, see
//! `scale/api_profile.rs`). Numbers go to docs/benchmarks.md by hand.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e::paths::{host_binary, potatohead_guest};
use e2e::{
    CHILDREN_APPLIED, DedicatedPlane, HostProcess, Options, TestNamespace, metric_value,
    potatohead_api,
};
#[path = "scale/api_profile.rs"]
mod api_profile;
#[path = "scale/cache_baseline.rs"]
mod cache_baseline;
#[path = "scale/floor.rs"]
mod floor;
#[path = "scale/native_peer.rs"]
mod native_peer;
#[path = "scale/parents.rs"]
mod parents;
#[path = "scale/phase.rs"]
mod phase;
#[path = "scale/requests.rs"]
mod requests;
#[path = "scale/server_cpu.rs"]
mod server_cpu;
#[path = "scale/status_watch.rs"]
mod status_watch;
use parents::{bench_parent, create_parents, set_tags};
use requests::request_counts;
use status_watch::StatusWatch;

use kube::Client;
use serde_json::Value;

/// Parents reconciled at once (the host's default `--concurrency`).
const PARENT_CONCURRENCY: usize = 32;
/// Children applied at once for one parent (the host's `APPLY_CONCURRENCY`).
const CHILD_CONCURRENCY: usize = 8;
const FIELD_MANAGER: &str = "wasm-reconciler";
/// The sample's tag, and the one the rolling change moves to.
const TAG: &str = "0.3.0";
const NEW_TAG: &str = "0.3.1";

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--cache-baseline") {
        cache_baseline::run(args[at + 1].clone()).await;
        return;
    }
    let parents: usize = std::env::var("PARENTS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(1000);
    println!("host binary: {}", host_binary().display());
    println!(
        "CPU: {} ({} cores)",
        e2e::proc_stats::cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("{parents} PotatoHeads, {} children", parents * 13);
    let plane = DedicatedPlane::start(Options::default()).await;
    let client = plane.client().await;
    let names: Vec<String> = (0..parents).map(|i| format!("ph-{i}")).collect();

    // The floor first, in a namespace of its own (and again after the host's phase).
    let floor_ns = TestNamespace::create(&client, "floor").await.name;
    let template = children_template(TAG);
    let phases = phase::Phases::new(&plane, &client);
    let floor_before = phases
        .measure(
            "floor-before",
            floor::create(&client, &floor_ns, &names, &template),
        )
        .await;
    println!("floor: {:.1} s", floor_before.time.as_secs_f64());

    // The host, from idle to converged.
    let host_ns = TestNamespace::create(&client, "host").await.name;
    let mut host = start_host(&plane, &host_ns);
    wait_ready(&host).await;
    let idle_rss = host.rss_bytes();
    let idle_cpu = host.cpu_seconds();
    let mut statuses = StatusWatch::start(&client, &host_ns).await;
    let before = request_counts(&client).await;
    let host_run = phases
        .measure("host", async {
            create_parents(&client, &host_ns, &names).await;
            wait_for_metric(&host, &[CHILDREN_APPLIED], (parents * 13) as f64).await;
            statuses.wait_for(parents, 1).await;
        })
        .await;
    let (host_time, host_servers) = (host_run.time, host_run.servers);
    let after = request_counts(&client).await;
    let convergence_cpu = host.cpu_seconds() - idle_cpu;
    let (reconciles, reconcile_seconds) = reconcile_totals(&host).await;
    println!("host: {:.1} s", host_time.as_secs_f64());

    // Memory, with everything cached: the host beside its own caches without wasmtime.
    let (loaded_rss, baseline_rss) = memory_beside_baseline(&plane, &host, &host_ns).await;
    let peak_rss = host.peak_rss_bytes();

    let floor_after_ns = TestNamespace::create(&client, "floor-after").await.name;
    let floor_after = phases
        .measure(
            "floor-after",
            floor::create(&client, &floor_after_ns, &names, &template),
        )
        .await;
    println!(
        "floor after the host: {:.1} s",
        floor_after.time.as_secs_f64()
    );
    let floor_time = phase::mean_seconds(&floor_before, &floor_after);

    // Rolling change: the floor's same updates before and after the host's.
    let new_deployments: Vec<String> = children_template(NEW_TAG)
        .into_iter()
        .filter(|t| t.contains(r#""kind":"Deployment""#))
        .collect();
    let uids_before = uids(&client, &floor_ns).await;
    let floor_roll_before = phases
        .measure(
            "floor-roll-before",
            floor::roll(&client, &floor_ns, &uids_before, NEW_TAG, &new_deployments),
        )
        .await;
    let before_roll = request_counts(&client).await;
    let roll_cpu_before = host.cpu_seconds();
    let roll_run = phases
        .measure("host-roll", async {
            set_tags(&client, &host_ns, &names, NEW_TAG).await;
            statuses.wait_for(parents, 2).await;
        })
        .await;
    let (roll_time, roll_servers) = (roll_run.time, roll_run.servers);
    let after_roll = request_counts(&client).await;
    let roll_cpu = host.cpu_seconds() - roll_cpu_before;
    let (all_reconciles, all_reconcile_seconds) = reconcile_totals(&host).await;
    let roll_reconciles = all_reconciles - reconciles;
    let roll_reconcile_seconds = all_reconcile_seconds - reconcile_seconds;
    println!("host rolling change: {:.1} s", roll_time.as_secs_f64());
    let uids_after = uids(&client, &floor_after_ns).await;
    let floor_roll_after = phases
        .measure(
            "floor-roll-after",
            floor::roll(
                &client,
                &floor_after_ns,
                &uids_after,
                NEW_TAG,
                &new_deployments,
            ),
        )
        .await;
    let floor_roll_time = phase::mean_seconds(&floor_roll_before, &floor_roll_after);
    println!("floor rolling change: {floor_roll_time:.1} s (mean)");

    // Steady state: a fresh host process reconciles every parent of the converged cluster.
    host.kill_hard();
    let before_restart = request_counts(&client).await;
    let started = Instant::now();
    let host = start_host(&plane, &host_ns);
    // Every child looked at once, whether it needed a write or not.
    wait_for_metric(
        &host,
        &[
            r#"reconciler_children_total{action="unchanged"}"#,
            CHILDREN_APPLIED,
        ],
        (parents * 13) as f64,
    )
    .await;
    let resync_time = started.elapsed();
    let after_restart = request_counts(&client).await;
    drop(host);

    // Start-up against the converged cluster, compile cache cold then warm.
    let cache_dir = tempfile::tempdir().unwrap();
    let cold_start = start_up(&plane, &host_ns, cache_dir.path()).await;
    let warm_start = start_up(&plane, &host_ns, cache_dir.path()).await;

    // The plain controller, from idle to converged, in a namespace of its own.
    let peer_ns = TestNamespace::create(&client, "peer").await.name;
    let peer = tokio::spawn(native_peer::run(
        plane.client().await,
        peer_ns.clone(),
        PARENT_CONCURRENCY as u16,
        CHILD_CONCURRENCY,
    ));
    let mut peer_statuses = StatusWatch::start(&client, &peer_ns).await;
    let before_peer = request_counts(&client).await;
    let peer_run = phases
        .measure("peer", async {
            create_parents(&client, &peer_ns, &names).await;
            peer_statuses.wait_for(parents, 1).await;
        })
        .await;
    let (peer_time, peer_servers) = (peer_run.time, peer_run.servers);
    let after_peer = request_counts(&client).await;
    peer.abort();
    println!("native peer: {:.1} s", peer_time.as_secs_f64());

    println!("\n| measure | value |");
    println!("|---|---|");
    println!(
        "| floor: {parents} PotatoHead creates + {} child applies, before / after the host | {:.1} s / {:.1} s (mean {floor_time:.1} s) |",
        parents * 13,
        floor_before.time.as_secs_f64(),
        floor_after.time.as_secs_f64(),
    );
    println!(
        "| host: {parents} PotatoHeads created → all children and statuses written | {:.1} s ({:.2}× floor) |",
        host_time.as_secs_f64(),
        host_time.as_secs_f64() / floor_time
    );
    println!(
        "| the floor client's own CPU for its {} requests, before / after | {:.1} s / {:.1} s |",
        parents * 14,
        floor_before.client_cpu,
        floor_after.client_cpu
    );
    println!(
        "| servers' CPU, floor before / after the host | {} / {} |",
        floor_before.servers, floor_after.servers
    );
    println!("| servers' CPU, host | {host_servers} |");
    println!(
        "| host reconciles/s on first convergence | {:.0} |",
        parents as f64 / host_time.as_secs_f64()
    );
    println!(
        "| host CPU on first convergence | {convergence_cpu:.1} s for {reconciles:.0} reconciles ({:.2} ms CPU each, {:.0} ms wall each on average) |",
        convergence_cpu * 1e3 / reconciles,
        reconcile_seconds * 1e3 / reconciles
    );
    let per_parent = |from: &BTreeMap<String, f64>, to: &BTreeMap<String, f64>| {
        let mut text = Vec::new();
        for (key, value) in to {
            let delta = value - from.get(key).copied().unwrap_or(0.0);
            if delta > 0.0 {
                text.push(format!("{key} {:.2}", delta / parents as f64));
            }
        }
        text.join(", ")
    };
    println!(
        "| API requests per PotatoHead, first convergence (the bench's own PotatoHead POSTs included) | {} |",
        per_parent(&before, &after)
    );
    println!(
        "| plain native kube-rs controller (applies everything every reconcile), same job | {:.1} s ({:.2}× floor, {:.2}× host) |",
        peer_time.as_secs_f64(),
        peer_time.as_secs_f64() / floor_time,
        peer_time.as_secs_f64() / host_time.as_secs_f64()
    );
    println!(
        "| API requests per PotatoHead, plain controller's first convergence | {} |",
        per_parent(&before_peer, &after_peer)
    );
    println!("| servers' CPU, plain controller | {peer_servers} |");
    println!(
        "| floor: {parents} PotatoHead tag patches + {} Deployment applies, before / after the host | {:.1} s / {:.1} s (mean {floor_roll_time:.1} s) |",
        parents * 6,
        floor_roll_before.time.as_secs_f64(),
        floor_roll_after.time.as_secs_f64(),
    );
    println!(
        "| host: tag changed on {parents} PotatoHeads → all statuses at the new generation | {:.1} s ({:.2}× floor) |",
        roll_time.as_secs_f64(),
        roll_time.as_secs_f64() / floor_roll_time
    );
    println!(
        "| API requests per PotatoHead, rolling change (the bench's own patches included) | {} |",
        per_parent(&before_roll, &after_roll)
    );
    println!(
        "| the floor client's own CPU in the rolling change, before / after | {:.1} s / {:.1} s |",
        floor_roll_before.client_cpu, floor_roll_after.client_cpu
    );
    println!(
        "| servers' CPU, rolling change: floor before / after | {} / {} |",
        floor_roll_before.servers, floor_roll_after.servers
    );
    println!("| servers' CPU, rolling change: host | {roll_servers} |");
    println!(
        "| host CPU in the rolling change | {roll_cpu:.1} s for {roll_reconciles:.0} reconciles ({:.0} ms wall each on average) |",
        roll_reconcile_seconds * 1e3 / roll_reconciles
    );
    println!(
        "| restarted host: every parent reconciled (steady state) | {:.1} s |",
        resync_time.as_secs_f64()
    );
    println!(
        "| API requests per PotatoHead during that resync | {} |",
        per_parent(&before_restart, &after_restart)
    );
    let mib = |bytes: u64| bytes as f64 / 1048576.0;
    println!(
        "| host RSS idle (guest loaded) / with {} children cached / peak | {:.0} MiB / {:.0} MiB / {:.0} MiB |",
        parents * 13,
        mib(idle_rss),
        mib(loaded_rss),
        mib(peak_rss)
    );
    println!(
        "| same watches and caches without wasmtime (baseline process), same moment | {:.0} MiB (host {:.2}× baseline; host − baseline {:.0} MiB) |",
        mib(baseline_rss),
        loaded_rss as f64 / baseline_rss as f64,
        mib(loaded_rss.saturating_sub(baseline_rss))
    );
    println!(
        "| start-up to first reconcile, {parents} parents: cold / warm compile cache | {:.0} ms / {:.0} ms |",
        cold_start.as_secs_f64() * 1e3,
        warm_start.as_secs_f64() * 1e3
    );
}

/// The host on `namespace`, logging at `info` as in production (the test default, `debug`, costs
/// CPU per reconcile).
fn start_host(plane: &DedicatedPlane, namespace: &str) -> HostProcess {
    let args = [
        "run".to_string(),
        "--guest".to_string(),
        potatohead_guest().display().to_string(),
        "--namespace".to_string(),
        namespace.to_string(),
    ];
    HostProcess::spawn(
        plane,
        &plane.kubeconfig,
        &args,
        &[("RUST_LOG".to_string(), "info".to_string())],
    )
}

/// Reconciles the host has finished (whatever their result), and the seconds they took in all.
async fn reconcile_totals(host: &HostProcess) -> (f64, f64) {
    let (_, metrics) = host.http_get("/metrics").await;
    let total = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    (
        total("reconciler_reconciles_total"),
        total("reconciler_reconcile_duration_seconds_sum"),
    )
}

/// Starts this bench as the cache baseline against `namespace`, waits until it has listed
/// everything, and reads its RSS and the host's at that moment.
async fn memory_beside_baseline(
    plane: &DedicatedPlane,
    host: &HostProcess,
    namespace: &str,
) -> (u64, u64) {
    use std::io::BufRead;
    let mut baseline = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--cache-baseline", namespace])
        .env("KUBECONFIG", &plane.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = baseline.stdout.take().unwrap();
    let synced = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .any(|line| line.is_ok_and(|l| l == "synced"))
    })
    .await
    .unwrap();
    assert!(synced, "the baseline process ended before it synced");
    // Let both settle (allocator caches, the last watch events) before reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = (host.rss_bytes(), e2e::proc_stats::rss_bytes(baseline.id()));
    let _ = baseline.kill();
    let _ = baseline.wait();
    rss
}

/// Process start to the first reconcile's log line, for a host started against `namespace`
/// with `cache_dir` as its compile cache.
async fn start_up(
    plane: &DedicatedPlane,
    namespace: &str,
    cache_dir: &std::path::Path,
) -> Duration {
    let started = k8s_openapi::jiff::Timestamp::now();
    let host = HostProcess::start(
        plane,
        &potatohead_guest(),
        &[
            "--namespace",
            namespace,
            "--compile-cache-dir",
            cache_dir.to_str().unwrap(),
            "--log-format",
            "json",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = host.log();
        let first = log.lines().find(|l| {
            l.contains("children already as desired") || l.contains("children reconciled")
        });
        if let Some(line) = first {
            let value: Value = serde_json::from_str(line).unwrap();
            let at: k8s_openapi::jiff::Timestamp =
                value["timestamp"].as_str().unwrap().parse().unwrap();
            let elapsed = at.duration_since(started);
            return Duration::from_secs_f64(elapsed.as_secs_f64());
        }
        assert!(Instant::now() < deadline, "no reconcile logged:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The 13 children of a PotatoHead named `ph-template` in namespace `ns-template` with UID
/// `uid-template`, as the host applies them (from `reconciler-host render`).
fn children_template(tag: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("parent.yaml");
    let mut sample: Value =
        serde_json::to_value(bench_parent("ns-template", "ph-template")).unwrap();
    sample["metadata"]["uid"] = "uid-template".into();
    sample["spec"]["tag"] = tag.into();
    std::fs::write(&parent, serde_saphyr::to_string(&sample).unwrap()).unwrap();
    let output = std::process::Command::new(host_binary())
        .args(["render", "-o", "json", "--guest"])
        .arg(potatohead_guest())
        .arg("--parent")
        .arg(&parent)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    items[..items.len() - 1]
        .iter()
        .map(Value::to_string)
        .collect()
}

/// Name → UID of every PotatoHead in `namespace`.
async fn uids(client: &Client, namespace: &str) -> BTreeMap<String, String> {
    potatohead_api(client, namespace)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| (p.metadata.name.unwrap(), p.metadata.uid.unwrap()))
        .collect()
}

async fn wait_ready(host: &HostProcess) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while host.http_get("/readyz").await.0 != 200 {
        assert!(Instant::now() < deadline, "host not ready:\n{}", host.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the host's metrics (cheap, unlike listing thousands of objects) until the sum of
/// `series` reaches `at_least`.
async fn wait_for_metric(host: &HostProcess, series: &[&str], at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let (_, metrics) = host.http_get("/metrics").await;
        let sum: f64 = series
            .iter()
            .filter_map(|s| metric_value(&metrics, s))
            .sum();
        if sum >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series:?} did not reach {at_least}:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
