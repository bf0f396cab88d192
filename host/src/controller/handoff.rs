//! A guest for another parent kind (allowed by `--allow-parent-kind-change`), handed from the
//! hot swap to its controller, which stops and is started again around it.

use std::sync::Mutex;

use crate::sandbox::LoadedGuest;

/// A guest for a new parent kind, handed from the hot swap to the controller, which stops and is
/// started again around it.
#[derive(Default)]
pub struct ParentKindHandoff {
    guest: Mutex<Option<LoadedGuest>>,
    handed_over: tokio::sync::Notify,
}

impl ParentKindHandoff {
    pub(super) fn hand_over(&self, guest: LoadedGuest) {
        *self.guest.lock().expect("handoff lock poisoned") = Some(guest);
        self.handed_over.notify_one();
    }

    /// Resolves once a guest has been handed over.
    pub async fn requested(&self) {
        self.handed_over.notified().await;
    }

    /// The handed-over guest, if any.
    pub fn take(&self) -> Option<LoadedGuest> {
        self.guest.lock().expect("handoff lock poisoned").take()
    }
}
