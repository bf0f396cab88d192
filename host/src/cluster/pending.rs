//! Writes the host made that the child watch has not shown yet.
//!
//! Without them, a reconcile triggered by the first of several child events would see the other
//! children still stale and apply them again (11 Deployment applies per PotatoHead instead of 6
//! when 1000 tags change at once).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::ownership::ObjectName;

/// A write whose watch event has not reached the cache yet: which version of the child the cache
/// showed when it was written (`None`: absent) and the desired-state digest written.
struct PendingWrite {
    seen_version: Option<String>,
    digest: String,
}

/// The pending writes of one child kind.
#[derive(Default)]
pub struct PendingWrites {
    by_name: Mutex<HashMap<ObjectName, PendingWrite>>,
}

impl PendingWrites {
    fn lock(&self) -> MutexGuard<'_, HashMap<ObjectName, PendingWrite>> {
        self.by_name.lock().expect("pending writes lock poisoned")
    }

    /// Remembers that `digest` was written over `seen_version` (`None`: the child was absent).
    pub fn wrote(&self, name: ObjectName, seen_version: Option<String>, digest: String) {
        self.lock().insert(
            name,
            PendingWrite {
                seen_version,
                digest,
            },
        );
    }

    /// True when `digest` was written and the cache still shows the version it was written over.
    pub fn in_flight(&self, name: &ObjectName, cached_version: Option<&str>, digest: &str) -> bool {
        self.lock().get(name).is_some_and(|pending| {
            pending.digest == digest && pending.seen_version.as_deref() == cached_version
        })
    }

    /// The watch showed the child: the write arrived, or someone else changed it since.
    pub fn seen(&self, name: &ObjectName) {
        self.lock().remove(name);
    }

    /// A relist showed every child as it is.
    pub fn clear(&self) {
        self.lock().clear();
    }
}
