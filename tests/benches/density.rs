//! Benchmark (not a test): one host serving many guests (`run --guests DIR`), on a control plane
//! of its own.
//!
//! The guests are the default guest under GUESTS (20) parent kinds: build-time variants whose
//! manifest names the group `podtato.example.cNN` instead of `podtato.example.com` (the same
//! decision, a different kind and a different file digest for each), each with its CRD.
//!
//! 1. Adding a reconciler: a host serving one guest and no parents; the others are added to its
//!    folder one at a time, each until `/readyz` reports it ready, and the resident memory read
//!    after each: the cost of one more reconciler (compiled code, linked instance, controller
//!    state). Once with an empty compile cache, once with a warm one.
//! 2. Start-up: process start until `/readyz` reports every guest ready, with a warm compile
//!    cache (three runs) and an empty one.
//! 3. Density: PARENTS_PER_GUEST (100) PotatoHeads of each kind (13 children each) served by one
//!    host with every guest, versus one host serving one guest with the same number of parents
//!    (GUESTS × PARENTS_PER_GUEST) and their children, versus GUESTS hosts of one guest each
//!    (each its own field manager, as separate operators would be) doing the same work: resident
//!    memory once every child is applied.
//!
//! 4. Hot swap: with every parent of phase 3 converged, the latency of changes to the other
//!    guests' parents (patch to `Ready` reporting the new generation) in windows without and
//!    with guest `g00` replaced every 3 s, alternated (see `density/swap_latency.rs`).
//!
//! Run: `make bench-density` (release host; GUESTS and PARENTS_PER_GUEST to change the sizes,
//! PHASES=4 for some of the phases only; 4 runs the first part of 3).
//! Numbers go to docs/benchmarks.md by hand.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e::paths::{host_binary, potatohead_guest, workspace_root};
use e2e::{
    CHILDREN_APPLIED, DedicatedPlane, HostProcess, Options, TestNamespace, metric_value,
    sample_potatohead,
};
use futures::{StreamExt, TryStreamExt};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};

#[path = "density/swap_latency.rs"]
mod swap_latency;

/// The default guest's parent group, as it appears in its manifest (followed by its version).
const MARKER: &[u8] = b"podtato.example.comv1alpha1";
const CHILDREN_PER_PARENT: usize = 13;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The group of variant `n`: as long as the original, so the component stays valid.
fn group(n: usize) -> String {
    format!("podtato.example.c{n:02}")
}

/// The default guest with its parent kind's group replaced by variant `n`'s.
fn variant(original: &[u8], n: usize) -> Vec<u8> {
    let at = original
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .expect("the default guest names its parent group once");
    let mut bytes = original.to_vec();
    let replacement = format!("{}v1alpha1", group(n));
    bytes[at..at + MARKER.len()].copy_from_slice(replacement.as_bytes());
    bytes
}

fn guest_name(n: usize) -> String {
    format!("g{n:02}")
}

struct Variants {
    /// Every variant's file, `gNN.wasm`.
    library: tempfile::TempDir,
}

impl Variants {
    fn path(&self, n: usize) -> PathBuf {
        self.library.path().join(format!("{}.wasm", guest_name(n)))
    }

    /// Puts variant `n` into `folder` (written beside, then renamed, as the kubelet does).
    fn add_to(&self, folder: &Path, n: usize) {
        let tmp = folder.join(format!(".{}.tmp", guest_name(n)));
        std::fs::copy(self.path(n), &tmp).unwrap();
        std::fs::rename(&tmp, folder.join(format!("{}.wasm", guest_name(n)))).unwrap();
    }

    /// A folder holding variants `range`.
    fn folder(&self, range: std::ops::Range<usize>) -> tempfile::TempDir {
        let folder = tempfile::tempdir().unwrap();
        for n in range {
            self.add_to(folder.path(), n);
        }
        folder
    }
}

fn api(client: &Client, namespace: &str, n: usize) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(&group(n), "v1alpha1", "PotatoHead"),
        "potatoheads",
    );
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// The sample PotatoHead as variant `n`'s kind, every Service a ClusterIP (thousands of
/// LoadBalancers would run out of node ports).
fn parent(namespace: &str, n: usize, i: usize) -> DynamicObject {
    let mut parent = sample_potatohead(namespace, &format!("k{n:02}-p{i:03}"));
    parent.types.as_mut().unwrap().api_version = format!("{}/v1alpha1", group(n));
    for part in parent.data["spec"]["parts"].as_array_mut().unwrap() {
        part["serviceType"] = "ClusterIP".into();
    }
    parent
}

async fn create_parents(client: &Client, namespace: &str, kinds: &[usize], per_kind: usize) {
    let all: Vec<(usize, usize)> = kinds
        .iter()
        .flat_map(|&n| (0..per_kind).map(move |i| (n, i)))
        .collect();
    futures::stream::iter(all)
        .map(|(n, i)| {
            let api = api(client, namespace, n);
            async move {
                api.create(&PostParams::default(), &parent(namespace, n, i))
                    .await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}

fn start_host(
    plane: &DedicatedPlane,
    folder: &Path,
    namespace: &str,
    cache: &Path,
    field_manager: &str,
) -> HostProcess {
    let args: Vec<String> = [
        "run",
        "--guests",
        &folder.display().to_string(),
        "--namespace",
        namespace,
        "--compile-cache-dir",
        &cache.display().to_string(),
        "--field-manager",
        field_manager,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    HostProcess::spawn(
        plane,
        &plane.kubeconfig,
        &args,
        &[("RUST_LOG".to_string(), "info".to_string())],
    )
}

/// Waits until `/readyz` answers 200 with `guests` guests ready.
async fn wait_all_ready(host: &HostProcess, guests: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (status, body) = host.http_get("/readyz").await;
        if status == 200 && body.matches("[+]guest ").count() == guests {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not ready: {status} {body}\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `host` has applied `children` children.
async fn wait_applied(host: &HostProcess, children: usize) {
    let deadline = Instant::now() + Duration::from_secs(1200);
    loop {
        let (_, metrics) = host.http_get("/metrics").await;
        if metric_value(&metrics, CHILDREN_APPLIED).unwrap_or(0.0) >= children as f64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than {children} applied:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Resident memory once the process has been quiet for a moment.
async fn settled_rss(host: &HostProcess) -> u64 {
    tokio::time::sleep(Duration::from_secs(3)).await;
    host.rss_bytes()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Phase 1: the resident memory each added reconciler costs, `gNN` added one at a time.
async fn adding_reconcilers(
    plane: &DedicatedPlane,
    variants: &Variants,
    namespace: &str,
    cache: &Path,
    guests: usize,
) -> Vec<f64> {
    let folder = variants.folder(0..1);
    let host = start_host(plane, folder.path(), namespace, cache, "wasm-reconciler");
    wait_all_ready(&host, 1).await;
    let mut last = settled_rss(&host).await;
    let first = last;
    let mut increments = Vec::new();
    for n in 1..guests {
        variants.add_to(folder.path(), n);
        wait_all_ready(&host, n + 1).await;
        let rss = settled_rss(&host).await;
        increments.push(mib(rss) - mib(last));
        last = rss;
    }
    println!(
        "  1 guest: {:.1} MiB; {guests} guests: {:.1} MiB; per added guest: mean {:.2} MiB, \
         max {:.2} MiB",
        mib(first),
        mib(last),
        (mib(last) - mib(first)) / (guests - 1) as f64,
        increments.iter().copied().fold(f64::MIN, f64::max),
    );
    increments
}

/// Phase 2: process start until every guest is ready.
async fn start_up(
    plane: &DedicatedPlane,
    folder: &Path,
    namespace: &str,
    cache: &Path,
    guests: usize,
) -> Duration {
    let started = Instant::now();
    let host = start_host(plane, folder, namespace, cache, "wasm-reconciler");
    wait_all_ready(&host, guests).await;
    started.elapsed()
}

/// Phase 4: the other guests' change latency without and with hot swaps of guest `g00`.
async fn swap_pauses(
    client: &Client,
    namespace: &str,
    folder: &Path,
    original: &[u8],
    kinds: &[usize],
    per_guest: usize,
) {
    println!("4. the other guests' change latency while one guest is hot-swapped every 3 s");
    let builds = [
        variant(original, 0),
        swap_latency::rebuilt(&variant(original, 0), "b"),
    ];
    let swapped = folder.join(format!("{}.wasm", guest_name(0)));
    // Both builds compiled once (a swap back to a known build then loads from the cache).
    for build in builds.iter().rev() {
        std::fs::write(swapped.with_extension("swap"), build).unwrap();
        std::fs::rename(swapped.with_extension("swap"), &swapped).unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let apis = kinds[1..]
        .iter()
        .map(|&n| (n, api(client, namespace, n)))
        .collect();
    let mut load = swap_latency::Load::start(apis, per_guest);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let length = Duration::from_secs(20);
    for pace in [Duration::from_millis(1000), Duration::from_millis(500)] {
        println!(
            "  {} changes a second ({} kinds, one each per {} ms):",
            (kinds.len() - 1) as f64 / pace.as_secs_f64(),
            kinds.len() - 1,
            pace.as_millis()
        );
        // The first window after a change of pace absorbs what the last one left queued.
        let warm_up = load.window(pace, length / 2, None).await;
        println!("    warm-up (not counted): {warm_up}");
        // Alternated, so that a slow stretch of this shared machine does not fall on one side.
        let (mut quiet, mut swapping) = (Vec::new(), Vec::new());
        for round in 0..5 {
            if round % 2 == 0 {
                let window = load.window(pace, length, None).await;
                println!("    without a swap: {window}");
                quiet.push(window.p99.as_secs_f64());
            } else {
                let window = load.window(pace, length, Some((&swapped, &builds))).await;
                println!("    swapping g00 every 3 s: {window}");
                swapping.push(window.p99.as_secs_f64());
            }
        }
        let mean = |p99s: &[f64]| p99s.iter().sum::<f64>() / p99s.len() as f64;
        println!(
            "    mean p99 with swaps / without: {:.0} / {:.0} ms = {:.2} (target <= 1.2)",
            mean(&swapping) * 1e3,
            mean(&quiet) * 1e3,
            mean(&swapping) / mean(&quiet)
        );
    }
}

#[tokio::main]
async fn main() {
    let guests = env_or("GUESTS", 20);
    let per_guest = env_or("PARENTS_PER_GUEST", 100);
    let parents = guests * per_guest;
    println!("host binary: {}", host_binary().display());
    println!(
        "CPU: {} ({} cores)",
        e2e::proc_stats::cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{guests} guests, {per_guest} PotatoHeads each ({parents} parents, {} children)",
        parents * CHILDREN_PER_PARENT
    );
    let plane = DedicatedPlane::start(Options::default()).await;
    let client = plane.client().await;

    let original = std::fs::read(potatohead_guest()).unwrap();
    let variants = Variants {
        library: tempfile::tempdir().unwrap(),
    };
    let crd = std::fs::read_to_string(workspace_root().join("deploy/crd/potatohead.yaml")).unwrap();
    for n in 0..guests {
        std::fs::write(variants.path(n), variant(&original, n)).unwrap();
        let path = variants.library.path().join(format!("crd-{n:02}.yaml"));
        std::fs::write(&path, crd.replace("podtato.example.com", &group(n))).unwrap();
        plane.install_crd(&path).await.unwrap();
    }

    let phases = std::env::var("PHASES").unwrap_or_else(|_| "1234".into());
    let idle = TestNamespace::create(&client, "idle").await.name;
    let cache = tempfile::tempdir().unwrap();
    let all = variants.folder(0..guests);
    if phases.contains('1') {
        println!("1. adding a reconciler to a running host (no parents)");
        println!(" empty compile cache:");
        adding_reconcilers(&plane, &variants, &idle, cache.path(), guests).await;
        println!(" warm compile cache:");
        adding_reconcilers(&plane, &variants, &idle, cache.path(), guests).await;
    }
    if phases.contains('2') {
        println!("2. start-up to every guest ready");
        let warm = tempfile::tempdir().unwrap();
        // Fills the cache.
        start_up(&plane, all.path(), &idle, warm.path(), guests).await;
        for run in 1..=3 {
            let took = start_up(&plane, all.path(), &idle, warm.path(), guests).await;
            println!(
                "  warm compile cache, run {run}: {:.2} s",
                took.as_secs_f64()
            );
        }
        let empty = tempfile::tempdir().unwrap();
        let took = start_up(&plane, all.path(), &idle, empty.path(), guests).await;
        println!("  empty compile cache: {:.2} s", took.as_secs_f64());
    }
    if !phases.contains('3') && !phases.contains('4') {
        return;
    }
    // Every host below starts with every guest compiled, as a restarted operator does.
    start_up(&plane, all.path(), &idle, cache.path(), guests).await;
    println!("3. resident memory with every child cached");
    let kinds: Vec<usize> = (0..guests).collect();
    let many_ns = TestNamespace::create(&client, "many").await.name;
    let many = start_host(
        &plane,
        all.path(),
        &many_ns,
        cache.path(),
        "wasm-reconciler",
    );
    wait_all_ready(&many, guests).await;
    create_parents(&client, &many_ns, &kinds, per_guest).await;
    wait_applied(&many, parents * CHILDREN_PER_PARENT).await;
    let many_rss = settled_rss(&many).await;
    println!(
        "  one host, {guests} guests x {per_guest} parents: {:.1} MiB",
        mib(many_rss)
    );
    if phases.contains('4') {
        swap_pauses(&client, &many_ns, all.path(), &original, &kinds, per_guest).await;
    }
    drop(many);
    if !phases.contains('3') {
        return;
    }

    let one_ns = TestNamespace::create(&client, "one").await.name;
    let one_folder = variants.folder(0..1);
    let one = start_host(
        &plane,
        one_folder.path(),
        &one_ns,
        cache.path(),
        "wasm-reconciler",
    );
    wait_all_ready(&one, 1).await;
    create_parents(&client, &one_ns, &[0], parents).await;
    wait_applied(&one, parents * CHILDREN_PER_PARENT).await;
    let one_rss = settled_rss(&one).await;
    drop(one);
    println!(
        "  one host, 1 guest x {parents} parents: {:.1} MiB; ratio {:.3} (target <= 1.15)",
        mib(one_rss),
        many_rss as f64 / one_rss as f64
    );

    let apart_ns = TestNamespace::create(&client, "apart").await.name;
    let folders: Vec<tempfile::TempDir> = (0..guests).map(|n| variants.folder(n..n + 1)).collect();
    let hosts: Vec<HostProcess> = (0..guests)
        .map(|n| {
            start_host(
                &plane,
                folders[n].path(),
                &apart_ns,
                cache.path(),
                &format!("wasm-reconciler-{}", guest_name(n)),
            )
        })
        .collect();
    for host in &hosts {
        wait_all_ready(host, 1).await;
    }
    create_parents(&client, &apart_ns, &kinds, per_guest).await;
    for host in &hosts {
        wait_applied(host, per_guest * CHILDREN_PER_PARENT).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let apart_rss: u64 = hosts.iter().map(HostProcess::rss_bytes).sum();
    println!(
        "  {guests} hosts of 1 guest x {per_guest} parents (own field managers): {:.1} MiB in \
         all; one host with every guest uses {:.3} of that",
        mib(apart_rss),
        many_rss as f64 / apart_rss as f64
    );
}
