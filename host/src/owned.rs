//! Caches of the children the host's parents own, one per declared child kind, indexed by the UID
//! of the controlling parent, so a reconcile reads its children without scanning unrelated objects.
//!
//! Only objects carrying the host's `managed-by` label are watched (a label selector on the server
//! side), which keeps unrelated objects out of memory altogether. A child whose label someone
//! removed leaves the cache; its parent's next reconcile applies it again, restoring the label.
//!
//! # Guarantees
//! - After a (re)list, the index is replaced atomically at `InitDone`: a reconcile never sees a
//!   half-listed cache, so it never prunes on incomplete information.
//! - [`OwnedChildren::synced`] is false until every kind has completed its first list.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use kube::api::{Api, DynamicObject, ObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::Notify;

use crate::kinds::ResolvedKind;

/// Namespace and name of a child.
pub type ChildName = (String, String);

/// The parent kind children must point at (an owner reference's apiVersion and kind).
#[derive(Clone, Debug)]
pub struct OwnerKind {
    pub api_version: String,
    pub kind: String,
}

/// One cached child, with the index of its kind in [`OwnedChildren::kinds`].
#[derive(Clone, Debug)]
pub struct ObservedChild {
    pub kind: usize,
    pub object: Arc<DynamicObject>,
}

/// All child caches.
pub struct OwnedChildren {
    owner: OwnerKind,
    caches: Vec<ChildCache>,
    synced_changed: Notify,
}

struct ChildCache {
    kind: ResolvedKind,
    index: RwLock<CacheState>,
    synced: AtomicBool,
}

#[derive(Default)]
struct CacheState {
    live: Index,
    /// Filled during a (re)list and swapped in at `InitDone`.
    relisting: Option<Index>,
}

#[derive(Default)]
struct Index {
    by_owner: HashMap<String, BTreeMap<ChildName, Arc<DynamicObject>>>,
    owner_of: HashMap<ChildName, String>,
}

impl Index {
    fn upsert(&mut self, object: DynamicObject, owner: &OwnerKind) {
        let key = child_name(&object.metadata);
        self.remove(&key);
        if let Some(owner_uid) = controller_uid(&object.metadata, owner) {
            self.owner_of.insert(key.clone(), owner_uid.clone());
            self.by_owner
                .entry(owner_uid)
                .or_default()
                .insert(key, Arc::new(object));
        }
    }

    fn remove(&mut self, key: &ChildName) {
        if let Some(owner_uid) = self.owner_of.remove(key)
            && let Some(children) = self.by_owner.get_mut(&owner_uid)
        {
            children.remove(key);
            if children.is_empty() {
                self.by_owner.remove(&owner_uid);
            }
        }
    }
}

fn child_name(meta: &ObjectMeta) -> ChildName {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The UID of the object's controller, if that controller is of the parent kind.
fn controller_uid(meta: &ObjectMeta, owner: &OwnerKind) -> Option<String> {
    meta.owner_references.as_ref()?.iter().find_map(|r| {
        (r.controller == Some(true) && r.kind == owner.kind && r.api_version == owner.api_version)
            .then(|| r.uid.clone())
    })
}

impl OwnedChildren {
    pub fn new(owner: OwnerKind, kinds: Vec<ResolvedKind>) -> Arc<Self> {
        let caches = kinds
            .into_iter()
            .map(|kind| ChildCache {
                kind,
                index: RwLock::default(),
                synced: AtomicBool::new(false),
            })
            .collect();
        Arc::new(Self {
            owner,
            caches,
            synced_changed: Notify::new(),
        })
    }

    /// The declared child kinds, in the order the guest declared them.
    pub fn kinds(&self) -> impl Iterator<Item = &ResolvedKind> {
        self.caches.iter().map(|c| &c.kind)
    }

    /// Position of a kind in [`Self::kinds`].
    pub fn kind_index(&self, api_version: &str, kind: &str) -> Option<usize> {
        self.caches.iter().position(|c| {
            c.kind.resource.api_version == api_version && c.kind.resource.kind == kind
        })
    }

    pub fn kind(&self, index: usize) -> &ResolvedKind {
        &self.caches[index].kind
    }

    /// True once every child kind has been listed completely at least once.
    pub fn synced(&self) -> bool {
        self.caches.iter().all(|c| c.synced.load(Ordering::Acquire))
    }

    /// Waits until [`Self::synced`].
    pub async fn wait_synced(&self) {
        loop {
            let changed = self.synced_changed.notified();
            if self.synced() {
                return;
            }
            changed.await;
        }
    }

    /// Every cached child controlled by the parent with this UID, by kind then namespace/name.
    pub fn owned_by(&self, parent_uid: &str) -> Vec<ObservedChild> {
        let mut children = Vec::new();
        for (kind, cache) in self.caches.iter().enumerate() {
            let index = cache.index.read().expect("child index lock poisoned");
            if let Some(owned) = index.live.by_owner.get(parent_uid) {
                children.extend(owned.values().map(|object| ObservedChild {
                    kind,
                    object: Arc::clone(object),
                }));
            }
        }
        children
    }

    /// Applies one watch event of kind `kind` to its cache. Returns the objects whose parents
    /// should be reconciled because of it.
    fn handle(&self, kind: usize, event: Event<DynamicObject>) -> Vec<DynamicObject> {
        let cache = &self.caches[kind];
        let mut state = cache.index.write().expect("child index lock poisoned");
        match event {
            Event::Apply(object) => {
                let trigger = trigger_stub(&object);
                state.live.upsert(object, &self.owner);
                vec![trigger]
            }
            Event::Delete(object) => {
                state.live.remove(&child_name(&object.metadata));
                vec![trigger_stub(&object)]
            }
            Event::Init => {
                state.relisting = Some(Index::default());
                vec![]
            }
            Event::InitApply(object) => {
                let trigger = trigger_stub(&object);
                state
                    .relisting
                    .get_or_insert_default()
                    .upsert(object, &self.owner);
                vec![trigger]
            }
            Event::InitDone => {
                // Parents whose children vanished while the watch was down must hear about it.
                let old_children: Vec<DynamicObject> = state
                    .live
                    .by_owner
                    .values()
                    .flat_map(|children| children.values().map(|o| trigger_stub(o)))
                    .collect();
                state.live = state.relisting.take().unwrap_or_default();
                drop(state);
                if !cache.synced.swap(true, Ordering::AcqRel) {
                    tracing::debug!(kind = %cache.kind.display_name(), "child cache synced");
                    self.synced_changed.notify_waiters();
                }
                old_children
            }
        }
    }

    /// Watches one child kind forever, keeping its cache current and sending every touched
    /// child to `triggers` (the controller maps them to their parents).
    pub async fn watch(
        self: Arc<Self>,
        kind: usize,
        api: Api<DynamicObject>,
        config: watcher::Config,
        triggers: UnboundedSender<DynamicObject>,
    ) {
        let name = self.caches[kind].kind.display_name();
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    for object in self.handle(kind, event) {
                        // The receiver only goes away when the controller shuts down.
                        let _ = triggers.unbounded_send(object);
                    }
                }
                Err(error) => {
                    tracing::warn!(kind = %name, %error, "child watch failed; retrying with backoff")
                }
            }
        }
    }
}

/// A metadata-only copy of a child: enough for the controller to find its owner, and cheap to
/// queue when thousands arrive at once during a list.
fn trigger_stub(object: &DynamicObject) -> DynamicObject {
    DynamicObject {
        types: None,
        metadata: ObjectMeta {
            name: object.metadata.name.clone(),
            namespace: object.metadata.namespace.clone(),
            owner_references: object.metadata.owner_references.clone(),
            ..ObjectMeta::default()
        },
        data: serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::api::ApiResource;

    use super::*;

    fn owner() -> OwnerKind {
        OwnerKind {
            api_version: "podtato.example.com/v1alpha1".into(),
            kind: "PotatoHead".into(),
        }
    }

    fn children() -> Arc<OwnedChildren> {
        let gvk = kube::api::GroupVersionKind::gvk("apps", "v1", "Deployment");
        let kind = ResolvedKind {
            resource: ApiResource::from_gvk(&gvk),
            gvk,
            namespaced: true,
        };
        OwnedChildren::new(owner(), vec![kind])
    }

    fn child(name: &str, owner_uid: Option<&str>, controller: bool) -> DynamicObject {
        let mut object = DynamicObject {
            types: None,
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: serde_json::Value::Null,
        };
        if let Some(uid) = owner_uid {
            object.metadata.owner_references = Some(vec![OwnerReference {
                api_version: owner().api_version,
                kind: owner().kind,
                name: "p".into(),
                uid: uid.into(),
                controller: Some(controller),
                block_owner_deletion: None,
            }]);
        }
        object
    }

    fn names(children: &OwnedChildren, uid: &str) -> Vec<String> {
        children
            .owned_by(uid)
            .iter()
            .map(|c| c.object.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn children_are_found_by_their_controller_uid_only() {
        let cache = children();
        cache.handle(0, Event::Apply(child("a", Some("p1"), true)));
        cache.handle(0, Event::Apply(child("b", Some("p2"), true)));
        cache.handle(0, Event::Apply(child("c", Some("p1"), false)));
        cache.handle(0, Event::Apply(child("d", None, false)));
        assert_eq!(names(&cache, "p1"), ["a"]);
        assert_eq!(names(&cache, "p2"), ["b"]);
    }

    #[test]
    fn a_child_whose_controller_changes_moves_between_parents() {
        let cache = children();
        cache.handle(0, Event::Apply(child("a", Some("p1"), true)));
        cache.handle(0, Event::Apply(child("a", Some("p2"), true)));
        assert!(names(&cache, "p1").is_empty());
        assert_eq!(names(&cache, "p2"), ["a"]);
        cache.handle(0, Event::Delete(child("a", Some("p2"), true)));
        assert!(names(&cache, "p2").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_only_when_it_is_complete() {
        let cache = children();
        assert!(!cache.synced());
        cache.handle(0, Event::Init);
        cache.handle(0, Event::InitApply(child("a", Some("p1"), true)));
        cache.handle(0, Event::InitDone);
        assert!(cache.synced());
        assert_eq!(names(&cache, "p1"), ["a"]);

        // A relist in which "a" is gone: until InitDone the old, complete index is served.
        cache.handle(0, Event::Init);
        cache.handle(0, Event::InitApply(child("b", Some("p1"), true)));
        assert_eq!(names(&cache, "p1"), ["a"]);
        let triggers = cache.handle(0, Event::InitDone);
        assert_eq!(names(&cache, "p1"), ["b"]);
        // The parent of the vanished child is told.
        assert!(
            triggers
                .iter()
                .any(|t| t.metadata.name.as_deref() == Some("a"))
        );
    }
}
