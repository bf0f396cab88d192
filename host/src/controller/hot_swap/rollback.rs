//! Rolling back by itself: when the rule of `reconcile/rollback.rs` trips for the guest swapped
//! in last, the guest it replaced (kept in memory, so nothing is read or compiled again) is put
//! back, and the rolled-back file is not taken again until it changes.

use std::sync::Arc;

use tracing::warn;

use super::{HotSwap, NEW_KINDS_SYNC_TIMEOUT};
use crate::error_text::error_chain;
use crate::metrics::ReloadResult;
use crate::reconcile::rollback::Trip;

impl HotSwap {
    /// Puts back the guest the last swap replaced, if the guest the rule tripped for is still
    /// the active one.
    pub(super) async fn roll_back(&self, trip: Trip) {
        let active = self.slot.current();
        if active.guest.digest() != trip.rolled_back {
            // Another swap came first: the rule was about a guest no longer serving.
            return;
        }
        let Some(previous) = self.previous.lock().expect("lock").take() else {
            return;
        };
        // The previous guest's child kinds are watched again before it decides (a guest that
        // added kinds may have let go of some of the previous one's).
        if let Err(error) = self
            .children
            .watch_kinds(
                &active.user(),
                &previous.child_kinds,
                NEW_KINDS_SYNC_TIMEOUT,
            )
            .await
        {
            warn!(
                active = %active.summary(),
                previous = %previous.summary(),
                %error,
                "could not roll back: the previous guest's child kinds did not list; the new \
                 guest keeps serving"
            );
            *self.previous.lock().expect("lock") = Some(previous);
            return;
        }
        // It was admitted before with the same manifest and settings; admission records its
        // kinds in the roster again in place of the rolled-back guest's.
        if let Err(refusal) = self.roster.admit(
            &self.rules,
            &self.spec.name,
            previous.guest.manifest(),
            &self.spec.settings,
        ) {
            warn!(
                previous = %previous.summary(),
                error = %error_chain(&refusal),
                "could not roll back: the previous guest is not admitted any more; the new guest \
                 keeps serving"
            );
            self.children
                .retain_kinds(&active.user(), &active.child_kinds);
            return;
        }
        let rolled_back = self.slot.restore(Arc::clone(&previous));
        self.children
            .retain_kinds(&previous.user(), &previous.child_kinds);
        self.related
            .retain_kinds(&previous.user(), &previous.related_kinds);
        // The rolled-back file (with its configuration) is refused from now on, until it changes.
        *self.last_refused.lock().expect("lock") = Some((
            rolled_back.guest.digest().to_owned(),
            rolled_back.guest.config().to_owned(),
        ));
        self.metrics.guest_reloaded(ReloadResult::RolledBack);
        self.metrics.set_active_guest(previous.metric_labels());
        self.readiness
            .set_loaded(previous.guest.contract().version());
        self.sweep.request();
        warn!(
            rolled_back = %rolled_back.summary(),
            active = %previous.summary(),
            newly_failing = trip.newly_failing,
            reconciled = trip.reconciled,
            took_ms = trip.at.elapsed().as_secs_f64() * 1e3,
            path = %self.spec.path.display(),
            "rolled back: the new guest failed on parents the previous one did not; the previous \
             guest decides again, and the file is not taken again until it changes"
        );
    }
}
