//! Rollback by itself: for a window after each hot swap, the reconciles of the new guest are
//! watched, and when it is clearly worse than the guest it replaced on the same parents, the hot
//! swap puts the previous guest back (`controller/hot_swap/`), which it keeps in memory.
//!
//! # The rule
//! A parent *newly fails* when its reconcile with the new guest fails (the guest failed or timed
//! out, its output broke the policy, an apply failed, its output did not settle) while its last
//! reconcile before the swap did not. Within the window, the new guest is rolled back as soon as
//! at least `min_failures` parents newly fail **and** they are at least `failure_ratio` of the
//! parents it has reconciled so far. A guest's verdict that a spec is invalid is not a failure;
//! nor are the host's own states (caches listing, stopping).
//!
//! Kept: the UIDs of the parents whose last reconcile failed (to know, at a swap, which parents
//! were failing already) and, during a window, one outcome per parent reconciled: both bounded
//! by the parents that exist (gone parents are forgotten).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use kube::Resource;
use kube::api::DynamicObject;

use super::Context;
use super::active_guest::ActiveGuest;
use super::error::Failure;
use super::events::EventType;

/// When the host rolls a new guest back (`--rollback-*`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RollbackRule {
    /// How long after a swap the new guest is watched; zero: never roll back.
    pub window: Duration,
    /// Fewest parents newly failing that roll back.
    pub min_failures: usize,
    /// Smallest share of the parents reconciled with the new guest that newly fail (0 to 1).
    pub failure_ratio: f64,
}

impl Default for RollbackRule {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(600),
            min_failures: 5,
            failure_ratio: 0.25,
        }
    }
}

/// Most parents told, by an Event on their next reconcile, that the guest was rolled back.
const MAX_ANNOUNCED: usize = 100;

/// A rollback to carry out, and why.
#[derive(Debug)]
pub struct Trip {
    /// The digest of the guest to roll back.
    pub rolled_back: String,
    pub newly_failing: usize,
    pub reconciled: usize,
    /// When the rule tripped.
    pub at: Instant,
}

/// The watch over the guest swapped in last.
struct Window {
    new_digest: String,
    until: Instant,
    /// Parents failing when the window opened.
    failing_before: HashSet<String>,
    /// Per parent reconciled with the new guest: whether its last reconcile newly failed.
    outcomes: HashMap<String, bool>,
}

#[derive(Default)]
struct State {
    /// Parents whose last reconcile failed, whichever guest ran it.
    failing: HashSet<String>,
    window: Option<Window>,
    /// The rollback the hot swap has still to carry out.
    trip: Option<Trip>,
    /// Parents to tell, on their next reconcile, that the guest was rolled back (and which).
    to_announce: HashMap<String, String>,
}

/// One guest's rollback watch, shared by its reconciles and its hot swap.
pub struct RollbackWatch {
    rule: RollbackRule,
    state: Mutex<State>,
    tripped: Notify,
}

impl RollbackWatch {
    pub fn new(rule: RollbackRule) -> Self {
        Self {
            rule,
            state: Mutex::default(),
            tripped: Notify::new(),
        }
    }

    pub fn rule(&self) -> RollbackRule {
        self.rule
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A swap to the guest of `new_digest`: watch it for the rule's window.
    pub fn swapped(&self, new_digest: &str) {
        if self.rule.window.is_zero() {
            return;
        }
        let mut state = self.lock();
        state.window = Some(Window {
            new_digest: new_digest.to_owned(),
            until: Instant::now() + self.rule.window,
            failing_before: state.failing.clone(),
            outcomes: HashMap::new(),
        });
        state.trip = None;
    }

    /// Records how the reconcile of the parent `uid` with the guest of `digest` ended; trips the
    /// rule when it says so.
    pub fn record(&self, uid: &str, digest: &str, result: Result<(), &Failure>) {
        let failed = match result {
            Ok(()) => false,
            Err(failure) if counts(failure) => true,
            // Says nothing about the guest: nothing changes.
            Err(_) => return,
        };
        let mut state = self.lock();
        if failed {
            state.failing.insert(uid.to_owned());
        } else {
            state.failing.remove(uid);
        }
        let Some(window) = state.window.as_mut() else {
            return;
        };
        if window.new_digest != digest {
            return;
        }
        if Instant::now() > window.until {
            state.window = None;
            return;
        }
        let newly = failed && !window.failing_before.contains(uid);
        window.outcomes.insert(uid.to_owned(), newly);
        let newly_failing = window.outcomes.values().filter(|newly| **newly).count();
        let reconciled = window.outcomes.len();
        let share = newly_failing as f64 / reconciled as f64;
        if newly_failing < self.rule.min_failures || share < self.rule.failure_ratio {
            return;
        }
        let window = state.window.take().expect("the window is open");
        let announce: Vec<String> = window
            .outcomes
            .iter()
            .filter(|(_, newly)| **newly)
            .map(|(uid, _)| uid.clone())
            .take(MAX_ANNOUNCED)
            .collect();
        for uid in announce {
            state.to_announce.insert(uid, window.new_digest.clone());
        }
        state.trip = Some(Trip {
            rolled_back: window.new_digest,
            newly_failing,
            reconciled,
            at: Instant::now(),
        });
        drop(state);
        self.tripped.notify_one();
    }

    /// Waits for the rule to trip, and hands over the rollback to carry out.
    pub async fn tripped(&self) -> Trip {
        loop {
            if let Some(trip) = self.lock().trip.take() {
                return trip;
            }
            self.tripped.notified().await;
        }
    }

    /// The digest of the guest rolled back, if the parent `uid`, just reconciled by the guest
    /// of `digest`, is to be told of it now (once, and only by a reconcile of the guest put
    /// back: one of the rolled-back guest may still be finishing).
    pub fn take_announcement(&self, uid: &str, digest: &str) -> Option<String> {
        let mut state = self.lock();
        if state.to_announce.get(uid)? == digest {
            return None;
        }
        state.to_announce.remove(uid)
    }

    /// Forgets a parent that is gone.
    pub fn forget(&self, uid: &str) {
        let mut state = self.lock();
        state.failing.remove(uid);
        state.to_announce.remove(uid);
        if let Some(window) = state.window.as_mut() {
            window.failing_before.remove(uid);
            window.outcomes.remove(uid);
        }
    }
}

/// The Event on a parent the rolled-back guest (`rolled_back`, its digest) newly failed on, on
/// its first reconcile with the guest put back (`active`).
pub async fn announce(
    ctx: &Context,
    parent: &DynamicObject,
    active: &ActiveGuest,
    rolled_back: &str,
) {
    let note = format!(
        "The guest {rolled_back} was rolled back: it failed on this parent, and on others, where \
         the guest before it did not. {} decides again; the rolled-back file is not taken again \
         until it changes.",
        active.summary()
    );
    let regarding = parent.object_ref(&ctx.parent_kind.resource);
    if let Err(error) = ctx
        .events
        .publish(
            &regarding,
            EventType::Warning,
            "GuestRolledBack",
            "Rollback",
            &note,
            None,
        )
        .await
    {
        tracing::debug!(%error, "could not publish the rollback Event");
    }
}

/// Whether `failure` counts against a guest under the rule.
fn counts(failure: &Failure) -> bool {
    matches!(
        failure,
        Failure::Guest(_)
            | Failure::Policy(_)
            | Failure::Requirements(_)
            | Failure::RelatedTooLarge(_)
            | Failure::Unsettled(_)
            | Failure::Write { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::GuestError;

    fn failure() -> Failure {
        Failure::Guest(GuestError::Transient("broken".into()))
    }

    fn tripped(watch: &RollbackWatch) -> bool {
        watch.lock().trip.is_some()
    }

    #[test]
    fn a_guest_failing_on_half_the_parents_is_rolled_back_and_a_fine_one_is_not() {
        let broken = failure();
        let half = RollbackWatch::new(RollbackRule::default());
        half.swapped("new");
        for i in 0..9 {
            let result = if i % 2 == 0 { Err(&broken) } else { Ok(()) };
            half.record(&format!("u{i}"), "new", result);
        }
        assert!(tripped(&half), "5 of 9 parents newly fail");
        assert!(
            half.take_announcement("u0", "new").is_none(),
            "not by a reconcile of the rolled-back guest"
        );
        assert_eq!(half.take_announcement("u0", "old").as_deref(), Some("new"));
        assert!(half.take_announcement("u0", "old").is_none(), "once");
        assert!(
            half.take_announcement("u1", "old").is_none(),
            "u1 did not fail"
        );

        let fine = RollbackWatch::new(RollbackRule::default());
        fine.swapped("new");
        for i in 0..100 {
            fine.record(&format!("u{i}"), "new", Ok(()));
        }
        assert!(!tripped(&fine));
    }

    #[test]
    fn parents_failing_before_the_swap_and_a_few_failures_among_many_do_not_roll_back() {
        let broken = failure();
        let watch = RollbackWatch::new(RollbackRule::default());
        for i in 0..10 {
            watch.record(&format!("u{i}"), "old", Err(&broken));
        }
        watch.swapped("new");
        for i in 0..10 {
            watch.record(&format!("u{i}"), "new", Err(&broken));
        }
        assert!(!tripped(&watch), "they failed with the previous guest too");
        for i in 10..100 {
            let result = if i % 15 == 0 { Err(&broken) } else { Ok(()) };
            watch.record(&format!("u{i}"), "new", result);
        }
        assert!(
            !tripped(&watch),
            "6 newly failing of 100 is under a quarter"
        );
        for i in 100..110 {
            watch.record(&format!("u{i}"), "old", Err(&broken));
        }
        assert!(
            !tripped(&watch),
            "a reconcile by another guest is not the new one's"
        );
    }

    #[test]
    fn no_window_no_rollback() {
        let broken = failure();
        let watch = RollbackWatch::new(RollbackRule {
            window: Duration::ZERO,
            ..RollbackRule::default()
        });
        watch.swapped("new");
        for i in 0..10 {
            watch.record(&format!("u{i}"), "new", Err(&broken));
        }
        assert!(!tripped(&watch));
    }
}
