//! The guest's decision for one parent: the call, on a blocking thread, within the shared budget
//! of guest memory.

use std::time::Instant;

use kube::api::DynamicObject;
use tracing::info;

use crate::sandbox::{Decision, Observation};

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
    let loaded = std::sync::Arc::clone(&guest.guest);
    let parent_key = parent_key(parent);
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
    // The reservation goes with the call: a call given up below still runs to its end or its
    // deadline on its thread, and holds its memory until then.
    let call = tokio::task::spawn_blocking(move || {
        let _memory = memory;
        let started = Instant::now();
        let answer = span.in_scope(|| loaded.reconcile(&observation, &parent_key));
        (answer, started.elapsed().as_secs_f64())
    });
    // A stopping controller (its guest removed, its settings changed) does not wait for a slow
    // call to reach its deadline: it gives the reconcile up, and nothing of the call is used.
    let (answer, seconds) = ctx
        .unless_stopping(call)
        .await
        .ok_or(Failure::Stopping)?
        .map_err(|e| Failure::GuestTask(e.to_string()))?;
    ctx.metrics.guest_called(seconds);
    answer.map_err(|error| {
        let failure = Failure::from(error);
        if let Failure::InvalidSpec(reason) = &failure {
            info!(%reason, "guest rejected the spec; waiting for it to change");
        }
        failure
    })
}
