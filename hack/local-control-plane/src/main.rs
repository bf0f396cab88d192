//! Runs the local control plane (etcd, kube-apiserver, kube-controller-manager) until Ctrl-C or
//! SIGTERM, for `make demo` and for trying the host by hand.
//!
//! Usage: `local-control-plane [--no-controller-manager] [--kubeconfig PATH]`
//! Writes an admin kubeconfig to PATH (default `./local-control-plane.kubeconfig`) once the API
//! server is ready, prints `ready`, and removes it again on exit.

use std::path::PathBuf;

use anyhow::Context;
use local_control_plane::{ControlPlane, Options};

fn main() -> anyhow::Result<()> {
    let mut options = Options {
        controller_manager: true,
    };
    let mut kubeconfig_out = PathBuf::from("local-control-plane.kubeconfig");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-controller-manager" => options.controller_manager = false,
            "--kubeconfig" => {
                kubeconfig_out = args.next().context("--kubeconfig needs a path")?.into()
            }
            other => anyhow::bail!(
                "unknown argument {other:?}; usage: local-control-plane [--no-controller-manager] [--kubeconfig PATH]"
            ),
        }
    }

    eprintln!("[control-plane] starting etcd and kube-apiserver on loopback…");
    let plane = ControlPlane::start(options)?;
    std::fs::copy(&plane.kubeconfig, &kubeconfig_out)
        .with_context(|| format!("writing {}", kubeconfig_out.display()))?;
    eprintln!(
        "[control-plane] API server {} is ready; kubeconfig: {}",
        plane.server,
        kubeconfig_out.display()
    );
    println!("ready");

    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            anyhow::Ok(())
        })?;
    eprintln!("[control-plane] stopping");
    let _ = std::fs::remove_file(&kubeconfig_out);
    drop(plane);
    Ok(())
}
