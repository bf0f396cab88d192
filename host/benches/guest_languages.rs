//! Benchmark (not a test): what a guest costs by language. For the Rust PotatoHead guest and the
//! JavaScript Greeting guest (examples/greeting-js): file size, compile time (Cranelift, no
//! cache), and one steady-state reconcile of each one's sample (its own children observed) with a
//! fresh store per call, as in production.
//!
//! Run: `make guest example-guests && cargo bench -p reconciler-host --bench guest_languages`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reconciler_host::sandbox::{GuestEngine, GuestFile, GuestLimits};

const CALLS: usize = 500;
const COMPILES: usize = 3;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let guests = [
        (
            "Rust (wit-bindgen), PotatoHead sample",
            common::built_guest("guest_potatohead"),
            root.join("deploy/samples/potatohead.yaml"),
        ),
        (
            "JavaScript (componentize-qjs), Greeting sample",
            root.join("target/examples/greeting_js.wasm"),
            root.join("examples/greeting-js/sample.yaml"),
        ),
    ];
    println!("| guest | .wasm | compile (median of {COMPILES}) | call median | call p99 |");
    println!("|---|---|---|---|---|");
    for (name, wasm, sample) in guests {
        assert!(
            wasm.exists(),
            "{} is missing: run `make guest example-guests`",
            wasm.display()
        );
        let (size, compile, median, p99) = measure(&wasm, &sample);
        println!(
            "| {name} | {:.0} KiB | {:.0} ms | {:.0} µs | {:.0} µs |",
            size as f64 / 1024.0,
            compile.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
        );
    }
}

fn measure(wasm: &Path, sample: &Path) -> (usize, Duration, Duration, Duration) {
    let engine = GuestEngine::new(None).unwrap();
    let file = GuestFile::read(wasm).unwrap();
    let mut compiles: Vec<Duration> = (0..COMPILES)
        .map(|_| {
            let started = Instant::now();
            engine.compile(&file).unwrap();
            started.elapsed()
        })
        .collect();
    compiles.sort();
    let guest = engine.load(&file, GuestLimits::default()).unwrap();
    let observed = common::steady_state(&guest, sample);
    let times = common::call_times(&guest, &observed, CALLS);
    (
        file.bytes.len(),
        compiles[COMPILES / 2],
        times[CALLS / 2],
        times[CALLS * 99 / 100],
    )
}
