//! Shadow mode: a candidate guest (`NAME.candidate.wasm` beside `NAME.wasm`) decides beside the
//! active guest on every reconcile of its kind, from the same caches, through the same policy and
//! planning step, and nothing it decides is written. Per parent, the host records whether the
//! candidate's plan agrees with the active guest's, diverges from it, or fails
//! (`compare.rs`), and keeps a bounded report (`report.rs`) that `/shadow` serves and the
//! `reconciler_shadow_parents` gauge counts. The first divergence or failure of a parent is
//! announced once, with a log line and an Event on the parent.
//!
//! The candidate costs one more guest call and plan per reconcile and no API request: it is
//! judged from the caches alone (the take-over rule, which may ask the API server who holds a
//! name, applies when it becomes the active guest). Loading, admitting and dropping candidates
//! is the controller's (`controller/candidate.rs`).

pub mod board;
pub mod compare;
pub mod report;

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::info;

use crate::metrics::GuestMetrics;

use super::active_guest::{ActiveGuest, guest_labels};
use super::error::Failure;
use super::events::EventType;
use super::observe::parent_key;
use super::plan::Plan;
use super::{Context, preview};
use compare::Verdict;
use report::{Counts, ShadowReport};

pub use board::ShadowBoard;

/// A candidate guest, with its kinds resolved, and what it decided so far.
pub struct Candidate {
    pub guest: ActiveGuest,
    report: Mutex<ShadowReport>,
}

impl Candidate {
    fn report(&self) -> std::sync::MutexGuard<'_, ShadowReport> {
        self.report.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn digest(&self) -> &str {
        self.guest.guest.digest()
    }
}

/// A guest's shadow candidate, if it has one; replaced as the candidate file changes.
pub struct CandidateSlot {
    current: RwLock<Option<Arc<Candidate>>>,
    metrics: GuestMetrics,
}

impl CandidateSlot {
    /// An empty slot, counting into `metrics`.
    pub fn new(metrics: GuestMetrics) -> Self {
        Self {
            current: RwLock::new(None),
            metrics,
        }
    }

    /// The candidate to judge a reconcile with.
    pub fn current(&self) -> Option<Arc<Candidate>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `next` the candidate (`None`: no candidate), with an empty report; the previous
    /// one's series go with it.
    pub fn replace(&self, next: Option<ActiveGuest>) -> Option<Arc<Candidate>> {
        let next = next.map(|guest| {
            Arc::new(Candidate {
                guest,
                report: Mutex::default(),
            })
        });
        if let Some(next) = &next {
            self.metrics.set_shadow_parents(next.digest(), |_| 0);
        }
        let previous = std::mem::replace(
            &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
            next,
        );
        if let Some(previous) = &previous
            && self
                .current()
                .is_none_or(|now| now.digest() != previous.digest())
        {
            self.metrics.forget_shadow(previous.digest());
        }
        previous
    }

    /// Forgets a parent that is gone.
    pub fn forget_parent(&self, uid: &str) {
        if let Some(candidate) = self.current() {
            let counts = candidate.report().forget(uid);
            self.count(&candidate, counts);
        }
    }

    fn count(&self, candidate: &Candidate, counts: Counts) {
        self.metrics
            .set_shadow_parents(candidate.digest(), |verdict| counts.of(verdict));
    }

    /// The current report: the candidate's code, the counts and the parents kept in detail;
    /// `null` without a candidate.
    pub fn to_json(&self) -> Value {
        let Some(candidate) = self.current() else {
            return Value::Null;
        };
        let code = guest_labels(&candidate.guest.guest);
        let mut report = candidate.report().to_json();
        report["candidate"] =
            json!({ "name": code.name, "version": code.version, "digest": code.digest });
        report
    }
}

/// What the candidate decided for one parent, to be judged against the active guest's plan.
pub struct Shadowed {
    candidate: Arc<Candidate>,
    outcome: Result<Plan, Failure>,
}

/// The candidate's plan for `parent`, if the guest has a candidate and its outcome says
/// something about it (not the caches still listing, the controller stopping, a host failure).
///
/// Called once the active guest's call has ended and before its answer is checked, so this
/// reconcile holds none of the guest memory budget while the candidate's call waits for its
/// share (holding some while waiting for more could deadlock the budget). The plan is kept,
/// outside the budget, until [`Shadowed::judge`]: at most one plan per reconcile in flight.
pub async fn decide(ctx: &Context, parent: &DynamicObject) -> Option<Shadowed> {
    let candidate = ctx.candidate.current()?;
    let outcome = preview::plan_only(ctx, parent, &candidate.guest)
        .await
        .map(|preview| preview.plan);
    if outcome
        .as_ref()
        .is_err_and(|failure| !about_the_guest(failure))
    {
        return None;
    }
    Some(Shadowed { candidate, outcome })
}

impl Shadowed {
    /// Judges the candidate's plan against the active guest's outcome for `parent` (`active`),
    /// records the verdict, and announces a parent's first divergence or failure.
    pub async fn judge(
        self,
        ctx: &Context,
        parent: &DynamicObject,
        active: Result<&Plan, &Failure>,
    ) {
        if active.is_err_and(|failure| !about_the_guest(failure)) {
            return;
        }
        let verdict = compare::compare(active, self.outcome.as_ref());
        let key = parent_key(parent);
        let recorded = self.candidate.report().record(
            parent.uid().as_deref().unwrap_or_default(),
            &key,
            parent.metadata.generation.unwrap_or_default(),
            verdict.clone(),
        );
        ctx.candidate.count(&self.candidate, recorded.counts);
        if recorded.announce {
            announce(ctx, parent, &self.candidate, &key, &verdict).await;
        }
    }
}

/// Whether `failure` is the guest's doing (its verdict, its failure, its output refused), which
/// a candidate is judged on, rather than the host's state.
fn about_the_guest(failure: &Failure) -> bool {
    matches!(
        failure,
        Failure::InvalidSpec(_)
            | Failure::Guest(_)
            | Failure::Policy(_)
            | Failure::Requirements(_)
            | Failure::RelatedTooLarge(_)
    )
}

/// The one log line and Event of a parent's first divergence or failure.
async fn announce(
    ctx: &Context,
    parent: &DynamicObject,
    candidate: &Candidate,
    key: &str,
    verdict: &Verdict,
) {
    let (type_, reason, what) = match verdict {
        Verdict::Agrees => return,
        Verdict::Diverges(divergence) => (
            EventType::Normal,
            "CandidateDiverges",
            match &divergence.active_fails {
                Some(_) => "would succeed where the active guest fails".to_owned(),
                None => format!(
                    "would change {} children{}",
                    divergence.children.len() + divergence.more_children,
                    if divergence.status.is_empty() {
                        ""
                    } else {
                        " and the status"
                    }
                ),
            },
        ),
        Verdict::Fails { reason } => (
            EventType::Warning,
            "CandidateFails",
            format!("would fail: {reason}"),
        ),
    };
    let summary = candidate.guest.summary();
    info!(parent = %key, candidate = %summary, verdict = ?verdict.label(), "shadow candidate {what}; nothing it decides is written (the guest's /shadow report has the details)");
    let note = format!(
        "The shadow candidate {summary} {what}; nothing it decides is written (the host's \
         /shadow report has the details)."
    );
    let regarding = parent.object_ref(&ctx.parent_kind.resource);
    if let Err(error) = ctx
        .events
        .publish(&regarding, type_, reason, "Shadow", &note, None)
        .await
    {
        tracing::debug!(parent = %key, %error, "could not publish the shadow candidate's Event");
    }
}
