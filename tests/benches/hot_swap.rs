//! Benchmark (not a test): how long a guest swap takes in a running `reconciler-host`, from the
//! new file being renamed into place to (a) the host reporting the new guest active and (b) a
//! parent's status naming the new guest, with and without the compile cache.
//!
//! Run: `make bench-hot-swap` (builds the release host, then
//! `cargo bench -p e2e --bench hot_swap`). Numbers go to docs/benchmarks.md by hand.

use std::time::{Duration, Instant};

use e2e::paths::{potatohead_guest, replace_file, test_guest};
use e2e::{
    ControlPlane, HostProcess, TestNamespace, eventually, potatohead_api, sample_potatohead,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;

const SWAPS: usize = 6;

struct Sample {
    guest: &'static str,
    origin: String,
    host_ms: f64,
    status_ms: f64,
}

#[tokio::main]
async fn main() {
    let host_binary =
        std::env::var("RECONCILER_HOST_BIN").unwrap_or_else(|_| "(debug build)".into());
    println!("host binary: {host_binary}");
    let plane = e2e::shared_plane().await;
    for (label, extra) in [
        ("with compile cache", None),
        ("without compile cache", Some("--no-compile-cache")),
    ] {
        let samples = run(plane, extra).await;
        println!("\n{label}:");
        println!(
            "| swap | to guest | origin | file renamed → active (host) | file renamed → status updated |"
        );
        println!("|---|---|---|---|---|");
        for (i, s) in samples.iter().enumerate() {
            println!(
                "| {} | {} | {} | {:.0} ms | {:.0} ms |",
                i + 1,
                s.guest,
                s.origin,
                s.host_ms,
                s.status_ms
            );
        }
    }
}

async fn run(plane: &'static ControlPlane, extra: Option<&str>) -> Vec<Sample> {
    let client = plane.client().await;
    let namespace = TestNamespace::create(&client, "bench-swap").await.name;
    let dir = tempfile::tempdir().unwrap();
    let guest_path = dir.path().join("guest.wasm");
    std::fs::copy(potatohead_guest(), &guest_path).unwrap();
    let cache = dir.path().join("cache");
    let mut args = vec![
        "--namespace",
        &namespace,
        "--guest-poll-interval",
        "1h",
        "--compile-cache-dir",
        cache.to_str().unwrap(),
    ];
    args.extend(extra);
    let host = HostProcess::start(plane, &guest_path, &args);
    potatohead_api(&client, &namespace)
        .create(
            &PostParams::default(),
            &sample_potatohead(&namespace, "demo"),
        )
        .await
        .unwrap();
    wait_for_reconciler(&client, &namespace, "potatohead").await;

    let v1 = std::fs::read(potatohead_guest()).unwrap();
    let v2 = std::fs::read(test_guest("potatohead_v2_guest")).unwrap();
    let mut samples = Vec::new();
    for swap in 0..SWAPS {
        let (name, bytes) = if swap % 2 == 0 {
            ("potatohead-v2", &v2)
        } else {
            ("potatohead", &v1)
        };
        let swaps_logged = host.log().matches("guest swapped").count();
        let started = Instant::now();
        let renamed_at = Timestamp::now();
        replace_file(&guest_path, bytes);
        wait_for_reconciler(&client, &namespace, name).await;
        let status_ms = started.elapsed().as_secs_f64() * 1e3;
        let line = eventually(Duration::from_secs(10), "swap logged", || async {
            let log = host.log();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("guest swapped"))
                .collect();
            lines
                .get(swaps_logged)
                .map(|l| l.to_string())
                .ok_or_else(|| "not yet".to_string())
        })
        .await;
        let field = |key: &str| {
            line.split(&format!("{key}="))
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .unwrap_or("?")
                .to_string()
        };
        // The log line's own timestamp: when the new guest became active.
        let active_at: Timestamp = line.split_whitespace().next().unwrap().parse().unwrap();
        let host_ms = active_at.duration_since(renamed_at).as_secs_f64() * 1e3;
        samples.push(Sample {
            guest: name,
            origin: field("origin"),
            host_ms,
            status_ms,
        });
    }
    samples
}

async fn wait_for_reconciler(client: &kube::Client, namespace: &str, name: &str) {
    eventually(
        Duration::from_secs(30),
        "status names the guest",
        || async {
            let parent = potatohead_api(client, namespace)
                .get("demo")
                .await
                .map_err(|e| e.to_string())?;
            let found = parent.data["status"]["reconciler"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if found == name { Ok(()) } else { Err(found) }
        },
    )
    .await
}
