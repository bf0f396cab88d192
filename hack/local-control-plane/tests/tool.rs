//! The tool as `make demo` runs it: it starts a real control plane, writes a kubeconfig that
//! reaches it, says `ready`, and on SIGTERM stops and removes the kubeconfig again.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const TOOL: &str = env!("CARGO_BIN_EXE_local-control-plane");

#[test]
fn it_serves_until_sigterm_then_removes_its_kubeconfig() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("plane.kubeconfig");
    let mut child = Command::new(TOOL)
        .args(["--no-controller-manager", "--kubeconfig"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    assert_eq!(first_line.trim(), "ready");

    let answered = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let config = kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
                &Default::default(),
            )
            .await
            .unwrap();
            kube::Client::try_from(config)
                .unwrap()
                .apiserver_version()
                .await
        });
    assert!(answered.is_ok(), "the API server answers: {answered:?}");

    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    assert!(!kubeconfig.exists(), "the kubeconfig is removed on exit");
}

#[test]
fn an_unknown_argument_is_refused_with_the_usage() {
    let output = Command::new(TOOL).arg("--bogus").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown argument \"--bogus\"") && stderr.contains("usage:"),
        "{stderr}"
    );
}
