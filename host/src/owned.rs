//! Caches of the children the host's parents own, one per child kind the active guest declares,
//! indexed by the UID of the controlling parent, so a reconcile reads its children without
//! scanning unrelated objects. Kinds are added and removed at run time when a new guest declares
//! different child kinds.
//!
//! Only objects carrying the host's `managed-by` label are watched in full (a label selector on the
//! server side), which keeps unrelated objects' contents out of memory. A child whose label someone
//! removed leaves the cache; its parent's next reconcile applies it again, restoring the label.
//! Beside each kind's cache runs a metadata-only watch of the *other* objects of the kind
//! ([`ForeignNames`]), so [`OwnedChildren::holder`] can tell who holds any name without asking the
//! API server.
//!
//! # Guarantees
//! - After a (re)list, a kind's index is replaced atomically at `InitDone`: a reconcile never
//!   sees a half-listed cache, so it never prunes on incomplete information.
//! - [`OwnedChildren::synced`] is false until every asked-for kind has completed its first list.
//! - Every change to a child (and every child that vanished during a relist) is sent to the
//!   controller as a reconcile request for its controlling parent.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::apply::MANAGED_BY_LABEL;
use crate::claims::{ClaimedName, NameWaiters};
use crate::foreign::{ForeignNames, Holder};
use crate::kinds::ResolvedKind;

/// Namespace and name of a child.
type ChildName = (String, String);

/// One cached child and its kind.
#[derive(Clone, Debug)]
pub struct ObservedChild {
    pub kind: Arc<ResolvedKind>,
    pub object: Arc<DynamicObject>,
}

/// Where and what the child watches look at.
#[derive(Clone)]
pub struct WatchScope {
    pub client: kube::Client,
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    /// The value of the managed-by label on every child (the field manager).
    pub managed_by: String,
}

impl WatchScope {
    /// Selects the host's children.
    fn owned_selector(&self) -> String {
        format!("{MANAGED_BY_LABEL}={}", self.managed_by)
    }

    /// Selects every other object, including those without the label.
    fn foreign_selector(&self) -> String {
        format!("{MANAGED_BY_LABEL}!={}", self.managed_by)
    }

    fn api<K>(&self, resource: &ApiResource) -> Api<K>
    where
        K: kube::Resource<DynamicType = ApiResource, Scope = kube::core::DynamicResourceScope>,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }
}

/// Every child cache, plus where to send reconcile requests for parents.
pub struct OwnedChildren {
    /// The parent kind; only controller references to it count.
    parent: ApiResource,
    scope: WatchScope,
    triggers: UnboundedSender<ObjectRef<DynamicObject>>,
    caches: RwLock<Vec<Arc<ChildCache>>>,
    synced_changed: Notify,
    /// Parents refused a name, reconciled when an object of that name is deleted.
    waiters: NameWaiters,
}

struct ChildCache {
    kind: Arc<ResolvedKind>,
    state: RwLock<CacheState>,
    synced: AtomicBool,
    /// The same kind's objects without the host's label.
    foreign: ForeignNames,
    /// The two watches (children, foreign names).
    watch_tasks: Mutex<Vec<AbortHandle>>,
    /// Writes the host made that the watch has not delivered yet.
    pending: Mutex<HashMap<ChildName, PendingWrite>>,
}

/// A write of the host's whose watch event has not reached the cache yet: which version of the
/// child the cache showed when it was written (`None`: absent) and the desired-state digest
/// written. Without it, a reconcile triggered by the first of several child events would see the
/// other children still stale and apply them again (11 Deployment applies per PotatoHead instead
/// of 6 when 1000 tags change at once).
struct PendingWrite {
    seen_version: Option<String>,
    digest: String,
}

impl ChildCache {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<ChildName, PendingWrite>> {
        self.pending.lock().expect("pending writes lock poisoned")
    }

    fn new(kind: Arc<ResolvedKind>) -> Self {
        Self {
            kind,
            state: RwLock::default(),
            synced: AtomicBool::new(false),
            foreign: ForeignNames::default(),
            watch_tasks: Mutex::default(),
            pending: Mutex::default(),
        }
    }
}

#[derive(Default)]
struct CacheState {
    live: Index,
    /// Filled during a (re)list and swapped in at `InitDone`.
    relisting: Option<Index>,
}

#[derive(Default)]
struct Index {
    /// The objects controlled by a parent, by the parent's UID.
    by_owner: HashMap<String, BTreeMap<ChildName, Arc<DynamicObject>>>,
    /// Who controls each labelled object, a parent or not (for the take-over rule).
    holders: HashMap<ChildName, Holder>,
}

impl Index {
    fn upsert(&mut self, object: DynamicObject, parent: &ApiResource) {
        let key = child_name(&object.metadata);
        self.remove(&key);
        let holder = Holder::of(&object.metadata, parent);
        if let Holder::Parent { uid, .. } = &holder {
            self.by_owner
                .entry(uid.clone())
                .or_default()
                .insert(key.clone(), Arc::new(object));
        }
        self.holders.insert(key, holder);
    }

    fn remove(&mut self, key: &ChildName) {
        if let Some(Holder::Parent { uid, .. }) = self.holders.remove(key)
            && let Some(children) = self.by_owner.get_mut(&uid)
        {
            children.remove(key);
            if children.is_empty() {
                self.by_owner.remove(&uid);
            }
        }
    }
}

/// Makes a cached child the same however it arrived, and no bigger than needed:
/// - items of a list response carry no `apiVersion`/`kind` (watch events do): filled in, or the
///   guest would see children without a kind and the no-op check would re-apply every child
///   after each relist;
/// - `managedFields` dropped: nothing in the host or the guest reads them, and they are a large
///   part of every object applied with server-side apply.
fn normalize(object: &mut DynamicObject, kind: &ApiResource) {
    object.metadata.managed_fields = None;
    if object.types.is_none() {
        object.types = Some(kube::api::TypeMeta {
            api_version: kind.api_version.clone(),
            kind: kind.kind.clone(),
        });
    }
}

fn claimed_name(kind: &ResolvedKind, namespace: &str, name: &str) -> ClaimedName {
    ClaimedName {
        group: kind.gvk.group.clone(),
        kind: kind.gvk.kind.clone(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

fn child_name(meta: &ObjectMeta) -> ChildName {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl OwnedChildren {
    /// Empty caches; [`Self::watch_kinds`] starts the watches.
    pub fn new(
        parent: ApiResource,
        scope: WatchScope,
        triggers: UnboundedSender<ObjectRef<DynamicObject>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            parent,
            scope,
            triggers,
            caches: RwLock::default(),
            synced_changed: Notify::new(),
            waiters: NameWaiters::default(),
        })
    }

    /// Reconciles `parent` (in `namespace`) again as soon as the object `name` of `kind` is
    /// deleted, whether the host's child of another parent or an object the host does not
    /// manage.
    pub fn wait_for_name(&self, kind: &ResolvedKind, namespace: &str, name: &str, parent: &str) {
        self.waiters
            .wait(claimed_name(kind, namespace, name), parent.to_string());
    }

    /// Triggers the parents that waited for `namespace/name` of `kind`.
    fn name_freed(&self, kind: &ResolvedKind, namespace: &str, name: &str) {
        for parent in self.waiters.freed(&claimed_name(kind, namespace, name)) {
            // The receiver only goes away when the controller shuts down.
            let _ = self
                .triggers
                .unbounded_send(self.parent_ref(&parent, namespace));
        }
    }

    /// Starts watching every kind in `kinds` that is not watched yet, and waits until all of
    /// `kinds` have listed completely.
    ///
    /// # Errors
    /// The kinds that have not synced when `timeout` passes (their watches keep running).
    pub async fn watch_kinds(
        self: &Arc<Self>,
        kinds: &[Arc<ResolvedKind>],
        timeout: Duration,
    ) -> Result<(), String> {
        {
            let mut caches = self.caches.write().expect("cache list lock poisoned");
            for kind in kinds {
                if caches.iter().any(|c| c.kind.gvk == kind.gvk) {
                    continue;
                }
                let cache = Arc::new(ChildCache::new(Arc::clone(kind)));
                let children = tokio::spawn(Arc::clone(self).watch(Arc::clone(&cache)));
                let foreign = tokio::spawn(Arc::clone(self).watch_foreign(Arc::clone(&cache)));
                *cache.watch_tasks.lock().expect("watch task lock poisoned") =
                    vec![children.abort_handle(), foreign.abort_handle()];
                caches.push(cache);
            }
        }
        tokio::time::timeout(timeout, async {
            loop {
                let changed = self.synced_changed.notified();
                if self.synced(kinds) {
                    return;
                }
                changed.await;
            }
        })
        .await
        .map_err(|_| {
            let pending: Vec<String> = self
                .caches()
                .iter()
                .filter(|c| {
                    kinds.iter().any(|k| k.gvk == c.kind.gvk) && !c.synced.load(Ordering::Acquire)
                })
                .map(|c| c.kind.display_name())
                .collect();
            pending.join(", ")
        })
    }

    /// Stops watching, and forgets, every kind not in `kinds`.
    pub fn retain_kinds(&self, kinds: &[Arc<ResolvedKind>]) {
        let mut caches = self.caches.write().expect("cache list lock poisoned");
        caches.retain(|cache| {
            let keep = kinds.iter().any(|k| k.gvk == cache.kind.gvk);
            if !keep {
                for task in cache.watch_tasks.lock().expect("watch task lock poisoned").drain(..) {
                    task.abort();
                }
                tracing::info!(kind = %cache.kind.display_name(), "stopped watching a child kind the guest no longer declares");
            }
            keep
        });
    }

    /// True once every kind in `kinds` is watched and has listed completely at least once.
    pub fn synced(&self, kinds: &[Arc<ResolvedKind>]) -> bool {
        let caches = self.caches();
        kinds.iter().all(|kind| {
            caches
                .iter()
                .any(|c| c.kind.gvk == kind.gvk && c.synced.load(Ordering::Acquire))
        })
    }

    /// Every cached child of one of `kinds` controlled by the parent with this UID, by kind
    /// (in the order of `kinds`) then namespace/name.
    ///
    /// Only children in `namespace` (the parent's) count: an object elsewhere carrying the host's
    /// label and the parent's UID was not made by the host (it writes children into the parent's
    /// namespace only) and is neither shown to the guest nor ever pruned.
    pub fn owned_by(
        &self,
        parent_uid: &str,
        namespace: &str,
        kinds: &[Arc<ResolvedKind>],
    ) -> Vec<ObservedChild> {
        let caches = self.caches();
        let mut children = Vec::new();
        for kind in kinds {
            let Some(cache) = caches.iter().find(|c| c.kind.gvk == kind.gvk) else {
                continue;
            };
            let state = cache.state.read().expect("child index lock poisoned");
            if let Some(owned) = state.live.by_owner.get(parent_uid) {
                children.extend(
                    owned
                        .values()
                        .filter(|object| object.metadata.namespace.as_deref() == Some(namespace))
                        .map(|object| ObservedChild {
                            kind: Arc::clone(&cache.kind),
                            object: Arc::clone(object),
                        }),
                );
            }
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
        if !cache.synced.load(Ordering::Acquire) {
            return None;
        }
        let labelled = cache
            .state
            .read()
            .expect("child index lock poisoned")
            .live
            .holders
            .get(&(namespace.to_string(), name.to_string()))
            .cloned();
        let foreign = cache.foreign.holder(namespace, name)?;
        Some(labelled.or(foreign))
    }

    /// Remembers that the host wrote `digest` to a child over `seen_version` (the version its cache
    /// showed; `None`: absent), until the child's next watch event.
    pub fn wrote(
        &self,
        kind: &ResolvedKind,
        name: ChildName,
        seen_version: Option<String>,
        digest: String,
    ) {
        if let Some(cache) = self.cache_of(kind) {
            cache.pending().insert(
                name,
                PendingWrite {
                    seen_version,
                    digest,
                },
            );
        }
    }

    /// True when the host already wrote `digest` to this child and the cache still shows the
    /// version it wrote over: the write is on its way, and applying again would only repeat it.
    /// Any watch event for the child (or a relist) ends this, so a change made by someone else
    /// afterwards is judged on what the cache then shows.
    pub fn write_in_flight(
        &self,
        kind: &ResolvedKind,
        name: &ChildName,
        cached_version: Option<&str>,
        digest: &str,
    ) -> bool {
        let Some(cache) = self.cache_of(kind) else {
            return false;
        };
        cache.pending().get(name).is_some_and(|pending| {
            pending.digest == digest && pending.seen_version.as_deref() == cached_version
        })
    }

    /// The cache of one kind, if it is watched.
    fn cache_of(&self, kind: &ResolvedKind) -> Option<Arc<ChildCache>> {
        self.caches
            .read()
            .expect("cache list lock poisoned")
            .iter()
            .find(|c| c.kind.gvk == kind.gvk)
            .cloned()
    }

    fn caches(&self) -> Vec<Arc<ChildCache>> {
        self.caches
            .read()
            .expect("cache list lock poisoned")
            .clone()
    }

    /// Applies one watch event to a cache and returns the parents to reconcile because of it.
    fn handle(
        &self,
        cache: &ChildCache,
        event: Event<DynamicObject>,
    ) -> Vec<ObjectRef<DynamicObject>> {
        let mut state = cache.state.write().expect("child index lock poisoned");
        let event = event.modify(|object| normalize(object, &cache.kind.resource));
        match &event {
            Event::Apply(object) | Event::Delete(object) | Event::InitApply(object) => {
                cache.pending().remove(&child_name(&object.metadata));
            }
            Event::InitDone => cache.pending().clear(),
            Event::Init => {}
        }
        match event {
            Event::Apply(object) => {
                let parents = self.parent_of(&object).into_iter().collect();
                state.live.upsert(object, &self.parent);
                parents
            }
            Event::Delete(object) => {
                let (namespace, name) = child_name(&object.metadata);
                state.live.remove(&(namespace.clone(), name.clone()));
                drop(state);
                self.name_freed(&cache.kind, &namespace, &name);
                self.parent_of(&object).into_iter().collect()
            }
            Event::Init => {
                tracing::debug!(kind = %cache.kind.display_name(), "child cache listing");
                state.relisting = Some(Index::default());
                vec![]
            }
            Event::InitApply(object) => {
                let parents = self.parent_of(&object).into_iter().collect();
                state
                    .relisting
                    .get_or_insert_default()
                    .upsert(object, &self.parent);
                parents
            }
            Event::InitDone => {
                // Parents of children that vanished while the watch was down must hear about it.
                let listed = state.relisting.take().unwrap_or_default();
                let vanished: HashSet<ObjectRef<DynamicObject>> = state
                    .live
                    .holders
                    .iter()
                    .filter(|(key, _)| !listed.holders.contains_key(*key))
                    .filter_map(|((namespace, _), holder)| match holder {
                        Holder::Parent { name, .. } => Some(self.parent_ref(name, namespace)),
                        Holder::Other(_) => None,
                    })
                    .collect();
                let count = listed.holders.len();
                state.live = listed;
                drop(state);
                tracing::debug!(kind = %cache.kind.display_name(), children = count, vanished = vanished.len(), "child cache (re)listed");
                if !cache.synced.swap(true, Ordering::AcqRel) {
                    tracing::debug!(kind = %cache.kind.display_name(), "child cache synced");
                    self.synced_changed.notify_waiters();
                }
                vanished.into_iter().collect()
            }
        }
    }

    fn parent_of(&self, child: &DynamicObject) -> Option<ObjectRef<DynamicObject>> {
        match Holder::of(&child.metadata, &self.parent) {
            Holder::Parent { name, .. } => Some(self.parent_ref(
                &name,
                child.metadata.namespace.as_deref().unwrap_or_default(),
            )),
            Holder::Other(_) => None,
        }
    }

    /// Children live in their parent's namespace.
    fn parent_ref(&self, name: &str, namespace: &str) -> ObjectRef<DynamicObject> {
        ObjectRef::new_with(name, self.parent.clone()).within(namespace)
    }

    /// Watches one child kind until aborted, keeping its cache current and sending the parents
    /// of touched children to the controller.
    async fn watch(self: Arc<Self>, cache: Arc<ChildCache>) {
        let api = self.scope.api(&cache.kind.resource);
        let config = watcher::Config::default().labels(&self.scope.owned_selector());
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    for parent in self.handle(&cache, event) {
                        // The receiver only goes away when the controller shuts down.
                        let _ = self.triggers.unbounded_send(parent);
                    }
                }
                Err(error) => {
                    tracing::warn!(kind = %cache.kind.display_name(), %error, "child watch failed; retrying with backoff")
                }
            }
        }
    }

    /// Keeps the kind's foreign-name index current until aborted.
    async fn watch_foreign(self: Arc<Self>, cache: Arc<ChildCache>) {
        let api = self.scope.api(&cache.kind.resource);
        let freed = |namespace: &str, name: &str| self.name_freed(&cache.kind, namespace, name);
        cache
            .foreign
            .watch(
                api,
                &self.scope.foreign_selector(),
                &self.parent,
                &cache.kind.display_name(),
                freed,
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::api::GroupVersionKind;

    use super::*;

    fn parent_resource() -> ApiResource {
        ApiResource::from_gvk(&GroupVersionKind::gvk(
            "podtato.example.com",
            "v1alpha1",
            "PotatoHead",
        ))
    }

    fn deployment_kind() -> Arc<ResolvedKind> {
        let gvk = GroupVersionKind::gvk("apps", "v1", "Deployment");
        Arc::new(ResolvedKind {
            resource: ApiResource::from_gvk(&gvk),
            gvk,
            namespaced: true,
        })
    }

    /// Caches with one Deployment cache, fed by hand (no watch task).
    fn children() -> (Arc<OwnedChildren>, Arc<ChildCache>) {
        let (triggers, _) = futures::channel::mpsc::unbounded();
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap()))
                .unwrap();
        let scope = WatchScope {
            client,
            namespace: None,
            managed_by: "test".into(),
        };
        let children = OwnedChildren::new(parent_resource(), scope, triggers);
        let cache = Arc::new(ChildCache::new(deployment_kind()));
        children.caches.write().unwrap().push(Arc::clone(&cache));
        (children, cache)
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
                api_version: parent_resource().api_version,
                kind: parent_resource().kind,
                name: format!("parent-{uid}"),
                uid: uid.into(),
                controller: Some(controller),
                block_owner_deletion: None,
            }]);
        }
        object
    }

    fn names(children: &OwnedChildren, uid: &str) -> Vec<String> {
        children
            .owned_by(uid, "ns", &[deployment_kind()])
            .iter()
            .map(|c| c.object.metadata.name.clone().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn children_are_found_by_their_controller_uid_only() {
        let (children, cache) = children();
        let triggered = children.handle(&cache, Event::Apply(child("a", Some("p1"), true)));
        assert_eq!(triggered[0].name, "parent-p1");
        assert_eq!(triggered[0].namespace.as_deref(), Some("ns"));
        children.handle(&cache, Event::Apply(child("b", Some("p2"), true)));
        assert!(
            children
                .handle(&cache, Event::Apply(child("c", Some("p1"), false)))
                .is_empty()
        );
        children.handle(&cache, Event::Apply(child("d", None, false)));
        // Labelled and pointing at p1, but in another namespace: not p1's child.
        let mut elsewhere = child("e", Some("p1"), true);
        elsewhere.metadata.namespace = Some("other".into());
        children.handle(&cache, Event::Apply(elsewhere));
        assert_eq!(names(&children, "p1"), ["a"]);
        assert_eq!(names(&children, "p2"), ["b"]);
    }

    #[tokio::test]
    async fn a_child_whose_controller_changes_moves_between_parents() {
        let (children, cache) = children();
        children.handle(&cache, Event::Apply(child("a", Some("p1"), true)));
        children.handle(&cache, Event::Apply(child("a", Some("p2"), true)));
        assert!(names(&children, "p1").is_empty());
        assert_eq!(names(&children, "p2"), ["a"]);
        children.handle(&cache, Event::Delete(child("a", Some("p2"), true)));
        assert!(names(&children, "p2").is_empty());
    }

    #[tokio::test]
    async fn a_relist_replaces_the_index_only_when_it_is_complete() {
        let (children, cache) = children();
        assert!(!children.synced(&[deployment_kind()]));
        children.handle(&cache, Event::Init);
        children.handle(&cache, Event::InitApply(child("a", Some("p1"), true)));
        children.handle(&cache, Event::InitDone);
        assert!(children.synced(&[deployment_kind()]));
        assert_eq!(names(&children, "p1"), ["a"]);

        // A relist in which "a" is gone: until InitDone the old, complete index is served.
        children.handle(&cache, Event::Init);
        children.handle(&cache, Event::InitApply(child("b", Some("p1"), true)));
        assert_eq!(names(&children, "p1"), ["a"]);
        let triggered = children.handle(&cache, Event::InitDone);
        assert_eq!(names(&children, "p1"), ["b"]);
        // The parent of the vanished child is told.
        assert_eq!(
            triggered
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["parent-p1"]
        );
    }

    #[tokio::test]
    async fn a_write_is_in_flight_until_the_childs_next_event() {
        let (children, cache) = children();
        let key = ("ns".to_string(), "a".to_string());
        let kind = deployment_kind();
        children.wrote(&kind, key.clone(), Some("5".into()), "d1".into());
        assert!(children.write_in_flight(&kind, &key, Some("5"), "d1"));
        assert!(
            !children.write_in_flight(&kind, &key, Some("5"), "d2"),
            "another desired state"
        );
        assert!(
            !children.write_in_flight(&kind, &key, Some("7"), "d1"),
            "the cache moved on"
        );
        children.handle(&cache, Event::Apply(child("a", Some("p1"), true)));
        assert!(!children.write_in_flight(&kind, &key, Some("5"), "d1"));

        // A create (nothing cached) until the object shows up, or a relist.
        children.wrote(&kind, key.clone(), None, "d1".into());
        assert!(children.write_in_flight(&kind, &key, None, "d1"));
        children.handle(&cache, Event::InitDone);
        assert!(!children.write_in_flight(&kind, &key, None, "d1"));
    }

    #[tokio::test]
    async fn kinds_not_asked_for_are_not_returned_and_can_be_dropped() {
        let (children, cache) = children();
        children.handle(&cache, Event::Apply(child("a", Some("p1"), true)));
        assert!(children.owned_by("p1", "ns", &[]).is_empty());
        children.retain_kinds(&[]);
        assert!(
            children
                .owned_by("p1", "ns", &[deployment_kind()])
                .is_empty()
        );
        assert!(!children.synced(&[deployment_kind()]));
    }

    #[tokio::test]
    async fn listed_children_get_the_kind_list_items_lack_and_lose_managed_fields() {
        let (children, cache) = children();
        // `child` makes objects without apiVersion/kind, as list responses carry them.
        children.handle(&cache, Event::Init);
        let mut listed = child("a", Some("p1"), true);
        listed.metadata.managed_fields = Some(vec![Default::default()]);
        children.handle(&cache, Event::InitApply(listed));
        children.handle(&cache, Event::InitDone);
        let cached = children.owned_by("p1", "ns", &[deployment_kind()]);
        assert_eq!(cached[0].object.metadata.managed_fields, None);
        let types = cached[0]
            .object
            .types
            .clone()
            .expect("apiVersion and kind filled in");
        assert_eq!(
            (types.api_version.as_str(), types.kind.as_str()),
            ("apps/v1", "Deployment")
        );
    }
}
