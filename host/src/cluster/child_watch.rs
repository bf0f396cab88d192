//! The watches behind the child caches: per child kind, one watch of the host's children (label
//! selector `managed-by=<field manager>`, full objects) and one metadata-only watch of the kind's
//! other objects. Kinds are added and removed at run time when a new guest declares different
//! child kinds.
//!
//! Only the host's labelled children are held in full, which keeps unrelated objects' contents out
//! of memory. A child whose label someone removed leaves the cache; its parent's next reconcile
//! applies it again, restoring the label.
//!
//! # Guarantees
//! - Every change to a child (and every child that vanished during a relist) is sent to the
//!   controller of its controlling parent's kind as a reconcile request for that parent.
//! - A deleted object frees its name: the parents waiting for it are reconciled.
//! - Items of a list response are normalised to look like watch events (see [`normalize`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};
use tokio::sync::Notify;

use super::child_cache::{CachedChild, ChildCaches, ChildIndex, KindCache};
use super::kinds::ResolvedKind;
use super::name_waiters::NameWaiters;
use super::ownership::{Holder, object_name};
use super::relist::{Applied, map_event, wait_until};
use super::watch_scope::WatchScope;

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

impl ChildCaches {
    /// Empty caches serving no parent kind yet: [`Self::serve_parent_kind`] adds one, and
    /// [`Self::watch_kinds`] starts the watches.
    pub fn new(scope: WatchScope) -> Arc<Self> {
        Arc::new(Self {
            scope,
            parents: Default::default(),
            caches: Default::default(),
            users: Default::default(),
            synced_changed: Notify::new(),
            waiters: NameWaiters::default(),
        })
    }

    /// Adds `kinds` to what `user` (a parent kind's controller) needs, starts watching every one
    /// not watched yet, and waits until all of `kinds` have listed completely. A kind already
    /// watched for another user starts no second watch.
    ///
    /// # Errors
    /// The kinds that have not synced when `timeout` passes (their watches keep running).
    pub async fn watch_kinds(
        self: &Arc<Self>,
        user: &str,
        kinds: &[Arc<ResolvedKind>],
        timeout: Duration,
    ) -> Result<(), String> {
        {
            let mut users = self.users.lock().expect("kind users lock poisoned");
            let needed = users.entry(user.to_string()).or_default();
            for kind in kinds {
                if !needed.contains(&kind.gvk) {
                    needed.push(kind.gvk.clone());
                }
            }
            let mut caches = self.caches.write().expect("cache list lock poisoned");
            for kind in kinds {
                if caches.iter().any(|c| c.kind.gvk == kind.gvk) {
                    continue;
                }
                let cache = Arc::new(KindCache::new(Arc::clone(kind)));
                let children = tokio::spawn(Arc::clone(self).watch(Arc::clone(&cache)));
                let unmanaged = tokio::spawn(Arc::clone(self).watch_unmanaged(Arc::clone(&cache)));
                *cache.watch_tasks.lock().expect("watch task lock poisoned") =
                    vec![children.abort_handle(), unmanaged.abort_handle()];
                caches.push(cache);
            }
        }
        if wait_until(&self.synced_changed, || self.synced(kinds), timeout).await {
            return Ok(());
        }
        let pending: Vec<String> = self
            .caches()
            .iter()
            .filter(|c| kinds.iter().any(|k| k.gvk == c.kind.gvk) && !c.children.is_synced())
            .map(|c| c.kind.display_name())
            .collect();
        Err(pending.join(", "))
    }

    /// Makes `kinds` exactly what `user` needs; stops watching, and forgets, every kind no user
    /// needs any more.
    pub fn retain_kinds(&self, user: &str, kinds: &[Arc<ResolvedKind>]) {
        let mut users = self.users.lock().expect("kind users lock poisoned");
        if kinds.is_empty() {
            users.remove(user);
        } else {
            users.insert(
                user.to_string(),
                kinds.iter().map(|k| k.gvk.clone()).collect(),
            );
        }
        let mut caches = self.caches.write().expect("cache list lock poisoned");
        caches.retain(|cache| {
            let keep = users.values().flatten().any(|gvk| *gvk == cache.kind.gvk);
            if !keep {
                for task in cache.watch_tasks.lock().expect("watch task lock poisoned").drain(..) {
                    task.abort();
                }
                tracing::info!(kind = %cache.kind.display_name(), "stopped watching a child kind no guest declares any more");
            }
            keep
        });
    }

    /// Applies one watch event to a kind's cache and returns the parents to reconcile because
    /// of it.
    pub(super) fn handle(
        &self,
        cache: &KindCache,
        event: Event<DynamicObject>,
    ) -> Vec<ObjectRef<DynamicObject>> {
        // A complete relist, or an event of a watch resumed, shows the kind served again. (A
        // resumed watch missed nothing: it goes on from the version it had.)
        let serving = !matches!(event, Event::Init | Event::InitApply(_));
        let parents = self.index(cache, event);
        if serving && cache.watch_failing.swap(false, Ordering::AcqRel) {
            tracing::info!(kind = %cache.kind.display_name(), "child watch works again; its guests decide again");
        }
        parents
    }

    /// The kind is not served (its watch failed with 404): until its watch works again, its
    /// cache is not decided on.
    pub(super) fn watch_failed(&self, cache: &KindCache) {
        cache.watch_failing.store(true, Ordering::Release);
    }

    fn index(
        &self,
        cache: &KindCache,
        event: Event<DynamicObject>,
    ) -> Vec<ObjectRef<DynamicObject>> {
        let event = event.modify(|object| normalize(object, &cache.kind.resource));
        let (touched, deleted) = match &event {
            Event::Apply(object) | Event::InitApply(object) => (self.parent_of(object), None),
            Event::Delete(object) => (self.parent_of(object), Some(object_name(&object.metadata))),
            Event::Init | Event::InitDone => (None, None),
        };
        let seen = match &event {
            Event::Apply(object) | Event::Delete(object) | Event::InitApply(object) => {
                Some(object_name(&object.metadata))
            }
            Event::Init | Event::InitDone => None,
        };
        if matches!(event, Event::Init) {
            tracing::debug!(kind = %cache.kind.display_name(), "child cache listing");
        }
        let applied = cache
            .children
            .handle(map_event(event, |object| CachedChild {
                name: object_name(&object.metadata),
                holder: Holder::of(&object.metadata),
                object: Arc::new(object),
            }));
        // After the index: a reconcile between the two sees the new version, which no pending
        // write claims, so it judges the child on what it sees.
        match &seen {
            Some(name) => cache.pending.seen(name),
            None if matches!(applied, Applied::Swapped { .. }) => cache.pending.clear(),
            None => {}
        }
        if let Some((namespace, name)) = deleted {
            self.name_freed(&cache.kind, &namespace, &name);
        }
        match applied {
            Applied::Changed => touched.into_iter().collect(),
            Applied::Swapped { previous, first } => self.relisted(cache, &previous, first),
        }
    }

    /// After a (re)list: the parents of children that vanished while the watch was down must
    /// hear about it.
    fn relisted(
        &self,
        cache: &KindCache,
        previous: &ChildIndex,
        first: bool,
    ) -> Vec<ObjectRef<DynamicObject>> {
        let (vanished, count) = cache.children.read_live(|live| {
            let vanished: HashSet<ObjectRef<DynamicObject>> = previous
                .holders
                .iter()
                .filter(|(key, _)| !live.holders.contains_key(*key))
                .filter_map(|((namespace, _), holder)| self.parent_ref(holder, namespace))
                .collect();
            (vanished, live.holders.len())
        });
        tracing::debug!(kind = %cache.kind.display_name(), children = count, vanished = vanished.len(), "child cache (re)listed");
        if first {
            tracing::debug!(kind = %cache.kind.display_name(), "child cache synced");
            self.synced_changed.notify_waiters();
        }
        vanished.into_iter().collect()
    }

    /// Watches one child kind until aborted, keeping its cache current and sending the parents
    /// of touched children to the controller.
    async fn watch(self: Arc<Self>, cache: Arc<KindCache>) {
        let api = self.scope.api(&cache.kind);
        let config = watcher::Config::default().labels(&self.scope.owned_selector());
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => {
                    for parent in self.handle(&cache, event) {
                        self.reconcile_parent(parent);
                    }
                }
                Err(error) if not_served(&error) => {
                    self.watch_failed(&cache);
                    tracing::warn!(kind = %cache.kind.display_name(), %error, "child watch failed: the kind is not served (was its CustomResourceDefinition deleted?); retrying with backoff; its guests are not ready and decide nothing until it lists again")
                }
                // Resumed by the watcher from where it was (nothing missed), so the cache
                // stays usable; only a relist (410 Gone) replaces it.
                Err(error) => {
                    tracing::warn!(kind = %cache.kind.display_name(), %error, "child watch failed; retrying with backoff")
                }
            }
        }
    }

    /// Keeps the kind's unmanaged-name index current until aborted.
    async fn watch_unmanaged(self: Arc<Self>, cache: Arc<KindCache>) {
        let api = self.scope.api(&cache.kind);
        let freed = |namespace: &str, name: &str| self.name_freed(&cache.kind, namespace, name);
        cache
            .unmanaged
            .watch(
                api,
                &self.scope.unmanaged_selector(),
                &cache.kind.display_name(),
                freed,
            )
            .await;
    }

    /// A kind cache fed by hand (no watch), listed and empty: for tests of what reads the caches.
    #[cfg(test)]
    pub(crate) fn add_listed_kind(&self, kind: Arc<ResolvedKind>) {
        let cache = Arc::new(KindCache::new(kind));
        self.handle(&cache, Event::Init);
        self.handle(&cache, Event::InitDone);
        cache.unmanaged.mark_listed();
        self.caches.write().unwrap().push(cache);
    }

    /// Feeds one watch event to the cache of `kind` (see [`Self::add_listed_kind`]).
    #[cfg(test)]
    pub(crate) fn feed(
        &self,
        kind: &ResolvedKind,
        event: Event<DynamicObject>,
    ) -> Vec<ObjectRef<DynamicObject>> {
        let cache = self.cache_of(kind).expect("the kind was added");
        self.handle(&cache, event)
    }
}

/// Whether a watch error says the kind is not served at all (404: its CustomResourceDefinition
/// deleted), rather than that the API server could not be reached.
fn not_served(error: &watcher::Error) -> bool {
    let status = match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status))
        | watcher::Error::WatchError(status) => status,
        _ => return false,
    };
    status.code == 404
}

#[cfg(test)]
mod tests;
