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
