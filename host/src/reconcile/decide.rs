//! The guest's decision for one parent: the call, on a blocking thread, within the shared budget
//! of guest memory.

use std::time::Instant;

use kube::api::DynamicObject;
use tracing::info;

use crate::sandbox::{Decision, LoadedGuest, Observation};

use super::Context;
use super::active_guest::ActiveGuest;
use super::error::Failure;
use super::observe::parent_key;

/// Calls the guest with `observation`. The call first reserves its memory limit from the
/// budget of all calls running at once (`--guest-memory-budget-mib`), so many parents cannot add
/// up past the pod's memory (forty calls holding 60 MiB each took a host to 1.97 GB), shared
/// fairly between the guests of the process (see `budget.rs`), and
/// releases it as soon as the call ends, not after the applies that follow.
///
/// # Errors
/// [`Failure::InvalidSpec`] (the guest's verdict), [`Failure::Guest`] or
/// [`Failure::GuestTask`]; [`Failure::Stopping`] when the controller stopped while the call
/// waited for memory or ran.
pub async fn decide(
    ctx: &Context,
    guest: &ActiveGuest,
    parent: &DynamicObject,
    observation: Observation,
) -> Result<Decision, Failure> {
    let (answer, seconds) = call(ctx, guest, parent, observation).await?;
    ctx.metrics.guest_called(seconds);
    answer.map_err(|error| {
        let failure = Failure::from(error);
        if let Failure::InvalidSpec(reason) = &failure {
            info!(%reason, "guest rejected the spec; waiting for it to change");
        }
        failure
    })
}

/// Calls `guest` as [`decide`] does, for a guest that is not the one serving (a shadow
/// candidate, `diff`'s): its calls are not the active guest's in the metrics, and its verdicts
/// are not logged.
///
/// # Errors
/// As [`decide`].
pub async fn decide_unrecorded(
    ctx: &Context,
    guest: &ActiveGuest,
    parent: &DynamicObject,
    observation: Observation,
) -> Result<Decision, Failure> {
    let (answer, _seconds) = call(ctx, guest, parent, observation).await?;
    answer.map_err(Failure::from)
}

/// The guest's answer for `observation`, and how long the call took in seconds.
async fn call(
    ctx: &Context,
    guest: &ActiveGuest,
    parent: &DynamicObject,
    observation: Observation,
) -> Result<(Result<Decision, crate::sandbox::GuestError>, f64), Failure> {
    let parent_key = parent_key(parent);
    on_guest_thread(ctx, guest, move |loaded| {
        let started = Instant::now();
        let answer = loaded.reconcile(&observation, &parent_key);
        (answer, started.elapsed().as_secs_f64())
    })
    .await
}

/// Runs `call` with the guest on a blocking thread, within this reconcile's span, once its
/// memory limit is reserved from the budget of all calls running at once. The reservation goes
/// with the call: a call given up (the controller stopping) still runs to its end or its
/// deadline on its thread, and holds its memory until then; nothing of it is used.
///
/// # Errors
/// [`Failure::Stopping`] when the controller stopped while the call waited for memory or ran;
/// [`Failure::GuestTask`] when the blocking task failed.
pub(super) async fn on_guest_thread<T: Send + 'static>(
    ctx: &Context,
    guest: &ActiveGuest,
    call: impl FnOnce(&LoadedGuest) -> T + Send + 'static,
) -> Result<T, Failure> {
    let loaded = std::sync::Arc::clone(&guest.guest);
    // The guest's log lines belong to this reconcile's span, on whichever thread it runs.
    let span = tracing::Span::current();
    // Waits while other calls hold the budget, taking turns with other guests' calls; gives up
    // when the controller stops.
    let memory = ctx
        .unless_stopping(
            ctx.guest_memory
                .reserve_memory(loaded.limits().max_memory_bytes),
        )
        .await
        .ok_or(Failure::Stopping)?;
    let task = tokio::task::spawn_blocking(move || {
        let _memory = memory;
        span.in_scope(|| call(&loaded))
    });
    // A stopping controller (its guest removed, its settings changed) does not wait for a slow
    // call to reach its deadline: it gives the reconcile up.
    ctx.unless_stopping(task)
        .await
        .ok_or(Failure::Stopping)?
        .map_err(|e| Failure::GuestTask(e.to_string()))
}
