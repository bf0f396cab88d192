//! What the host remembers about each parent between reconciles — consecutive failures (for
//! backoff), the generation last reconciled (for `queue_depth`), the status it last wrote and its
//! recent child writes (to tell a guest whose output never settles) — keyed by the parent's UID
//! and forgotten when the parent goes.
//!
//! # Guarantees
//! - Bounded by the parents that exist: an entry is removed when the parent watch reports the
//!   parent deleted, and every (re)list drops entries of parents no longer listed (deletions
//!   missed while the watch was down). Nothing is recorded for a parent the watch no longer
//!   holds, so a reconcile that ends after its parent was deleted leaves nothing behind.
//! - Keyed by UID, not name: a new parent with a deleted one's name starts afresh (no inherited
//!   backoff, no stale status).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use crate::cluster::ResolvedKind;
use crate::cluster::related::Reading;

/// A child written with this many different contents within [`UNSETTLED_WINDOW`], at one parent
/// generation, means the guest's output does not settle (a timestamp or a random value in it).
pub const UNSETTLED_DIGESTS: usize = 5;
/// How far back writes count towards [`UNSETTLED_DIGESTS`].
pub const UNSETTLED_WINDOW: Duration = Duration::from_secs(60);
/// Most recent writes remembered per parent.
const MAX_RECENT_WRITES: usize = 64;

/// One child write: which child (`Kind name`), with which desired-state digest.
struct RecentWrite {
    at: Instant,
    generation: i64,
    child: String,
    digest: String,
}

/// A parent's requirements (contract 0.2), kept for the generation and the guest (file and
/// configuration) that gave them: the next reconcile of that generation reads the same objects
/// without asking the guest again.
pub struct KeptRequirements {
    pub generation: i64,
    /// [`crate::sandbox::LoadedGuest::identity`] of the guest that gave them.
    pub guest: String,
    /// Each requirement's key, what it reads, and its kind.
    pub readings: Vec<(String, Reading, Arc<ResolvedKind>)>,
}

#[derive(Default)]
struct ParentState {
    /// Consecutive failed reconciles.
    failures: u32,
    /// The generation last reconciled, whatever the result.
    reconciled_generation: Option<i64>,
    /// The status this process last wrote, until the parent watch shows it (see `report.rs`).
    written_status: Option<Value>,
    /// Child writes of the last [`UNSETTLED_WINDOW`], newest last.
    recent_writes: VecDeque<RecentWrite>,
    /// What the guest reads for the parent, if it reads anything.
    requirements: Option<Arc<KeptRequirements>>,
}

impl ParentState {
    fn is_empty(&self) -> bool {
        self.failures == 0
            && self.reconciled_generation.is_none()
            && self.written_status.is_none()
            && self.recent_writes.is_empty()
            && self.requirements.is_none()
    }
}

/// Per-parent state of one controller, checked against its parent cache.
pub struct ParentStates {
    parents: Store<DynamicObject>,
    resource: ApiResource,
    by_uid: Mutex<HashMap<String, ParentState>>,
    /// Called with the UID of each parent forgotten (what else keeps something per parent, the
    /// reverse index of related objects, forgets it too).
    forgotten: Option<Box<dyn Fn(&str) + Send + Sync>>,
}

impl ParentStates {
    /// State for the parents held in `parents` (the controller's cache of `resource`).
    pub fn new(parents: Store<DynamicObject>, resource: ApiResource) -> Self {
        Self {
            parents,
            resource,
            by_uid: Mutex::new(HashMap::new()),
            forgotten: None,
        }
    }

    /// Calls `forgotten` with the UID of every parent deleted (or no longer listed).
    pub fn on_forget(mut self, forgotten: Box<dyn Fn(&str) + Send + Sync>) -> Self {
        self.forgotten = Some(forgotten);
        self
    }

    fn forgot(&self, uid: &str) {
        if let Some(forgotten) = &self.forgotten {
            forgotten(uid);
        }
    }

    /// Follows the parent watch: forgets a deleted parent, and after a (re)list every parent no
    /// longer listed. Call it on each event, after the cache has applied it.
    pub fn observe(&self, event: &watcher::Event<DynamicObject>) {
        match event {
            watcher::Event::Delete(parent) => {
                if let Some(uid) = parent.uid() {
                    self.lock().remove(&uid);
                    self.forgot(&uid);
                }
            }
            watcher::Event::InitDone => {
                let listed = self.parents.state();
                let present: HashSet<&str> = listed
                    .iter()
                    .filter_map(|p| p.meta().uid.as_deref())
                    .collect();
                let mut gone = Vec::new();
                self.lock().retain(|uid, _| {
                    let keep = present.contains(uid.as_str());
                    if !keep {
                        gone.push(uid.clone());
                    }
                    keep
                });
                for uid in gone {
                    self.forgot(&uid);
                }
            }
            watcher::Event::Apply(_) | watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    /// The record of `parent`, for the steps of one reconcile of it.
    pub fn of<'a>(&'a self, parent: &'a DynamicObject) -> ParentRecord<'a> {
        ParentRecord {
            states: self,
            parent,
        }
    }

    /// Parents whose generation differs from the one last reconciled (the controller's backlog).
    pub fn waiting(&self) -> i64 {
        let parents = self.parents.state();
        let states = self.lock();
        let waiting = parents.iter().filter(|parent| {
            let reconciled = parent
                .meta()
                .uid
                .as_deref()
                .and_then(|uid| states.get(uid))
                .and_then(|state| state.reconciled_generation);
            reconciled != Some(parent.metadata.generation.unwrap_or_default())
        });
        i64::try_from(waiting.count()).unwrap_or(i64::MAX)
    }

    /// Parents whose last reconcile failed (retried with backoff).
    pub fn failing(&self) -> usize {
        self.lock()
            .values()
            .filter(|state| state.failures > 0)
            .count()
    }

    /// Parents with state kept.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no parent has state kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `change` on the state of `parent` if the cache still holds that very parent (same
    /// UID). The presence check and the change happen under one lock, and the watch applies a
    /// deletion to the cache before [`observe`](Self::observe) takes that lock: so either the
    /// change sees the parent gone, or the deletion removes what the change wrote.
    fn update<T>(
        &self,
        parent: &DynamicObject,
        change: impl FnOnce(&mut ParentState) -> T,
    ) -> Option<T> {
        let uid = parent.uid()?;
        let mut states = self.lock();
        // A cluster-scoped parent's key has no namespace (not an empty one).
        let key = ObjectRef::from_obj_with(parent, self.resource.clone());
        let present = self
            .parents
            .get(&key)
            .is_some_and(|cached| cached.uid().as_deref() == Some(uid.as_str()));
        if !present {
            states.remove(&uid);
            return None;
        }
        let state = states.entry(uid.clone()).or_default();
        let result = change(state);
        if state.is_empty() {
            states.remove(&uid);
        }
        Some(result)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, ParentState>> {
        // A panic elsewhere (contained per reconcile) must not disable every later reconcile.
        self.by_uid
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One parent's record, handed to the steps of a reconcile that read or change it (the
/// report, the settle check, the backoff). Every change goes through [`ParentStates::update`]'s
/// presence check: nothing is kept for a parent the cache no longer holds.
pub struct ParentRecord<'a> {
    states: &'a ParentStates,
    parent: &'a DynamicObject,
}

impl<'a> ParentRecord<'a> {
    /// The parent this record is of.
    pub fn parent(&self) -> &'a DynamicObject {
        self.parent
    }

    /// Counts one more consecutive failure of the parent; returns the count (1 for a parent the
    /// cache no longer holds, whose state is not kept).
    pub fn record_failure(&self) -> u32 {
        self.states
            .update(self.parent, |state| {
                state.failures = state.failures.saturating_add(1);
                state.failures
            })
            .unwrap_or(1)
    }

    /// A success: the failure count starts again.
    pub fn clear_failures(&self) {
        self.states.update(self.parent, |state| state.failures = 0);
    }

    /// Records the generation the parent was reconciled at.
    pub fn reconciled(&self) {
        let generation = self.parent.metadata.generation.unwrap_or_default();
        self.states.update(self.parent, |state| {
            state.reconciled_generation = Some(generation)
        });
    }

    /// Remembers the status just written for the parent.
    pub fn status_written(&self, status: Value) {
        self.states
            .update(self.parent, |state| state.written_status = Some(status));
    }

    /// Forgets the status written for the parent (the parent is gone, or the watch caught up).
    pub fn forget_written_status(&self) {
        self.states
            .update(self.parent, |state| state.written_status = None);
    }

    /// Records the child writes a reconcile of the parent is about to make (`Kind name`, desired
    /// digest) and tells whether the guest's output has stopped settling: a child written with
    /// [`UNSETTLED_DIGESTS`] different contents within [`UNSETTLED_WINDOW`] while the parent's
    /// generation stayed the same. Returns that child and its count.
    pub fn record_writes(
        &self,
        writes: &[(String, String)],
        now: Instant,
    ) -> Option<(String, usize)> {
        let generation = self.parent.metadata.generation.unwrap_or_default();
        self.states
            .update(self.parent, |state| {
                let recent = &mut state.recent_writes;
                recent.retain(|w| {
                    w.generation == generation && now.duration_since(w.at) < UNSETTLED_WINDOW
                });
                for (child, digest) in writes {
                    recent.push_back(RecentWrite {
                        at: now,
                        generation,
                        child: child.clone(),
                        digest: digest.clone(),
                    });
                }
                while recent.len() > MAX_RECENT_WRITES {
                    recent.pop_front();
                }
                writes.iter().find_map(|(child, _)| {
                    let digests: HashSet<&str> = recent
                        .iter()
                        .filter(|w| &w.child == child)
                        .map(|w| w.digest.as_str())
                        .collect();
                    (digests.len() >= UNSETTLED_DIGESTS).then(|| (child.clone(), digests.len()))
                })
            })
            .flatten()
    }

    /// The requirements kept for the parent at `generation` from the guest `guest`, if any.
    pub fn requirements(&self, generation: i64, guest: &str) -> Option<Arc<KeptRequirements>> {
        let uid = self.parent.uid()?;
        let states = self.states.lock();
        let kept = states.get(&uid)?.requirements.as_ref()?;
        (kept.generation == generation && kept.guest == guest).then(|| Arc::clone(kept))
    }

    /// Keeps the parent's requirements and calls `also` while they are kept, under the same
    /// lock as the deletion of a parent's state: what `also` records beside them (the reverse
    /// index) is then forgotten with them. Nothing is kept, and `also` not called, for a parent
    /// the cache no longer holds.
    pub fn keep_requirements(&self, kept: Arc<KeptRequirements>, also: impl FnOnce()) {
        self.states.update(self.parent, |state| {
            state.requirements = Some(kept);
            also();
        });
    }

    /// Takes the parent's requirements away (its guest reads nothing now).
    pub fn take_requirements(&self) -> Option<Arc<KeptRequirements>> {
        self.states
            .update(self.parent, |state| state.requirements.take())
            .flatten()
    }

    /// The status this process last wrote for the parent, if the watch has not shown it yet.
    pub fn written_status(&self) -> Option<Value> {
        let uid = self.parent.uid()?;
        self.states.lock().get(&uid)?.written_status.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store::Writer;

    fn resource() -> ApiResource {
        ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&())
    }

    fn parent(name: &str, uid: &str, generation: i64) -> DynamicObject {
        let mut object = DynamicObject::new(name, &resource()).within("ns");
        object.metadata.uid = Some(uid.into());
        object.metadata.generation = Some(generation);
        object
    }

    fn states() -> (Writer<DynamicObject>, ParentStates) {
        let writer = Writer::new(resource());
        let states = ParentStates::new(writer.as_reader(), resource());
        (writer, states)
    }

    fn apply(
        writer: &mut Writer<DynamicObject>,
        states: &ParentStates,
        event: watcher::Event<DynamicObject>,
    ) {
        writer.apply_watcher_event(&event);
        states.observe(&event);
    }

    #[test]
    fn a_deleted_parent_is_forgotten_and_its_successor_starts_afresh() {
        let (mut writer, states) = states();
        let first = parent("p", "uid-1", 1);
        apply(&mut writer, &states, watcher::Event::Apply(first.clone()));
        assert_eq!(states.of(&first).record_failure(), 1);
        assert_eq!(states.of(&first).record_failure(), 2);
        assert_eq!(states.len(), 1);
        apply(&mut writer, &states, watcher::Event::Delete(first.clone()));
        assert!(states.is_empty());

        let second = parent("p", "uid-2", 1);
        apply(&mut writer, &states, watcher::Event::Apply(second.clone()));
        assert_eq!(
            states.of(&second).record_failure(),
            1,
            "no backoff inherited by name"
        );
    }

    #[test]
    fn nothing_is_recorded_for_a_parent_the_cache_no_longer_holds() {
        let (mut writer, states) = states();
        let gone = parent("p", "uid-1", 1);
        apply(&mut writer, &states, watcher::Event::Apply(gone.clone()));
        apply(&mut writer, &states, watcher::Event::Delete(gone.clone()));
        // A reconcile that was in flight during the deletion ends now.
        states.of(&gone).record_failure();
        states.of(&gone).reconciled();
        states.of(&gone).status_written(serde_json::json!({}));
        assert!(states.is_empty());
    }

    #[test]
    fn a_relist_drops_parents_deleted_while_the_watch_was_down() {
        let (mut writer, states) = states();
        let (kept, missed) = (parent("kept", "k", 1), parent("missed", "m", 1));
        for p in [&kept, &missed] {
            apply(&mut writer, &states, watcher::Event::Apply(p.clone()));
            states.of(p).reconciled();
        }
        apply(&mut writer, &states, watcher::Event::Init);
        apply(
            &mut writer,
            &states,
            watcher::Event::InitApply(kept.clone()),
        );
        apply(&mut writer, &states, watcher::Event::InitDone);
        assert_eq!(states.len(), 1);
        assert_eq!(states.waiting(), 0);
    }

    #[test]
    fn parents_with_an_unreconciled_generation_are_waiting() {
        let (mut writer, states) = states();
        let (a, b) = (parent("a", "a", 1), parent("b", "b", 2));
        for p in [&a, &b] {
            apply(&mut writer, &states, watcher::Event::Apply(p.clone()));
        }
        assert_eq!(states.waiting(), 2);
        states.of(&a).reconciled();
        assert_eq!(states.waiting(), 1);
        states.of(&b).reconciled();
        assert_eq!(states.waiting(), 0);
        let b2 = parent("b", "b", 3);
        apply(&mut writer, &states, watcher::Event::Apply(b2));
        assert_eq!(states.waiting(), 1);
    }

    #[test]
    fn a_child_rewritten_with_new_content_again_and_again_is_unsettled() {
        let (mut writer, states) = states();
        let p = parent("p", "u", 1);
        apply(&mut writer, &states, watcher::Event::Apply(p.clone()));
        let now = Instant::now();
        let write = |digest: &str| vec![("ConfigMap x".to_string(), digest.to_string())];
        for n in 1..UNSETTLED_DIGESTS {
            assert_eq!(
                states.of(&p).record_writes(&write(&format!("d{n}")), now),
                None
            );
        }
        // The same content again is not churn.
        assert_eq!(states.of(&p).record_writes(&write("d1"), now), None);
        assert_eq!(
            states.of(&p).record_writes(&write("d-last"), now),
            Some(("ConfigMap x".to_string(), UNSETTLED_DIGESTS))
        );
        // A new generation (the user changed the spec) starts afresh, as does time.
        let p2 = parent("p", "u", 2);
        apply(&mut writer, &states, watcher::Event::Apply(p2.clone()));
        assert_eq!(states.of(&p2).record_writes(&write("e1"), now), None);
        let later = now + UNSETTLED_WINDOW + Duration::from_secs(1);
        for n in 0..UNSETTLED_DIGESTS - 1 {
            assert_eq!(
                states
                    .of(&p2)
                    .record_writes(&write(&format!("f{n}")), later),
                None
            );
        }
    }

    #[test]
    fn a_success_clears_the_failures() {
        let (mut writer, states) = states();
        let p = parent("p", "u", 1);
        apply(&mut writer, &states, watcher::Event::Apply(p.clone()));
        states.of(&p).record_failure();
        states.of(&p).clear_failures();
        assert!(states.is_empty(), "an entry with nothing in it is removed");
        assert_eq!(states.of(&p).record_failure(), 1);
    }

    #[test]
    fn failing_counts_the_parents_whose_last_reconcile_failed() {
        let (mut writer, states) = states();
        let (p, q) = (parent("p", "u", 1), parent("q", "v", 1));
        apply(&mut writer, &states, watcher::Event::Apply(p.clone()));
        apply(&mut writer, &states, watcher::Event::Apply(q.clone()));
        states.of(&p).record_failure();
        states.of(&p).record_failure();
        states.of(&q).reconciled();
        assert_eq!(states.failing(), 1);
        states.of(&p).clear_failures();
        assert_eq!(states.failing(), 0);
    }
}
