//! The one way an end-to-end test sets itself up: a fresh namespace on the shared control plane,
//! a host serving only that namespace with the given guests and flags, and the standard waits.

use std::path::Path;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, DynamicObject};
use local_control_plane::ControlPlane;

use crate::{HostProcess, TestNamespace, eventually, shared_plane};

/// How long a test waits for the host to bring the cluster where it should be. Generous: a
/// loaded CI machine is slow, and a passing test only waits as long as it takes.
pub const CONVERGE: Duration = Duration::from_secs(60);

/// A namespace and a host reconciling it.
pub struct Scenario {
    pub plane: &'static ControlPlane,
    pub client: Client,
    pub namespace: String,
    /// Runs until the scenario is dropped.
    pub host: HostProcess,
}

impl Scenario {
    /// A namespace `<prefix>-<pid>-<n>` and `reconciler-host run --guest <guest> --namespace
    /// <it> <flags…>`. `guest` is a `.wasm` file or a folder of guests.
    pub async fn start(prefix: &str, guest: &Path, flags: &[&str]) -> Scenario {
        let (plane, client, namespace) = namespace(prefix).await;
        let args = [&["--namespace", namespace.as_str()][..], flags].concat();
        let host = HostProcess::start(plane, guest, &args);
        Scenario {
            plane,
            client,
            namespace,
            host,
        }
    }
}

impl Scenario {
    /// A namespace and `reconciler-host run --guests <folder> --namespace <it> <flags…>`, the
    /// folder checked every second.
    pub async fn serving_folder(prefix: &str, folder: &Path, flags: &[&str]) -> Scenario {
        let (plane, client, namespace) = namespace(prefix).await;
        let host = crate::folder::serve_folder(plane, folder, &namespace, flags);
        Scenario {
            plane,
            client,
            namespace,
            host,
        }
    }
}

/// A fresh namespace on the shared control plane and an admin client, for a test that starts its
/// hosts itself.
pub async fn namespace(prefix: &str) -> (&'static ControlPlane, Client, String) {
    let plane = shared_plane().await;
    let client = plane.client().await;
    let namespace = TestNamespace::create(&client, prefix).await.name;
    (plane, client, namespace)
}

/// Waits until `parent`'s `status.reconciler.name` is `guest` (the guest that decided last), and
/// returns the parent as it was then.
pub async fn reconciled_by(
    api: &Api<DynamicObject>,
    parent: &str,
    guest: &str,
    within: Duration,
) -> DynamicObject {
    eventually(
        within,
        &format!("{parent}'s status names the reconciler {guest}"),
        || async {
            let object = api.get(parent).await.map_err(|e| e.to_string())?;
            match object.data["status"]["reconciler"]["name"].as_str() {
                Some(name) if name == guest => Ok(object),
                other => Err(format!("status.reconciler.name is {other:?}")),
            }
        },
    )
    .await
}
