//! One reconcile of one parent, as a pipeline of named steps:
//! observe (caches) → decide (guest) → plan (output policy, host-owned fields) → take-over check
//! → settle check → apply → prune → report (status, Events, metrics).
//!
//! # Guarantees
//! - Nothing is pruned on incomplete information: a reconcile runs only when every child kind of
//!   the active guest has listed completely, and prunes only when the guest succeeded, its
//!   output passed the policy and every apply of this reconcile succeeded.
//! - A guest failure or policy violation changes no child; it is reported in the parent's
//!   `Ready` condition and retried with per-parent exponential backoff.
//! - An invalid spec is reported and not retried until the parent changes.
//! - A failure is reported once, in one place (`report.rs`), whichever step it came from.
//! - One reconcile uses one guest throughout, even if a hot swap happens meanwhile.
//! - `render` runs the same planning step ([`plan::plan`]), so it shows what would be applied;
//!   `diff` runs the same steps up to the writes ([`preview::preview`]) against the live caches.

pub mod active_guest;
mod apply;
pub mod budget;
pub mod claims;
mod context;
mod decide;
mod done;
mod error;
pub mod events;
pub mod field_changes;
pub mod guest_events;
pub mod json_match;
mod observe;
pub mod parent_state;
pub mod placement;
pub mod plan;
pub mod policy;
pub mod prepare;
pub mod preview;
pub mod related;
mod report;
pub mod requirements_probe;
pub mod rollback;
mod settle;
pub mod shadow;
pub mod status;
mod take_over;
#[cfg(test)]
mod tests;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::FutureExt;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::controller::Action;
use tracing::{Instrument, info_span};

pub use active_guest::{ActiveGuest, GuestSlot};
pub use context::{Context, Settings};
pub use error::{Failure, Retry};
pub use observe::{Observed, guest_json};
pub use prepare::DESIRED_DIGEST_ANNOTATION;
pub use preview::{Preview, preview};

use apply::Writes;
use done::Done;
use observe::{observation, parent_key};
use parent_state::ParentRecord;

/// How much memory processing a guest's answer takes, per byte of its JSON: parsed into
/// `serde_json::Value` trees (several times the text for Kubernetes objects' short strings and
/// small maps), checked, completed and serialised again for the applies.
const OUTPUT_PROCESSING_FACTOR: usize = 6;

/// The reconcile kube-runtime's controller calls: the pipeline, its report, the metrics, and the
/// per-parent state. A panic anywhere in it is contained to this parent.
pub async fn reconcile(parent: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action, Failure> {
    let guest = ctx.slot.current();
    let span = info_span!(
        "reconcile",
        namespace = parent.namespace().as_deref().unwrap_or_default(),
        name = %parent.name_any(),
        generation = parent.metadata.generation.unwrap_or_default(),
        digest = %guest.guest.digest(),
    );
    // However many guests the process serves, at most `--concurrency` parents are reconciled at
    // once (each reconcile's observed and desired JSON, applies in flight), taking turns. A
    // controller that stops (its guest removed, its settings changed) drops the reconciles still
    // waiting here: they would run with what is going away, and hold up its restart.
    let Some(_slot) = ctx.unless_stopping(ctx.reconcile_slots.reserve(1)).await else {
        return Ok(Action::await_change());
    };
    let _in_flight = ctx.metrics.in_flight();
    let started = Instant::now();
    let record = ctx.parent_states.of(&parent);
    let reconciled = AssertUnwindSafe(
        async {
            let result = reconcile_parent(&record, &ctx, &guest).await;
            report::report(&ctx, &record, &guest, result).await
        }
        .instrument(span),
    )
    .catch_unwind()
    .await
    .unwrap_or_else(|panic| {
        let message = panic_message(panic.as_ref());
        tracing::error!(parent = %parent_key(&parent), %message, "a reconcile panicked; this parent is retried with backoff, the others are not affected");
        Err(Failure::Panicked(message))
    });
    count(&ctx, &record, &reconciled, started);
    if let Some(uid) = parent.uid() {
        let digest = guest.guest.digest();
        ctx.rollback
            .record(&uid, digest, reconciled.as_ref().map(|_| ()));
        if let Some(rolled_back) = ctx.rollback.take_announcement(&uid, digest) {
            rollback::announce(&ctx, &parent, &guest, &rolled_back).await;
        }
    }
    let next = next_action(reconciled);
    if next.is_ok() {
        record.clear_failures();
    }
    next
}

/// The metrics of a finished reconcile, and the generation it reconciled.
fn count(
    ctx: &Context,
    record: &ParentRecord<'_>,
    result: &Result<Done, Failure>,
    started: Instant,
) {
    let label = match result {
        Ok(_) => crate::metrics::ReconcileResult::Success,
        Err(failure) => failure.metric_label(),
    };
    if let Err(failure) = result
        && let Some(kind) = failure.guest_failure()
    {
        ctx.metrics.guest_failed(kind);
    }
    ctx.metrics
        .reconcile_finished(label, started.elapsed().as_secs_f64());
    record.reconciled();
}

/// What kube-runtime does next: requeue, wait for a change, or (`Err`) back off.
fn next_action(result: Result<Done, Failure>) -> Result<Action, Failure> {
    match result {
        Ok(done) => Ok(done.next),
        Err(failure) => match failure.retry() {
            Retry::Backoff => Err(failure),
            Retry::AwaitChange => Ok(Action::await_change()),
            Retry::After(delay) => Ok(Action::requeue(delay)),
        },
    }
}

/// The pipeline. Each step returns a [`Failure`] that `report.rs` reports; none reports itself.
async fn reconcile_parent(
    record: &ParentRecord<'_>,
    ctx: &Context,
    guest: &ActiveGuest,
) -> Result<Done, Failure> {
    let parent = record.parent();
    let observed = observe::observe(ctx, parent, guest)?;
    let related = related::related(
        ctx,
        record,
        guest,
        observed.namespace.as_deref(),
        &observed.parent.uid,
    )
    .await?;
    let shown = observation(parent, &ctx.parent_kind, &observed).with_related(related);
    let decided = decide::decide(ctx, guest, parent, shown).await;
    // A shadow candidate decides too, between the active guest's call and the check of its
    // answer (see `shadow::decide`), and is judged against the active guest's plan.
    let shadowed = shadow::decide(ctx, parent).await;
    let planned = plan_decision(ctx, guest, &observed, decided).await;
    if let Some(shadowed) = shadowed {
        shadowed
            .judge(ctx, parent, planned.as_ref().map(|(plan, _)| plan))
            .await;
    }
    let (plan, _processing) = planned?;
    if observed.finalizing {
        // Garbage collection removes the children of a parent being deleted; re-applying them
        // would race it.
        return Ok(Done {
            status: plan.status,
            writes: Writes::default(),
            events: plan.events,
            finalizing: true,
            next: Action::await_change(),
        });
    }
    take_over::check(ctx, &observed, &plan).await?;
    let writes = apply::writes_needed(ctx, &plan, &observed);
    settle::check(record, &writes)?;
    let mut writes = apply::apply_all(ctx, writes).await;
    apply::prune_undesired(ctx, &plan, &observed, &mut writes).await;
    Ok(Done {
        writes: writes.into_result()?,
        events: plan.events,
        finalizing: false,
        next: Action::requeue(plan.requeue_after.unwrap_or(ctx.settings.resync)),
        status: plan.status,
    })
}

/// The guest's answer checked against the output policy and prepared for apply, with the memory
/// that takes reserved.
async fn plan_decision(
    ctx: &Context,
    guest: &ActiveGuest,
    observed: &Observed,
    decided: Result<crate::sandbox::Decision, Failure>,
) -> Result<(plan::Plan, budget::Reservation), Failure> {
    let decision = decided?;
    // From here the guest's answer is parsed, checked and written: that memory is the host's,
    // not the guest's, and counts against the same budget as the calls (each object is at most
    // `--guest-max-object-kib` already), until the reconcile ends.
    let processing = ctx
        .guest_memory
        .reserve_memory(
            decision
                .json_bytes()
                .saturating_mul(OUTPUT_PROCESSING_FACTOR),
        )
        .await;
    let plan = plan::plan(
        decision,
        &observed.parent,
        observed.placement(ctx),
        &guest.child_kinds,
        &ctx.settings.field_manager,
    )?;
    Ok((plan, processing))
}

/// The text a panic was raised with.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
