//! What runs beside a guest's controller, and what it holds in the shared caches, stopped and
//! let go of however the controller ends (returned, or dropped by a leader that lost its Lease).

use std::sync::Arc;

use tracing::Instrument;

use super::Shared;
use super::hot_swap::candidate_user;
use crate::cluster::kinds::ResolvedKind;
use crate::cluster::{ChildCaches, RelatedCaches};
use crate::metrics::GuestMetrics;
use crate::readiness::GuestReadiness;
use crate::reconcile::shadow::{CandidateSlot, ShadowBoard};

/// Stops what runs beside the controller, however [`run`](super::run) ends (returned or dropped).
pub(super) struct Teardown {
    pub(super) tasks: Vec<tokio::task::AbortHandle>,
    children: Arc<ChildCaches>,
    related: Arc<RelatedCaches>,
    parent_kind: ResolvedKind,
    metrics: GuestMetrics,
    readiness: GuestReadiness,
    /// The guest's name and its candidate slot, once made.
    candidate: Option<(String, Arc<CandidateSlot>)>,
    shadow: Arc<ShadowBoard>,
}

impl Teardown {
    /// What stops when the controller of `parent_kind` does.
    pub(super) fn new(
        shared: &Shared,
        parent_kind: &ResolvedKind,
        metrics: &GuestMetrics,
        readiness: &GuestReadiness,
    ) -> Self {
        Self {
            tasks: Vec::new(),
            children: Arc::clone(&shared.children),
            related: Arc::clone(&shared.related),
            parent_kind: parent_kind.clone(),
            metrics: metrics.clone(),
            readiness: readiness.clone(),
            candidate: None,
            shadow: Arc::clone(&shared.shadow),
        }
    }

    /// Shows the guest's candidate slot on `/shadow` until the controller stops.
    pub(super) fn show_candidate(
        &mut self,
        guest: &str,
        slot: CandidateSlot,
    ) -> Arc<CandidateSlot> {
        let slot = Arc::new(slot);
        self.shadow.show(guest, &slot);
        self.candidate = Some((guest.to_owned(), Arc::clone(&slot)));
        slot
    }

    /// Runs `task` beside the controller, in its span, until the controller stops.
    pub(super) fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks
            .push(tokio::spawn(task.in_current_span()).abort_handle());
    }
}

impl Drop for Teardown {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some((guest, candidate)) = &self.candidate {
            candidate.replace(None);
            self.shadow.hide(guest, candidate);
            self.children
                .retain_kinds(&candidate_user(&self.parent_kind.display_name()), &[]);
        }
        self.children
            .retain_kinds(&self.parent_kind.display_name(), &[]);
        self.related
            .retain_kinds(&self.parent_kind.display_name(), &[]);
        self.related.forget_readers_of(&self.parent_kind.resource);
        self.children
            .stop_serving_parent_kind(&self.parent_kind.resource);
        self.readiness.set_caches_synced(false);
        self.readiness.set_parent_watch_failing(false);
        self.metrics.set_parent_watch_failing(false);
        self.readiness.set_child_watch_probe(None);
        self.metrics.set_parent_probe(None);
    }
}
