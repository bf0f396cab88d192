//! The reconciles a controller has running, counted so that a stopping controller can wait for
//! the last one to finish: each holds a [`Running::enter`] guard, and [`Running::idle`] resolves
//! when none is left (no polling).

use tokio::sync::watch;

/// How many reconciles of one controller are running.
pub(super) struct Running(watch::Sender<usize>);

impl Default for Running {
    fn default() -> Self {
        Self(watch::Sender::new(0))
    }
}

impl Running {
    /// Counts one reconcile as running until the guard drops (also when its future is dropped).
    pub(super) fn enter(&self) -> RunningGuard {
        self.0.send_modify(|running| *running += 1);
        RunningGuard(self.0.clone())
    }

    /// Resolves once no reconcile is running.
    pub(super) async fn idle(&self) {
        let mut running = self.0.subscribe();
        // The sender lives in `self`, so the wait cannot fail.
        let _ = running.wait_for(|running| *running == 0).await;
    }
}

/// One running reconcile.
pub(super) struct RunningGuard(watch::Sender<usize>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.send_modify(|running| *running -= 1);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn idle_waits_for_the_last_running_reconcile() {
        let running = Running::default();
        running.idle().await;
        let first = running.enter();
        let second = running.enter();
        drop(first);
        let still_running = tokio::time::timeout(Duration::from_millis(50), running.idle()).await;
        assert!(still_running.is_err(), "one reconcile still runs");
        drop(second);
        tokio::time::timeout(Duration::from_secs(1), running.idle())
            .await
            .expect("idle once the last guard dropped");
    }
}
