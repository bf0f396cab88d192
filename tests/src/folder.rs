//! A host serving a folder of guests (`run --guests DIR`), and the folder written the way the
//! kubelet writes a mounted ConfigMap.

use std::path::Path;

use crate::paths::workspace_root;
use crate::{ControlPlane, HostProcess};

/// The shared control plane with the PodTatoHead CRD installed (the second guest of most
/// folder tests), and a client of it.
pub async fn with_podtatohead_crd() -> (&'static ControlPlane, kube::Client) {
    let plane = crate::shared_plane().await;
    plane
        .install_crd(&workspace_root().join("deploy/crd/podtatohead.yaml"))
        .await
        .unwrap();
    (plane, plane.client().await)
}

/// `reconciler-host run --guests <folder> --namespace <namespace> <extra…>`, checking the folder
/// every second.
pub fn serve_folder(
    plane: &ControlPlane,
    folder: &Path,
    namespace: &str,
    extra: &[&str],
) -> HostProcess {
    let mut args: Vec<String> = [
        "run",
        "--guests",
        &folder.display().to_string(),
        "--namespace",
        namespace,
        "--guest-poll-interval",
        "1s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    HostProcess::spawn(plane, &plane.kubeconfig, &args, &[])
}

/// Copies `guest` into `folder` as `name`, atomically (write beside, then rename), as the
/// kubelet's ConfigMap update does.
pub fn add_guest(folder: &Path, name: &str, guest: &Path) {
    let tmp = folder.join(format!(".{name}.tmp"));
    std::fs::copy(guest, &tmp).unwrap();
    std::fs::rename(&tmp, folder.join(name)).unwrap();
}

/// Writes `text` to `folder/name` atomically, as [`add_guest`] does.
pub fn write_file(folder: &Path, name: &str, text: &str) {
    let tmp = folder.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, folder.join(name)).unwrap();
}
