//! An index a watch keeps current, which never answers from a half-listed state: events change
//! the live index, except during a (re)list, whose items fill a fresh index that replaces the live
//! one whole at `InitDone`. Used by the child caches and by the unmanaged-names index.
//!
//! # Guarantees
//! - Until the first list has completed the index is not synced ([`RelistingIndex::read`]
//!   answers `None`); afterwards it always answers from a complete list plus the events since.
//! - During a relist the previous, complete index keeps answering.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::runtime::watcher::Event;

/// What a [`RelistingIndex`] holds: entries added and removed by key.
pub trait Index: Default {
    /// What a watch event carries, converted to what the index keeps.
    type Entry;
    /// Adds or replaces the entry.
    fn upsert(&mut self, entry: Self::Entry);
    /// Removes the entry with the same key, if present.
    fn remove(&mut self, entry: &Self::Entry);
}

/// What one event did.
pub enum Applied<I> {
    /// The live index changed (or a relist buffered an item).
    Changed,
    /// A (re)list completed and replaced the live index; `previous` is the one replaced, and
    /// `first` says whether this was the first complete list.
    Swapped { previous: I, first: bool },
}

/// An [`Index`] kept by a watch, swapped whole at each completed (re)list.
#[derive(Default)]
pub struct RelistingIndex<I> {
    state: RwLock<State<I>>,
    synced: AtomicBool,
}

#[derive(Default)]
struct State<I> {
    live: I,
    /// Filled during a (re)list and swapped in at `InitDone`.
    relisting: Option<I>,
}

impl<I: Index> RelistingIndex<I> {
    /// Applies one watch event.
    pub fn handle(&self, event: Event<I::Entry>) -> Applied<I> {
        let mut state = self.state.write().expect("index lock poisoned");
        match event {
            Event::Apply(entry) => state.live.upsert(entry),
            Event::Delete(entry) => state.live.remove(&entry),
            Event::Init => state.relisting = Some(I::default()),
            Event::InitApply(entry) => state.relisting.get_or_insert_default().upsert(entry),
            Event::InitDone => {
                let listed = state.relisting.take().unwrap_or_default();
                let previous = std::mem::replace(&mut state.live, listed);
                let first = !self.synced.swap(true, Ordering::AcqRel);
                return Applied::Swapped { previous, first };
            }
        }
        Applied::Changed
    }

    /// True once the first list has completed.
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// `read` of the live index once synced; `None` before the first list completed.
    pub fn read<R>(&self, read: impl FnOnce(&I) -> R) -> Option<R> {
        self.is_synced().then(|| self.read_live(read))
    }

    /// `read` of the live index, synced or not.
    pub fn read_live<R>(&self, read: impl FnOnce(&I) -> R) -> R {
        read(&self.state.read().expect("index lock poisoned").live)
    }
}

/// Waits until `done()` holds, checking again each time `changed` is notified, for at most
/// `timeout`; whether it held. (The caches' "wait until these kinds have listed".)
pub async fn wait_until(
    changed: &tokio::sync::Notify,
    done: impl Fn() -> bool,
    timeout: std::time::Duration,
) -> bool {
    tokio::time::timeout(timeout, async {
        loop {
            let notified = changed.notified();
            if done() {
                return;
            }
            notified.await;
        }
    })
    .await
    .is_ok()
}

/// `event` with its object converted by `convert`.
pub fn map_event<K, T>(event: Event<K>, mut convert: impl FnMut(K) -> T) -> Event<T> {
    match event {
        Event::Apply(object) => Event::Apply(convert(object)),
        Event::Delete(object) => Event::Delete(convert(object)),
        Event::Init => Event::Init,
        Event::InitApply(object) => Event::InitApply(convert(object)),
        Event::InitDone => Event::InitDone,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[derive(Default)]
    struct Names(BTreeSet<&'static str>);

    impl Index for Names {
        type Entry = &'static str;
        fn upsert(&mut self, entry: &'static str) {
            self.0.insert(entry);
        }
        fn remove(&mut self, entry: &&'static str) {
            self.0.remove(entry);
        }
    }

    fn names(index: &RelistingIndex<Names>) -> Option<Vec<&'static str>> {
        index.read(|n| n.0.iter().copied().collect())
    }

    #[test]
    fn nothing_is_answered_before_the_first_list_completes() {
        let index = RelistingIndex::<Names>::default();
        index.handle(Event::Init);
        index.handle(Event::InitApply("a"));
        assert_eq!(names(&index), None);
        assert!(matches!(
            index.handle(Event::InitDone),
            Applied::Swapped { first: true, .. }
        ));
        assert_eq!(names(&index), Some(vec!["a"]));
    }

    #[test]
    fn a_relist_replaces_the_index_only_when_it_is_complete() {
        let index = RelistingIndex::<Names>::default();
        for event in [Event::Init, Event::InitApply("a"), Event::InitDone] {
            index.handle(event);
        }
        index.handle(Event::Init);
        index.handle(Event::InitApply("b"));
        assert_eq!(names(&index), Some(vec!["a"]), "the complete index answers");
        let Applied::Swapped { previous, first } = index.handle(Event::InitDone) else {
            panic!("InitDone swaps");
        };
        assert!(!first);
        assert_eq!(previous.0.into_iter().collect::<Vec<_>>(), ["a"]);
        assert_eq!(names(&index), Some(vec!["b"]));
        index.handle(Event::Apply("c"));
        index.handle(Event::Delete("b"));
        assert_eq!(names(&index), Some(vec!["c"]));
    }
}
