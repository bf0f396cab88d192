//! Where host tests and benches find the built guests (`make guest`, `make test-guests`).

use std::path::PathBuf;

/// A release wasm32-wasip2 guest from this workspace's target folder, e.g. `guest_potatohead`;
/// `$POTATOHEAD_GUEST_WASM` overrides the default guest's path.
pub fn built_guest(name: &str) -> PathBuf {
    let overridden = (name == "guest_potatohead")
        .then(|| std::env::var_os("POTATOHEAD_GUEST_WASM"))
        .flatten();
    let path = overridden.map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../target/wasm32-wasip2/release/{name}.wasm"))
    });
    assert!(
        path.exists(),
        "{} is missing: run `make guest test-guests`",
        path.display()
    );
    path
}

/// A minimal component exporting the guest interface of a future, incompatible version of the
/// WIT package (`guest@9.0.0`).
#[allow(dead_code)] // not every test binary including this module uses it
pub fn future_wit_component() -> Vec<u8> {
    wat::parse_str(
        r#"(component
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (instance $guest (export "describe" (func $f)))
            (export "wasm-reconciler:reconciler/guest@9.0.0" (instance $guest))
        )"#,
    )
    .expect("valid WAT")
}

/// The sample in steady state for `guest`: `sample` as the API server would hand it over
/// (namespace, UID, generation set) and the children the guest wants given back as observed.
#[allow(dead_code)]
pub fn steady_state(
    guest: &reconciler_host::sandbox::LoadedGuest,
    sample: &std::path::Path,
) -> reconciler_host::sandbox::Observation {
    let mut parent: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(sample).unwrap()).unwrap();
    parent["metadata"]["namespace"] = "default".into();
    parent["metadata"]["uid"] = "00000000-0000-0000-0000-000000000001".into();
    parent["metadata"]["generation"] = 1.into();
    let first = guest
        .reconcile(
            &reconciler_host::sandbox::Observation::new(parent.to_string(), vec![], false),
            "bench",
        )
        .expect("the sample reconciles");
    reconciler_host::sandbox::Observation::new(parent.to_string(), first.children, false)
}

/// Wall times of `calls` reconciles of `observed`, each in a fresh store as in production, sorted.
#[allow(dead_code)]
pub fn call_times(
    guest: &reconciler_host::sandbox::LoadedGuest,
    observed: &reconciler_host::sandbox::Observation,
    calls: usize,
) -> Vec<std::time::Duration> {
    let mut times: Vec<std::time::Duration> = (0..calls)
        .map(|_| {
            let started = std::time::Instant::now();
            guest
                .reconcile(observed, "bench")
                .expect("the guest reconciles");
            started.elapsed()
        })
        .collect();
    times.sort();
    times
}
