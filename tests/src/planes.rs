//! The control planes a test process uses: one shared by every test of the process, or one of
//! a test's own whose servers it may stop and resume. Both have the PotatoHead CRD installed.

use std::sync::OnceLock;

use local_control_plane::{ControlPlane, Options};

use crate::paths::workspace_root;

/// One control plane per test process (without kube-controller-manager), with the
/// PotatoHead CRD installed, started on first use by a thread that lives as long as the
/// process. With `USE_EXISTING_CLUSTER=true` the cluster of [`ControlPlane::existing`] is used.
pub async fn shared_plane() -> &'static ControlPlane {
    static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
    let plane = tokio::task::spawn_blocking(|| {
        SHARED.get_or_init(|| {
            let (started, receive) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("control-plane".into())
                .spawn(move || {
                    let use_existing =
                        std::env::var("USE_EXISTING_CLUSTER").is_ok_and(|v| v == "true");
                    let plane = if use_existing {
                        ControlPlane::existing()
                    } else {
                        ControlPlane::start(Options::default())
                    };
                    let plane = plane.and_then(|plane| {
                        plane.block_on(
                            plane.install_crd(&workspace_root().join("deploy/crd/potatohead.yaml")),
                        )?;
                        Ok(plane)
                    });
                    started
                        .send(plane.map_err(|e| format!("{e:#}")))
                        .expect("receiver waits");
                    // The processes live as long as this thread: park it for good.
                    loop {
                        std::thread::park();
                    }
                })
                .expect("spawn control-plane thread");
            receive.recv().expect("control-plane thread reports")
        })
    })
    .await
    .expect("control-plane start-up task");
    match plane {
        Ok(plane) => plane,
        Err(error) => panic!("starting the control plane failed: {error}"),
    }
}

/// A control plane of its own for one test, whose servers the test may stop and resume. It
/// lives on a thread of its own (servers die with the thread that started them), which also
/// starts servers again. Stopped when dropped.
pub struct DedicatedPlane {
    plane: std::sync::Arc<ControlPlane>,
    requests: Option<std::sync::mpsc::Sender<PlaneRequest>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type PlaneRequest = Box<dyn FnOnce(&ControlPlane) + Send>;

impl DedicatedPlane {
    /// Starts etcd, kube-apiserver (and kube-controller-manager if asked) and installs the
    /// PotatoHead CRD.
    pub async fn start(options: Options) -> DedicatedPlane {
        let (started, receive) = tokio::sync::oneshot::channel();
        let (requests, incoming) = std::sync::mpsc::channel::<PlaneRequest>();
        let thread = std::thread::Builder::new()
            .name("dedicated-plane".into())
            .spawn(move || {
                let plane = ControlPlane::start(options).and_then(|plane| {
                    plane.block_on(
                        plane.install_crd(&workspace_root().join("deploy/crd/potatohead.yaml")),
                    )?;
                    Ok(std::sync::Arc::new(plane))
                });
                let plane = match plane {
                    Ok(plane) => {
                        let _ = started.send(Ok(std::sync::Arc::clone(&plane)));
                        plane
                    }
                    Err(error) => {
                        let _ = started.send(Err(format!("{error:#}")));
                        return;
                    }
                };
                // Serve requests until the sender is dropped; then the plane (the last
                // reference, once the test dropped its own) stops its servers.
                for request in incoming {
                    request(&plane);
                }
            })
            .expect("spawn dedicated-plane thread");
        let plane = receive
            .await
            .expect("plane thread reports")
            .unwrap_or_else(|e| panic!("starting a dedicated control plane failed: {e}"));
        DedicatedPlane {
            plane,
            requests: Some(requests),
            thread: Some(thread),
        }
    }

    /// Starts a stopped server again, from the plane's own thread.
    pub async fn resume(&self, name: &str) {
        let (done, finished) = tokio::sync::oneshot::channel();
        let name = name.to_string();
        self.requests
            .as_ref()
            .expect("plane running")
            .send(Box::new(move |plane: &ControlPlane| {
                let _ = done.send(plane.resume(&name).map_err(|e| format!("{e:#}")));
            }))
            .expect("plane thread alive");
        finished
            .await
            .expect("plane thread answers")
            .unwrap_or_else(|e| panic!("resuming failed: {e}"));
    }
}

impl std::ops::Deref for DedicatedPlane {
    type Target = ControlPlane;
    fn deref(&self) -> &ControlPlane {
        &self.plane
    }
}

impl Drop for DedicatedPlane {
    fn drop(&mut self) {
        // The thread holds the other reference; closing the channel ends it and drops the plane.
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
