//! Parents waiting for a child name to be freed. A parent refused a name (held by another parent,
//! or by an object the host does not manage) waits for it, and the child watches reconcile it as
//! soon as they see that object deleted, instead of at its next backoff retry (up to five minutes
//! later).
//!
//! # Guarantees
//! Memory is bounded: a wait expires after [`WAIT_TTL`], and at most `MAX_WAITERS` parents
//! wait at once.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube::api::DynamicObject;
use kube::runtime::reflector::ObjectRef;

use super::ResourceName;

/// How long a refused parent waits for a name to be freed before it relies on its backoff only.
pub const WAIT_TTL: Duration = Duration::from_secs(10 * 60);
/// Most waiting parents remembered at once (the oldest are forgotten; their backoff remains).
const MAX_WAITERS: usize = 10_000;

/// Parents waiting for a name, by the name: `(namespace, name)` of a child kind's resource
/// (`group`, `kind`), each with the parents' names (in that namespace).
#[derive(Default)]
pub struct NameWaiters {
    by_name: Mutex<HashMap<ResourceName, HashMap<ObjectRef<DynamicObject>, Instant>>>,
}

impl NameWaiters {
    /// `parent` waits for `name` to be freed.
    pub fn wait(&self, name: ResourceName, parent: ObjectRef<DynamicObject>) {
        self.wait_at(name, parent, Instant::now());
    }

    fn wait_at(&self, name: ResourceName, parent: ObjectRef<DynamicObject>, now: Instant) {
        let mut waiting = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        waiting.retain(|_, parents| {
            parents.retain(|_, since| now.duration_since(*since) < WAIT_TTL);
            !parents.is_empty()
        });
        if waiting.values().map(HashMap::len).sum::<usize>() >= MAX_WAITERS {
            return;
        }
        waiting.entry(name).or_default().insert(parent, now);
    }

    /// The parents that waited for `name`, now that it is free; they wait no longer.
    pub fn freed(&self, name: &ResourceName) -> Vec<ObjectRef<DynamicObject>> {
        let mut waiting = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        waiting
            .remove(name)
            .map(|parents| parents.into_keys().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ownership::fixtures::config_map_name as name;

    #[test]
    fn waiting_parents_are_named_once_when_the_name_is_freed() {
        let waiters = NameWaiters::default();
        waiters.wait(name("x"), parent("a"));
        waiters.wait(name("x"), parent("b"));
        waiters.wait(name("y"), parent("c"));
        let mut freed: Vec<String> = waiters
            .freed(&name("x"))
            .into_iter()
            .map(|p| p.name)
            .collect();
        freed.sort();
        assert_eq!(freed, ["a", "b"]);
        assert!(waiters.freed(&name("x")).is_empty());
        let later = Instant::now() + WAIT_TTL + Duration::from_secs(1);
        waiters.wait_at(name("z"), parent("d"), later);
        assert!(waiters.freed(&name("y")).is_empty(), "expired");
    }

    fn parent(n: &str) -> ObjectRef<DynamicObject> {
        let resource = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "example.com",
            "v1",
            "Parent",
        ));
        ObjectRef::new_with(n, resource).within("ns")
    }
}
