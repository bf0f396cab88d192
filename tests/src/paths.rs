//! Where the harness finds the workspace, the built host binary and the built guest.

use std::path::PathBuf;

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Cargo's target directory, found from the running test executable (`<target>/debug/deps/…`),
/// so it follows CARGO_TARGET_DIR.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n == "debug" || n == "release")
        })
        .and_then(|profile_dir| profile_dir.parent())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The `reconciler-host` binary under test: `$RECONCILER_HOST_BIN`, else the debug build.
pub fn host_binary() -> PathBuf {
    built(
        Some("RECONCILER_HOST_BIN"),
        "debug/reconciler-host",
        "make build",
    )
}

/// The `local-control-plane` tool (`make demo`'s): `$LOCAL_CONTROL_PLANE_BIN`, else the debug
/// build (which `cargo test` builds for the tool's own tests).
pub fn local_control_plane_binary() -> PathBuf {
    built(
        Some("LOCAL_CONTROL_PLANE_BIN"),
        "debug/local-control-plane",
        "make build",
    )
}

/// The default guest: `$POTATOHEAD_GUEST_WASM`, else the release wasm32-wasip2 build.
pub fn potatohead_guest() -> PathBuf {
    built(
        Some("POTATOHEAD_GUEST_WASM"),
        "wasm32-wasip2/release/guest_potatohead.wasm",
        "make guest",
    )
}

/// The guest for the seed operator's own API (`guest-podtatohead`), release wasm32-wasip2.
pub fn podtatohead_guest() -> PathBuf {
    built(
        None,
        "wasm32-wasip2/release/guest_podtatohead.wasm",
        "make guest",
    )
}

/// A test guest built from `tests/guests/` (e.g. `potatohead_v2_guest`), release wasm32-wasip2.
pub fn test_guest(name: &str) -> PathBuf {
    built(
        None,
        &format!("wasm32-wasip2/release/{name}.wasm"),
        "make test-guests",
    )
}

/// A build output: `$override_var` if given and set, else `<target>/<relative>`; panics saying
/// how to build it when missing.
fn built(override_var: Option<&str>, relative: &str, make: &str) -> PathBuf {
    let path = override_var
        .and_then(std::env::var_os)
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join(relative));
    assert!(path.exists(), "{} is missing: run `{make}`", path.display());
    path
}

/// Replaces `path` the way deploy tools do: write a temporary file beside it, then rename it over
/// the old one (readers never see a half-written file).
pub fn replace_file(path: &std::path::Path, contents: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
