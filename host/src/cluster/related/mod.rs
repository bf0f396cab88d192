//! Related objects: what guests read besides their parent and children (contract 0.2
//! `requirements`). One watch and one cache per related kind for the whole process, shared by
//! every guest that reads it, as child kinds are; and the reverse index (`readers.rs`) from each
//! object back to the parents that read it, so a change reconciles exactly those.
//!
//! A related kind is watched whole within the host's namespace scope (`--namespace`, or every
//! namespace; a cluster-scoped kind cluster-wide): a guest's requirements name objects or select
//! them by label, per parent, which no single server-side filter covers. Its objects are held
//! in full (minus `managedFields`), since the guest is given them as they are. So a kind is
//! watched only once a parent asks for it ([`RelatedCaches::start_watching`]), not because a
//! guest declares it: a host whose PotatoHeads name no ConfigMap holds none.
//!
//! # Guarantees
//! - [`RelatedCaches::select`] answers `None` until the kind's first list has completed, and a
//!   relist replaces the cache whole: a guest is never given part of what it asked for.
//! - Every change of a related object, and every object that changed while a watch was down,
//!   reconciles the parents that read it, and no other.
//! - Objects are never logged (a related kind may be Secrets).

mod readers;
pub mod selector;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use kube::api::{DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use readers::{Change, Readers};
pub use readers::{Reading, Selection};

use super::child_cache::ChildCaches;
use super::kinds::ResolvedKind;
use super::relist::{Applied, Index, RelistingIndex};
use super::watch_scope::WatchScope;

/// The caches of every related kind the host's guests read, and who reads what.
pub struct RelatedCaches {
    scope: WatchScope,
    /// Where a parent's reconcile is requested: the controllers of the parent kinds.
    children: Arc<ChildCaches>,
    caches: RwLock<Vec<Arc<RelatedKindCache>>>,
    /// Which related kinds each user (a parent kind's controller) needs.
    users: Mutex<HashMap<String, Vec<GroupVersionKind>>>,
    synced_changed: Notify,
    readers: Mutex<Readers>,
}

struct RelatedKindCache {
    kind: Arc<ResolvedKind>,
    /// `group/version/Kind`: the readers' key.
    key: Arc<str>,
    objects: RelistingIndex<Objects>,
    watch: Mutex<Option<AbortHandle>>,
}

/// The objects of one related kind, by namespace (empty for a cluster-scoped kind) and name:
/// sorted, so a selection comes out in the order the contract promises.
#[derive(Default)]
struct Objects(BTreeMap<(String, String), Arc<DynamicObject>>);

impl Index for Objects {
    type Entry = Arc<DynamicObject>;

    fn upsert(&mut self, object: Arc<DynamicObject>) {
        self.0.insert(key_of(&object), object);
    }

    fn remove(&mut self, object: &Arc<DynamicObject>) {
        self.0.remove(&key_of(object));
    }
}

fn key_of(object: &DynamicObject) -> (String, String) {
    (
        object.metadata.namespace.clone().unwrap_or_default(),
        object.metadata.name.clone().unwrap_or_default(),
    )
}

/// `group/version/Kind`, how the readers name a kind.
pub fn kind_key(gvk: &GroupVersionKind) -> String {
    format!("{}/{}/{}", gvk.group, gvk.version, gvk.kind)
}

impl RelatedCaches {
    /// Empty caches; reconcile requests go to the controllers `children` routes to.
    pub fn new(scope: WatchScope, children: Arc<ChildCaches>) -> Arc<Self> {
        Arc::new(Self {
            scope,
            children,
            caches: RwLock::default(),
            users: Mutex::default(),
            synced_changed: Notify::new(),
            readers: Mutex::default(),
        })
    }

    /// Starts watching each of `kinds` that `user` may read (see [`Self::retain_kinds`]) and
    /// that is not watched yet; [`Self::synced`] tells when they have listed.
    pub fn start_watching(self: &Arc<Self>, user: &str, kinds: &[Arc<ResolvedKind>]) {
        let users = self.users.lock().expect("related users lock poisoned");
        let allowed = users.get(user).map(Vec::as_slice).unwrap_or_default();
        let mut caches = self.caches.write().expect("related caches lock poisoned");
        for kind in kinds {
            if !allowed.contains(&kind.gvk) || caches.iter().any(|c| c.kind.gvk == kind.gvk) {
                continue;
            }
            tracing::info!(kind = %kind.display_name(), "watching a related kind: a parent reads it");
            let cache = Arc::new(RelatedKindCache {
                kind: Arc::clone(kind),
                key: Arc::from(kind_key(&kind.gvk)),
                objects: RelistingIndex::default(),
                watch: Mutex::default(),
            });
            let task = tokio::spawn(Arc::clone(self).watch(Arc::clone(&cache)));
            *cache.watch.lock().expect("watch lock poisoned") = Some(task.abort_handle());
            caches.push(cache);
        }
    }

    /// Makes `kinds` exactly what `user` may read (its guest's declared related kinds; none
    /// starts watching before a parent asks); stops watching, and forgets, every kind no user
    /// may read any more.
    pub fn retain_kinds(&self, user: &str, kinds: &[Arc<ResolvedKind>]) {
        let mut users = self.users.lock().expect("related users lock poisoned");
        if kinds.is_empty() {
            users.remove(user);
        } else {
            users.insert(
                user.to_owned(),
                kinds.iter().map(|k| k.gvk.clone()).collect(),
            );
        }
        let mut caches = self.caches.write().expect("related caches lock poisoned");
        caches.retain(|cache| {
            let keep = users.values().flatten().any(|gvk| *gvk == cache.kind.gvk);
            if !keep {
                if let Some(task) = cache.watch.lock().expect("watch lock poisoned").take() {
                    task.abort();
                }
                tracing::info!(kind = %cache.kind.display_name(), "stopped watching a related kind no guest reads any more");
            }
            keep
        });
    }

    /// True once every kind in `kinds` is watched and has listed completely.
    pub fn synced(&self, kinds: &[Arc<ResolvedKind>]) -> bool {
        let caches = self.caches.read().expect("related caches lock poisoned");
        kinds.iter().all(|kind| {
            caches
                .iter()
                .any(|c| c.kind.gvk == kind.gvk && c.objects.is_synced())
        })
    }

    /// The cached objects `reading` selects, sorted by namespace and name; `None` when its kind
    /// is not watched or has not listed yet.
    pub fn select(&self, reading: &Reading) -> Option<Vec<Arc<DynamicObject>>> {
        let cache = self
            .caches
            .read()
            .expect("related caches lock poisoned")
            .iter()
            .find(|c| c.key == reading.kind)
            .cloned()?;
        cache.objects.read(|objects| {
            let in_scope = |namespace: &str| {
                reading
                    .namespace
                    .as_deref()
                    .is_none_or(|wanted| wanted == namespace)
            };
            match &reading.selection {
                Selection::Names(names) => {
                    let namespace = reading.namespace.clone().unwrap_or_default();
                    let mut found: Vec<Arc<DynamicObject>> = names
                        .iter()
                        .filter_map(|name| objects.0.get(&(namespace.clone(), name.clone())))
                        .cloned()
                        .collect();
                    found.sort_by_key(|object| key_of(object));
                    found.dedup_by_key(|object| key_of(object));
                    found
                }
                Selection::Labels(selector) => {
                    use kube::core::SelectorExt as _;
                    let no_labels = BTreeMap::new();
                    objects
                        .0
                        .iter()
                        .filter(|((namespace, _), _)| in_scope(namespace))
                        .filter(|(_, object)| {
                            selector.matches(object.metadata.labels.as_ref().unwrap_or(&no_labels))
                        })
                        .map(|(_, object)| Arc::clone(object))
                        .collect()
                }
            }
        })
    }

    /// Records what the parent `uid` reads (replacing what it read before): a change of any of
    /// it reconciles `parent`.
    pub fn record_reader(&self, uid: &str, parent: ObjectRef<DynamicObject>, readings: &[Reading]) {
        self.readers
            .lock()
            .expect("readers lock poisoned")
            .record(uid, parent, readings);
    }

    /// Forgets what the parent `uid` reads: it is gone.
    pub fn forget_reader(&self, uid: &str) {
        self.readers
            .lock()
            .expect("readers lock poisoned")
            .forget(uid);
    }

    /// Forgets every parent of `resource`'s kind: its controller stopped (a restarted one
    /// records them again as it reconciles them).
    pub fn forget_readers_of(&self, resource: &kube::api::ApiResource) {
        self.readers
            .lock()
            .expect("readers lock poisoned")
            .forget_kind(resource);
    }

    /// Parents reading something, and (parent, name or selector) pairs recorded.
    pub fn readers(&self) -> (usize, usize) {
        self.readers.lock().expect("readers lock poisoned").size()
    }

    /// Applies one watch event and reconciles the parents that read what changed.
    fn handle(&self, cache: &RelatedKindCache, event: Event<DynamicObject>) {
        let event = event.modify(|object| normalize(object, &cache.kind));
        let mut changed: Vec<(Option<Arc<DynamicObject>>, Option<Arc<DynamicObject>>)> = Vec::new();
        let event = super::relist::map_event(event, Arc::new);
        match &event {
            Event::Apply(object) | Event::Delete(object) => {
                let before = cache
                    .objects
                    .read_live(|objects| objects.0.get(&key_of(object)).cloned());
                let after = matches!(event, Event::Apply(_)).then(|| Arc::clone(object));
                changed.push((before, after));
            }
            Event::Init | Event::InitApply(_) | Event::InitDone => {}
        }
        if let Applied::Swapped { previous, first } = cache.objects.handle(event) {
            changed.extend(cache.objects.read_live(|live| relisted(&previous, live)));
            if first {
                self.synced_changed.notify_waiters();
            }
        }
        if changed.is_empty() {
            return;
        }
        let parents: Vec<ObjectRef<DynamicObject>> = {
            let readers = self.readers.lock().expect("readers lock poisoned");
            changed
                .iter()
                .flat_map(|(before, after)| {
                    let object = after.as_ref().or(before.as_ref()).expect("one of the two");
                    let (namespace, name) = key_of(object);
                    let labels = |o: &Option<Arc<DynamicObject>>| {
                        o.as_ref()
                            .map(|o| o.metadata.labels.clone().unwrap_or_default())
                    };
                    let (before_labels, after_labels) = (labels(before), labels(after));
                    readers.readers_of(&Change {
                        kind: &cache.key,
                        namespace: &namespace,
                        name: &name,
                        labels_before: before_labels.as_ref(),
                        labels_after: after_labels.as_ref(),
                    })
                })
                .collect()
        };
        for parent in parents {
            self.children.reconcile_parent(parent);
        }
    }

    /// Watches one related kind until aborted.
    async fn watch(self: Arc<Self>, cache: Arc<RelatedKindCache>) {
        let api = self.scope.api(&cache.kind);
        let mut events = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => self.handle(&cache, event),
                // Resumed by the watcher from where it was, or relisted (410 Gone), which
                // replaces the cache whole and reconciles the readers of what changed.
                Err(error) => {
                    tracing::warn!(kind = %cache.kind.display_name(), %error, "related-object watch failed; retrying with backoff")
                }
            }
        }
    }

    /// A kind cache fed by hand (no watch), listed with `objects`: for tests of what reads it.
    #[cfg(test)]
    pub(crate) fn add_listed_kind(&self, kind: Arc<ResolvedKind>, objects: Vec<DynamicObject>) {
        let cache = Arc::new(RelatedKindCache {
            key: Arc::from(kind_key(&kind.gvk)),
            kind,
            objects: RelistingIndex::default(),
            watch: Mutex::default(),
        });
        self.handle(&cache, Event::Init);
        for object in objects {
            self.handle(&cache, Event::InitApply(object));
        }
        self.handle(&cache, Event::InitDone);
        self.caches.write().unwrap().push(cache);
    }
}

/// Objects that differ between a replaced index and its successor: (before, after) pairs.
fn relisted(
    previous: &Objects,
    live: &Objects,
) -> Vec<(Option<Arc<DynamicObject>>, Option<Arc<DynamicObject>>)> {
    let version = |o: &DynamicObject| o.metadata.resource_version.clone();
    let mut changed: Vec<_> = previous
        .0
        .iter()
        .filter(|(key, old)| {
            live.0
                .get(*key)
                .is_none_or(|new| version(new) != version(old))
        })
        .map(|(key, old)| (Some(Arc::clone(old)), live.0.get(key).cloned()))
        .collect();
    changed.extend(
        live.0
            .iter()
            .filter(|(key, _)| !previous.0.contains_key(*key))
            .map(|(_, new)| (None, Some(Arc::clone(new)))),
    );
    changed
}

/// As the child caches hold objects: with their kind, without `managedFields`.
fn normalize(object: &mut DynamicObject, kind: &ResolvedKind) {
    object.metadata.managed_fields = None;
    if object.types.is_none() {
        object.types = Some(kube::api::TypeMeta {
            api_version: kind.resource.api_version.clone(),
            kind: kind.resource.kind.clone(),
        });
    }
}
