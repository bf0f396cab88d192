//! The `reconciler-host` binary refuses unusable input at start, before it talks to any cluster,
//! with a message that says what is wrong, and a non-zero exit.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reconciler-host"))
        .args(args)
        // No cluster: if the host got past validation it would fail differently (and later).
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("RECONCILER_GUEST")
        // Tests run side by side: any free port for the metrics endpoint.
        .env("RECONCILER_METRICS_BIND_ADDRESS", "127.0.0.1:0")
        .output()
        .expect("binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_missing_guest_file_exits_non_zero_naming_the_file() {
    let output = run(&["run", "--guest", "/nonexistent/guest.wasm"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    assert!(
        stderr.contains("cannot read guest file /nonexistent/guest.wasm"),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_webassembly_exits_non_zero_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guest.wasm");
    std::fs::write(&path, b"garbage").unwrap();
    let output = run(&["run", "--guest", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    assert!(
        stderr.contains("guest.wasm is not a WebAssembly file"),
        "{stderr}"
    );
}

#[test]
fn a_bad_flag_value_exits_non_zero_naming_the_flag() {
    let output = run(&["run", "--guest", "g.wasm", "--guest-memory-mib", "0"]);
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("--guest-memory-mib"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn the_guest_flag_is_required() {
    let output = run(&["run"]);
    assert_eq!(output.status.code(), Some(2), "clap's usage error");
    assert!(stderr(&output).contains("--guest"), "{}", stderr(&output));
}

#[test]
fn a_guest_declaring_a_child_kind_the_host_does_not_allow_is_refused_at_start() {
    let guest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release/guest_potatohead.wasm");
    assert!(
        guest.exists(),
        "{} is missing: run `make guest`",
        guest.display()
    );
    let output = run(&[
        "run",
        "--guest",
        guest.to_str().unwrap(),
        "--allowed-child-kind",
        "v1/ConfigMap,v1/Service",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr(&output);
    assert!(
        stderr.contains(
            "declares child kind Deployment.apps/v1, which --allowed-child-kind does not allow"
        ),
        "{stderr}"
    );
}

#[test]
fn a_malformed_allowed_child_kind_is_refused() {
    let output = run(&[
        "run",
        "--guest",
        "g.wasm",
        "--allowed-child-kind",
        "Deployment",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("--allowed-child-kind: \"Deployment\" is not group/version/Kind"),
        "{}",
        stderr(&output)
    );
}
