//! Benchmark (not a test): how far the default guest stays from the default per-call limits.
//! One reconcile of the sample PotatoHead in steady state (its 13 children observed), through the
//! real `.wasm`, a fresh store per call as in production.
//!
//! Run: `cargo bench -p reconciler-host --bench guest_margin` (after `make guest`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;

use reconciler_host::sandbox::{GuestEngine, GuestError, GuestLimits};

const CALLS: usize = 2000;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = common::built_guest("guest_potatohead");
    let engine = GuestEngine::new(None).unwrap();
    let defaults = GuestLimits::default();
    let guest = engine.load_path(&wasm, defaults).unwrap();
    // Steady state: the children the guest wants are what the host observes.
    let observed = common::steady_state(&guest, &root.join("deploy/samples/potatohead.yaml"));
    let first = guest.reconcile(&observed, "bench").unwrap();
    let bytes_in =
        observed.parent().len() + observed.children().iter().map(String::len).sum::<usize>();
    let bytes_out = first.children.iter().map(String::len).sum::<usize>()
        + first.status.as_ref().map_or(0, String::len);

    let times = common::call_times(&guest, &observed, CALLS);
    let median = times[CALLS / 2];
    let p99 = times[CALLS * 99 / 100];

    // Smallest memory limit (in 64 KiB wasm pages) under which the call still succeeds.
    let page = 64 << 10;
    let (mut low, mut high) = (1usize, defaults.max_memory_bytes / page);
    while low < high {
        let pages = (low + high) / 2;
        let limits = GuestLimits {
            max_memory_bytes: pages * page,
            ..defaults
        };
        let tight = engine.load_path(&wasm, limits).ok();
        match tight.map(|g| g.reconcile(&observed, "bench")) {
            Some(Ok(_)) => high = pages,
            Some(Err(GuestError::OutOfMemory(_))) | None => low = pages + 1,
            Some(Err(other)) => panic!("unexpected failure at {pages} pages: {other}"),
        }
    }
    let needed = low * page;

    println!(
        "default guest: {} bytes; one reconcile: {bytes_in} bytes of JSON in, {bytes_out} out, {} children",
        std::fs::metadata(&wasm).unwrap().len(),
        first.children.len()
    );
    println!("| measure | default guest | default limit | margin |");
    println!("|---|---|---|---|");
    println!(
        "| call time, median of {CALLS} (fresh store + call + JSON) | {median:?} | {:?} | {:.0}× |",
        defaults.timeout,
        defaults.timeout.as_secs_f64() / median.as_secs_f64()
    );
    println!(
        "| call time, p99 | {p99:?} | {:?} | {:.0}× |",
        defaults.timeout,
        defaults.timeout.as_secs_f64() / p99.as_secs_f64()
    );
    println!(
        "| linear memory needed (smallest limit that works) | {} KiB | {} KiB | {:.0}× |",
        needed >> 10,
        defaults.max_memory_bytes >> 10,
        defaults.max_memory_bytes as f64 / needed as f64
    );
    println!(
        "| children | {} | {} | {:.0}× |",
        first.children.len(),
        defaults.max_children,
        defaults.max_children as f64 / first.children.len() as f64
    );
    println!(
        "| output JSON | {bytes_out} B | {} B | {:.0}× |",
        defaults.max_output_bytes,
        defaults.max_output_bytes as f64 / bytes_out as f64
    );
}
