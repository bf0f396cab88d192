//! The caches of the children the host's parents own: one per child kind, shared by every parent
//! kind the host serves, indexed by the UID of the controlling parent, so a reconcile reads its
//! children without scanning unrelated objects.
//! Beside each kind's children sits the index of the kind's *unmanaged* names (`unmanaged.rs`),
//! so [`ChildCaches::holder`] can tell who holds any name without asking the API server. The
//! watches that fill both are in `child_watch.rs`.
//!
//! # Guarantees
//! - [`ChildCaches::synced`] is false until every asked-for kind has completed its first list,
//!   and a relist replaces a kind's index whole (`relist.rs`): a reconcile never sees a
//!   half-listed cache, so it never prunes on incomplete information.
//! - [`ChildCaches::owned_by`] returns only children whose controller owner reference is the
//!   parent, in the namespaces the caller admits.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use futures::channel::mpsc::UnboundedSender;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::kinds::ResolvedKind;
use super::name_waiters::NameWaiters;
use super::ownership::{Holder, ObjectName};
use super::pending::PendingWrites;
use super::relist::{Index, RelistingIndex};
use super::unmanaged::UnmanagedNames;
use super::watch_scope::WatchScope;

/// One cached child and its kind.
#[derive(Clone, Debug)]
pub struct ObservedChild {
    pub kind: Arc<ResolvedKind>,
    pub object: Arc<DynamicObject>,
}

/// Every child cache, shared by every parent kind the host serves, plus where to send each parent
/// kind's reconcile requests.
pub struct ChildCaches {
    pub(super) scope: WatchScope,
    /// The parent kinds served, by `(apiVersion, kind)`: a child whose controller is one of them
    /// is that parent's child, and its events reconcile that parent.
    pub(super) parents: RwLock<HashMap<(String, String), ServedParentKind>>,
    pub(super) caches: RwLock<Vec<Arc<KindCache>>>,
    /// Which child kinds each user (a parent kind's controller) needs; a kind no user needs is
    /// not watched.
    pub(super) users: Mutex<HashMap<String, Vec<GroupVersionKind>>>,
    pub(super) synced_changed: Notify,
    /// Parents refused a name, reconciled when an object of that name is deleted.
    pub(super) waiters: NameWaiters,
}

/// A parent kind the host serves: its resource, and its controller's reconcile requests.
pub(super) struct ServedParentKind {
    pub resource: ApiResource,
    /// False for a cluster-scoped parent kind: its reconcile requests name no namespace.
    pub namespaced: bool,
    pub triggers: UnboundedSender<ObjectRef<DynamicObject>>,
}

/// Everything the host keeps about one child kind.
pub(super) struct KindCache {
    pub kind: Arc<ResolvedKind>,
    /// The host's children of this kind (those with its managed-by label).
    pub children: RelistingIndex<ChildIndex>,
    /// The kind's other objects, by name.
    pub unmanaged: UnmanagedNames,
    /// The two watches (children, unmanaged names).
    pub watch_tasks: Mutex<Vec<AbortHandle>>,
    pub pending: PendingWrites,
    /// The children's watch failed and has not listed completely since (its CRD deleted, the
    /// API server gone): what the cache holds may be stale, so nobody decides on it.
    pub watch_failing: std::sync::atomic::AtomicBool,
}

impl KindCache {
    pub fn new(kind: Arc<ResolvedKind>) -> Self {
        Self {
            kind,
            children: RelistingIndex::default(),
            unmanaged: UnmanagedNames::default(),
            watch_tasks: Mutex::default(),
            pending: PendingWrites::default(),
            watch_failing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Listed completely, and its watch not failing since.
    fn usable(&self) -> bool {
        self.children.is_synced()
            && !self
                .watch_failing
                .load(std::sync::atomic::Ordering::Acquire)
    }
}

/// One labelled object of a child kind, as the index keeps it.
pub(super) struct CachedChild {
    pub name: ObjectName,
    pub holder: Holder,
    pub object: Arc<DynamicObject>,
}

/// The labelled objects of one kind: by controlling parent, and who controls each.
#[derive(Default)]
pub(super) struct ChildIndex {
    /// The objects controlled by a parent (of any kind: UIDs are unique), by the parent's UID.
    by_owner: HashMap<String, BTreeMap<ObjectName, Arc<DynamicObject>>>,
    /// Who controls each labelled object, a parent or not (for the take-over rule).
    pub holders: HashMap<ObjectName, Holder>,
}

impl Index for ChildIndex {
    type Entry = CachedChild;

    fn upsert(&mut self, child: CachedChild) {
        self.remove(&child);
        if let Some(uid) = child.holder.uid() {
            self.by_owner
                .entry(uid.to_string())
                .or_default()
                .insert(child.name.clone(), child.object);
        }
        self.holders.insert(child.name, child.holder);
    }

    fn remove(&mut self, child: &CachedChild) {
        if let Some(holder) = self.holders.remove(&child.name)
            && let Some(uid) = holder.uid()
            && let Some(children) = self.by_owner.get_mut(uid)
        {
            children.remove(&child.name);
            if children.is_empty() {
                self.by_owner.remove(uid);
            }
        }
    }
}

impl ChildCaches {
    /// True once every kind in `kinds` is watched and has listed completely at least once.
    pub fn synced(&self, kinds: &[Arc<ResolvedKind>]) -> bool {
        let caches = self.caches();
        kinds
            .iter()
            .all(|kind| caches.iter().any(|c| c.kind.gvk == kind.gvk && c.usable()))
    }

    /// Those of `kinds` whose watch is failing (it failed and has not listed again since), as
    /// people write kinds.
    pub fn failing(&self, kinds: &[Arc<ResolvedKind>]) -> Vec<String> {
        self.caches()
            .iter()
            .filter(|c| kinds.iter().any(|k| k.gvk == c.kind.gvk))
            .filter(|c| c.watch_failing.load(std::sync::atomic::Ordering::Acquire))
            .map(|c| c.kind.display_name())
            .collect()
    }

    /// Every cached child of one of `kinds` controlled by the parent with this UID, by kind
    /// (in the order of `kinds`) then namespace/name.
    ///
    /// Only children in a namespace `admits` accepts (empty for a cluster-scoped child) count:
    /// an object elsewhere carrying the host's label and the parent's UID was not made by the
    /// host (it writes nowhere else) and is neither shown to the guest nor ever pruned.
    pub fn owned_by(
        &self,
        parent_uid: &str,
        admits: impl Fn(&str) -> bool,
        kinds: &[Arc<ResolvedKind>],
    ) -> Vec<ObservedChild> {
        let caches = self.caches();
        let mut children = Vec::new();
        for kind in kinds {
            let Some(cache) = caches.iter().find(|c| c.kind.gvk == kind.gvk) else {
                continue;
            };
            cache.children.read_live(|index| {
                let Some(owned) = index.by_owner.get(parent_uid) else {
                    return;
                };
                children.extend(
                    owned
                        .values()
                        .filter(|object| {
                            admits(object.metadata.namespace.as_deref().unwrap_or_default())
                        })
                        .map(|object| ObservedChild {
                            kind: Arc::clone(&cache.kind),
                            object: Arc::clone(object),
                        }),
                );
            });
        }
        children
    }

    /// Who holds the name `namespace/name` of `kind`, if anything does; `None` when the caches
    /// cannot tell (the kind is not watched, or has not listed yet), and the API server must.
    pub fn holder(
        &self,
        kind: &ResolvedKind,
        namespace: &str,
        name: &str,
    ) -> Option<Option<Holder>> {
        let cache = self.cache_of(kind)?;
        let key = (namespace.to_string(), name.to_string());
        let labelled = cache
            .children
            .read(|index| index.holders.get(&key).cloned())?;
        let unmanaged = cache.unmanaged.holder(namespace, name)?;
        Some(labelled.or(unmanaged))
    }

    /// Remembers that the host wrote `digest` to a child over `seen_version` (the version its cache
    /// showed; `None`: absent), until the child's next watch event.
    pub fn wrote(
        &self,
        kind: &ResolvedKind,
        name: ObjectName,
        seen_version: Option<String>,
        digest: String,
    ) {
        if let Some(cache) = self.cache_of(kind) {
            cache.pending.wrote(name, seen_version, digest);
        }
    }

    /// True when the host already wrote `digest` to this child and the cache still shows the
    /// version it wrote over: the write is on its way, and applying again would only repeat it.
    /// Any watch event for the child (or a relist) ends this, so a change made by someone else
    /// afterwards is judged on what the cache then shows.
    pub fn write_in_flight(
        &self,
        kind: &ResolvedKind,
        name: &ObjectName,
        cached_version: Option<&str>,
        digest: &str,
    ) -> bool {
        self.cache_of(kind)
            .is_some_and(|cache| cache.pending.in_flight(name, cached_version, digest))
    }

    /// The cache of one kind, if it is watched.
    pub(super) fn cache_of(&self, kind: &ResolvedKind) -> Option<Arc<KindCache>> {
        self.caches
            .read()
            .expect("cache list lock poisoned")
            .iter()
            .find(|c| c.kind.gvk == kind.gvk)
            .cloned()
    }

    pub(super) fn caches(&self) -> Vec<Arc<KindCache>> {
        self.caches
            .read()
            .expect("cache list lock poisoned")
            .clone()
    }
}
