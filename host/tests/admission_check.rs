//! `reconciler-host check DIR` says what `run --guests DIR` would admit: every refusal class of
//! the host's admission, on real guest files and settings files, judged by the same flags.
//! Each hostile folder has one comment line saying what it attacks.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::built_guest;

/// Runs `check --guest FOLDER ARGS…`, killed if it takes longer than a minute (a check that
/// waits on a FIFO would otherwise hang the test run).
fn check(folder: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reconciler-host"))
        .args(["check", "--guest", folder.to_str().unwrap()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            let Output { stdout, .. } = child.wait_with_output().unwrap();
            panic!(
                "check did not finish within a minute:\n{}",
                String::from_utf8_lossy(&stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

fn add(folder: &Path, name: &str, guest: &str) {
    std::fs::copy(built_guest(guest), folder.join(format!("{name}.wasm"))).unwrap();
}

fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
}

/// The report of the guest file `name` within a folder's report.
fn report_of<'a>(report: &'a str, name: &str) -> &'a str {
    let start = report
        .find(&format!("{name}.wasm\n"))
        .unwrap_or_else(|| panic!("no report for {name} in:\n{report}"));
    let rest = &report[start..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

#[test]
fn settings_that_would_widen_the_hosts_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path();
    // Attack: a call waiting for more memory than the budget holds stalled every guest.
    add(folder, "a-memory", "guest_potatohead");
    std::fs::write(folder.join("a-memory.yaml"), "memory-mib: 300\n").unwrap();
    // Attack: an empty kind list once meant "any kind" and let a refused guest write Ingresses.
    add(folder, "b-no-kinds", "guest_podtatohead");
    std::fs::write(folder.join("b-no-kinds.yaml"), "allowed-child-kinds: []\n").unwrap();
    let (code, report) = check(
        folder,
        &[
            "--allowed-child-kind",
            "apps/v1/Deployment,v1/Service,v1/ConfigMap",
        ],
    );
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report_of(&report, "a-memory").contains(
            "a-memory.yaml: memory-mib: 300 is more than the host allows (--guest-memory-mib is 64)"
        ),
        "{report}"
    );
    assert!(
        report_of(&report, "b-no-kinds").contains("which its settings")
            && report_of(&report, "b-no-kinds").contains("does not allow (allowed: none)"),
        "{report}"
    );
    assert!(report.contains(": 2 guests, 0 usable"), "{report}");

    // Attack: a long timeout in a settings file let one guest's loops hold up the others.
    std::fs::remove_file(folder.join("b-no-kinds.wasm")).unwrap();
    std::fs::write(folder.join("a-memory.yaml"), "timeout: 60s\n").unwrap();
    let (code, report) = check(folder, &[]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report
            .contains("timeout: 60s is more than the host allows (--guest-timeout-ceiling is 2s)"),
        "{report}"
    );
    let (code, report) = check(folder, &["--guest-timeout-ceiling", "60s"]);
    assert_eq!(code, Some(0), "the admin's ceiling allows it: {report}");
    assert!(report.contains("settings:      timeout 60s"), "{report}");
}

// Attack: two guests, each legal alone, that create each other's parents (a fork loop).
#[test]
fn the_guest_that_would_close_a_cycle_of_kinds_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path();
    add(folder, "a-configmaps", "configmap_echo_guest");
    add(folder, "b-serviceaccounts", "serviceaccount_echo_guest");
    let (code, report) = check(folder, &["--allow-builtin-parent-kind"]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report_of(&report, "a-configmaps").contains("verdict:       usable by this host"),
        "the first keeps its place: {report}"
    );
    assert!(
        report_of(&report, "b-serviceaccounts").contains(
            "close a cycle (ServiceAccount (guest b-serviceaccounts) → ConfigMap (guest \
             a-configmaps) → ServiceAccount)"
        ),
        "{report}"
    );
}

// Attack: one resource under two API groups: each Ingress pruned and applied again without end.
#[test]
fn a_guest_that_declares_one_resource_under_two_groups_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    add(dir.path(), "ingresses", "ingress_twice_guest");
    let (code, report) = check(dir.path(), &["--allow-builtin-parent-kind"]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains(
            "declares Ingress.networking.k8s.io/v1 and Ingress.extensions/v1beta1, one resource \
             under two API groups"
        ),
        "{report}"
    );
}

// Attack: a FIFO named x.wasm (or NAME.yaml) blocked the thread that opened it.
#[test]
fn a_fifo_in_the_folder_is_refused_without_waiting_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path();
    mkfifo(&folder.join("a-fifo.wasm"));
    add(folder, "b-fifo-settings", "guest_potatohead");
    mkfifo(&folder.join("b-fifo-settings.yaml"));
    add(folder, "c-fine", "guest_podtatohead");
    let (code, report) = check(folder, &[]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report_of(&report, "a-fifo").contains("it is a FIFO, not a regular file"),
        "{report}"
    );
    assert!(
        report_of(&report, "b-fifo-settings").contains("b-fifo-settings.yaml: it is a FIFO"),
        "{report}"
    );
    assert!(
        report_of(&report, "c-fine").contains("usable by this host"),
        "{report}"
    );
}

#[test]
fn a_guest_file_over_the_size_cap_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.wasm");
    let mut bytes = std::fs::read(built_guest("guest_potatohead")).unwrap();
    bytes.resize(3 << 20, 0);
    std::fs::write(&big, bytes).unwrap();
    let (code, report) = check(dir.path(), &["--guest-max-file-mib", "2"]);
    assert_eq!(code, Some(1), "{report}");
    assert!(
        report.contains("more than the 2097152 bytes allowed (--guest-max-file-mib)"),
        "{report}"
    );
}

/// A guest's configuration is the guest's to judge: `check` gives it the one the host would
/// (`config` in NAME.yaml, or `--guest-config` for one file) and shows its own refusal.
#[test]
fn check_shows_the_guests_own_refusal_of_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path();
    add(folder, "potatohead", "guest_potatohead");
    // Attack: a configuration the guest cannot use must refuse the guest, not reach a reconcile.
    std::fs::write(
        folder.join("potatohead.yaml"),
        "config:\n  registry: https://x.io\n",
    )
    .unwrap();
    let (code, report) = check(folder, &[]);
    assert_eq!(code, Some(1), "{report}");
    let own = report_of(&report, "potatohead");
    assert!(
        own.contains("config:        27 bytes of JSON, sha256:"),
        "{own}"
    );
    assert!(
        own.contains("refused its configuration: config.registry: \"https://x.io\" has a scheme"),
        "{own}"
    );
    assert!(!own.contains("x.io\n"), "{own}");

    std::fs::write(
        folder.join("potatohead.yaml"),
        "config:\n  registry: mirror.example.com/podtato-head\n",
    )
    .unwrap();
    let (code, report) = check(folder, &[]);
    assert_eq!(code, Some(0), "{report}");

    // One file: the flag, as `run --guest-config` gives it (the command in docs/operating.md).
    std::fs::remove_file(folder.join("potatohead.yaml")).unwrap();
    let file = folder.join("potatohead.wasm");
    let (code, report) = check(&file, &["--guest-config", r#"{"registry":"x.io/"}"#]);
    assert_eq!(code, Some(1), "{report}");
    assert!(report.contains("\"x.io/\" ends with `/`"), "{report}");
    let (code, report) = check(&file, &["--guest-config", "{not json"]);
    assert_eq!(code, Some(2), "{report}");
    assert!(report.contains("--guest-config"), "{report}");
    assert!(report.contains("not JSON"), "{report}");
    let (code, report) = check(folder, &["--guest-config", "{}"]);
    assert_eq!(code, Some(2), "{report}");
    assert!(
        report.contains("each guest of a folder takes its"),
        "{report}"
    );
}
