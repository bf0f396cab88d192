//! The files a control plane needs: its binaries, kubeconfigs, and scratch folders of earlier runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::DIR_PREFIX;

/// The repository root (this crate lives in `<root>/hack/local-control-plane`).
fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) fn kubeconfig_yaml(
    server: &str,
    ca_file: &Path,
    token: &str,
    namespace: &str,
) -> String {
    let ca_file = ca_file.display();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: {server}
    certificate-authority: {ca_file}
users:
- name: user
  user:
    token: {token}
contexts:
- name: local
  context:
    cluster: local
    user: user
    namespace: {namespace}
current-context: local
"
    )
}

/// The folder with kube-apiserver, kube-controller-manager and etcd, from the project's script
/// (which honours KUBEBUILDER_ASSETS and builds and caches the binaries on first use).
pub(crate) fn control_plane_bins() -> anyhow::Result<PathBuf> {
    let script = repository_root().join("hack/control-plane-bins.sh");
    let output = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!("{} failed ({})", script.display(), output.status);
    }
    let stdout = String::from_utf8(output.stdout)?;
    let dir = stdout.lines().last().context("script printed no folder")?;
    Ok(PathBuf::from(dir.trim()))
}

/// Scratch folders of earlier test processes that are no longer running.
pub(crate) fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // kill(pid, 0) fails with ESRCH when no such process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}
