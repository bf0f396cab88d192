//! Optional CPU profiles of the API server, one per phase, for finding where its time goes:
//! `API_SERVER_PROFILES=<dir> make bench-scale`. The API server serves Go's pprof (`--profiling`
//! is on by default); a phase is profiled in back-to-back one-second slices until it ends, so a
//! profile covers the whole phase whatever its length (and at most a second more). Read one with
//! `go tool pprof -top <dir>/<phase>/*.pb.gz` (pprof merges the slices); e.g. `-focus=customresource`
//! for the PotatoHead writes, `-focus=gcBgMarkWorker` for the garbage collector.

use std::path::PathBuf;

use futures::AsyncReadExt;
use kube::Client;
use tokio::sync::oneshot;

/// Where profiles go, if anywhere.
pub struct ApiServerProfiles {
    dir: Option<PathBuf>,
    client: Client,
}

/// A phase being profiled.
pub struct PhaseProfile {
    running: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

impl ApiServerProfiles {
    pub fn from_env(client: &Client) -> ApiServerProfiles {
        let dir = std::env::var_os("API_SERVER_PROFILES").map(PathBuf::from);
        if let Some(dir) = &dir {
            println!("API server CPU profiles: {}", dir.display());
        }
        ApiServerProfiles {
            dir,
            client: client.clone(),
        }
    }

    /// Starts profiling phase `name` (nothing when profiles are off).
    pub fn phase(&self, name: &str) -> PhaseProfile {
        let Some(dir) = &self.dir else {
            return PhaseProfile { running: None };
        };
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).expect("profile folder");
        let client = self.client.clone();
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            for slice in 0.. {
                let request = http::Request::get("/debug/pprof/profile?seconds=1")
                    .body(Vec::new())
                    .expect("request");
                let mut profile = Vec::new();
                client
                    .request_stream(request)
                    .await
                    .expect("the API server's pprof endpoint")
                    .read_to_end(&mut profile)
                    .await
                    .expect("a profile");
                std::fs::write(dir.join(format!("{slice:04}.pb.gz")), profile).expect("write");
                // Asked to stop, or the phase's handle is gone.
                if !matches!(stopped.try_recv(), Err(oneshot::error::TryRecvError::Empty)) {
                    return;
                }
            }
        });
        PhaseProfile {
            running: Some((stop, task)),
        }
    }
}

impl PhaseProfile {
    /// Ends the profile once its current slice is written.
    pub async fn finish(self) {
        if let Some((stop, task)) = self.running {
            let _ = stop.send(());
            task.await.expect("profile task");
        }
    }
}
