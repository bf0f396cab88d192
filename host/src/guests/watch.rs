//! Noticing that the guests' files changed: a file-system watch of their folder (which also sees
//! the kubelet's `..data` symlink swap of a mounted ConfigMap) and SIGHUP, the conventional
//! "reload your configuration". Both only wake a channel; whoever owns it reads the folder.

use notify::Watcher;
use tokio::sync::mpsc;
use tracing::warn;

/// Watches `folder` for changes to its files, waking `wake`; `None` (logged) when the platform
/// refuses, in which case SIGHUP and the periodic check still work.
pub fn watch_folder(
    folder: &std::path::Path,
    wake: mpsc::Sender<&'static str>,
) -> Option<notify::RecommendedWatcher> {
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            // A full channel already holds a wake-up: nothing is lost by dropping this one.
            let _ = wake.try_send("file event");
        }
    });
    let watched = watcher.and_then(|mut watcher| {
        watcher.watch(folder, notify::RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    match watched {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            warn!(folder = %folder.display(), %error, "cannot watch the guest folder; relying on SIGHUP and the periodic check");
            None
        }
    }
}

/// Forwards SIGHUP to a channel while it lives: dropped with the hot swap (or the folder's
/// supervisor) that owns it, so stopped controllers leave no listener behind.
pub struct SighupForwarder(tokio::task::AbortHandle);

impl SighupForwarder {
    pub fn spawn(wake: mpsc::Sender<&'static str>) -> Self {
        Self(tokio::spawn(forward_sighup(wake)).abort_handle())
    }
}

impl Drop for SighupForwarder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn forward_sighup(wake: mpsc::Sender<&'static str>) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            warn!(%error, "cannot listen for SIGHUP; relying on the file watch and the periodic check");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        let _ = wake.send("SIGHUP").await;
    }
}
