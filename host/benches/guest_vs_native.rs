//! Benchmark (not a test): what running the decision as WebAssembly costs. One steady-state
//! reconcile of the PotatoHead sample (its 13 children observed), through the real `.wasm` with a
//! fresh store per call as in production, versus the same guest logic (`potatohead_decisions`,
//! compiled natively) called directly. Both sides start from the host's objects and end with the
//! host's checked output, so each full call counts JSON in and out.
//!
//! Phases, each timed on its own and interleaved so both sides share the machine's noise:
//! - host JSON in: the parent and children turned into the JSON text the guest gets (same on both
//!   sides: the native function takes the same text);
//! - instantiate: a fresh store and instance (WebAssembly only);
//! - call: the guest parses its input, decides, and serializes its answer (for WebAssembly this
//!   includes copying the strings across the component boundary);
//! - host JSON out: the answer parsed back and checked by the output policy (same on both sides).
//!
//! Run: `make guest && cargo bench -p reconciler-host --bench guest_vs_native`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use reconciler_host::cluster::ResolvedKind;
use reconciler_host::reconcile::guest_json;
use reconciler_host::reconcile::policy;
use reconciler_host::sandbox::{Decision, GuestEngine, GuestLimits, Observation};

const ROUNDS: usize = 3000;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    // `RECONCILER_GUEST_PERFMAP=1` writes a perf map of the guest's code, for `perf report`.
    let perf_map = std::env::var_os("RECONCILER_GUEST_PERFMAP").is_some_and(|v| v == "1");
    let engine = GuestEngine::with_perf_map(None, perf_map).unwrap();
    let guest = engine
        .load_path(
            &common::built_guest("guest_potatohead"),
            GuestLimits::default(),
        )
        .unwrap();
    let observed = common::steady_state(&guest, &root.join("deploy/samples/potatohead.yaml"));
    let parent_kind = kind("podtato.example.com", "v1alpha1", "PotatoHead");
    let child_kinds = vec![
        Arc::new(kind("apps", "v1", "Deployment")),
        Arc::new(kind("", "v1", "Service")),
        Arc::new(kind("", "v1", "ConfigMap")),
    ];
    // The host holds objects, not text.
    let parent: DynamicObject = serde_json::from_str(observed.parent()).unwrap();
    let children: Vec<(DynamicObject, &ResolvedKind)> = observed
        .children()
        .iter()
        .map(|text| {
            let object: DynamicObject = serde_json::from_str(text).unwrap();
            let kind_name = &object.types.as_ref().unwrap().kind;
            let kind = child_kinds
                .iter()
                .find(|k| &k.gvk.kind == kind_name)
                .unwrap();
            (object, kind.as_ref())
        })
        .collect();

    // Both sides must decide the same.
    let native_answer = native_call(&observed);
    let wasm_answer = guest.reconcile(&observed, "bench").unwrap();
    assert_eq!(native_answer.children, wasm_answer.children);
    assert_eq!(native_answer.status, wasm_answer.status);

    let mut phases = Phases::default();
    for _ in 0..ROUNDS {
        let (text, t) = timed(|| input(&parent, &parent_kind, &children));
        phases.json_in.push(t);
        let (instance, t) = timed(|| guest.instantiate("bench").unwrap());
        phases.instantiate.push(t);
        let (answer, t) = timed(|| instance.reconcile(&text).unwrap());
        phases.wasm_call.push(t);
        let (_, t) = timed(|| check(&answer, &child_kinds));
        phases.json_out.push(t);
        let (answer, t) = timed(|| native_call(&text));
        phases.native_call.push(t);
        std::hint::black_box(answer);
        let through_wasm = |o: &Observation| guest.reconcile(o, "bench").unwrap();
        phases.wasm_full.push(full(
            through_wasm,
            &parent,
            &parent_kind,
            &children,
            &child_kinds,
        ));
        phases.native_full.push(full(
            native_call,
            &parent,
            &parent_kind,
            &children,
            &child_kinds,
        ));
    }

    // Page faults: a fresh instance's memory is new to the process every call.
    let text = input(&parent, &parent_kind, &children);
    let faults_before = minor_faults();
    for _ in 0..ROUNDS {
        std::hint::black_box(guest.reconcile(&text, "bench").unwrap());
    }
    let wasm_faults = (minor_faults() - faults_before) as f64 / ROUNDS as f64;
    let faults_before = minor_faults();
    for _ in 0..ROUNDS {
        std::hint::black_box(native_call(&text));
    }
    let native_faults = (minor_faults() - faults_before) as f64 / ROUNDS as f64;

    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2].as_secs_f64() * 1e6
    };
    let json_in = median(&mut phases.json_in);
    let json_out = median(&mut phases.json_out);
    let instantiate = median(&mut phases.instantiate);
    let wasm_call = median(&mut phases.wasm_call);
    let native_call = median(&mut phases.native_call);
    let wasm_full = median(&mut phases.wasm_full);
    let native_full = median(&mut phases.native_full);
    // The ratio depends on the CPU (1.45x on one machine, 2.0x on an AMD EPYC): always say which.
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .and_then(|rest| rest.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("CPU: {cpu}");
    println!(
        "one steady-state reconcile of the sample: {} bytes of JSON in, 13 children out; medians of {ROUNDS}",
        observed.parent().len() + observed.children().iter().map(String::len).sum::<usize>()
    );
    println!("| phase | WebAssembly | native | ratio |");
    println!("|---|---|---|---|");
    println!("| host: objects → guest JSON | {json_in:.0} µs | {json_in:.0} µs | same code |");
    println!("| instantiate (fresh store + instance) | {instantiate:.0} µs | — | |");
    println!(
        "| call: parse, decide, serialize | {wasm_call:.0} µs | {native_call:.0} µs | {:.2}× |",
        wasm_call / native_call
    );
    println!(
        "| host: output JSON → checked objects | {json_out:.0} µs | {json_out:.0} µs | same code |"
    );
    println!("| minor page faults per call | {wasm_faults:.1} | {native_faults:.1} | |");
    println!(
        "| **full call, JSON in and out** (timed whole) | **{wasm_full:.0} µs** | **{native_full:.0} µs** | **{:.2}×** |",
        wasm_full / native_full
    );
}

#[derive(Default)]
struct Phases {
    json_in: Vec<Duration>,
    instantiate: Vec<Duration>,
    wasm_call: Vec<Duration>,
    native_call: Vec<Duration>,
    json_out: Vec<Duration>,
    wasm_full: Vec<Duration>,
    native_full: Vec<Duration>,
}

fn kind(group: &str, version: &str, kind: &str) -> ResolvedKind {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    ResolvedKind {
        resource: ApiResource::from_gvk(&gvk),
        gvk,
        namespaced: true,
    }
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed())
}

/// The guest logic called directly, answering in the same text form as the component.
fn native_call(observed: &Observation) -> Decision {
    let desired =
        potatohead_decisions::reconcile::reconcile(observed.parent(), observed.children(), false)
            .unwrap();
    let (children, status) = desired.to_text();
    Decision {
        children,
        status,
        requeue_after: desired.requeue_after_ms.map(Duration::from_millis),
    }
}

fn input(
    parent: &DynamicObject,
    parent_kind: &ResolvedKind,
    children: &[(DynamicObject, &ResolvedKind)],
) -> Observation {
    Observation::new(
        guest_json(parent, parent_kind),
        children
            .iter()
            .map(|(object, kind)| guest_json(object, kind))
            .collect(),
        false,
    )
}

fn check(answer: &Decision, kinds: &[Arc<ResolvedKind>]) {
    let children = policy::check_children(&answer.children, "default", kinds).unwrap();
    let status = answer.status.as_deref().map(policy::check_status);
    std::hint::black_box((children, status));
}

/// One full call timed whole: the host's objects to JSON, `call`, the output checked.
fn full(
    call: impl Fn(&Observation) -> Decision,
    parent: &DynamicObject,
    parent_kind: &ResolvedKind,
    children: &[(DynamicObject, &ResolvedKind)],
    kinds: &[Arc<ResolvedKind>],
) -> Duration {
    let started = Instant::now();
    let answer = call(&input(parent, parent_kind, children));
    check(&answer, kinds);
    started.elapsed()
}

/// Minor page faults of this process so far.
fn minor_faults() -> i64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_minflt
}
