//! What a guest would do for one parent, decided exactly as a reconcile decides (observe → related
//! objects → decide → plan → take-over rule) and never written: nothing is applied, pruned,
//! claimed, published, or kept in the parent's state or the reverse index. `diff` previews a
//! guest for every parent against the live caches.

use kube::api::DynamicObject;

use super::active_guest::ActiveGuest;
use super::error::Failure;
use super::observe::{self, Observed, observation};
use super::plan::{self, Plan};
use super::{Context, OUTPUT_PROCESSING_FACTOR, decide, related, take_over};

/// What the guest saw and what the host would apply for it.
pub struct Preview {
    pub observed: Observed,
    pub plan: Plan,
}

/// Previews `guest` for `parent`.
///
/// # Errors
/// The [`Failure`] the same reconcile would end with before writing: the caches not listed, the
/// guest's verdict or failure, its requirements or output refused, a name held by another
/// controller.
pub async fn preview(
    ctx: &Context,
    parent: &DynamicObject,
    guest: &ActiveGuest,
) -> Result<Preview, Failure> {
    let preview = plan_only(ctx, parent, guest).await?;
    if !preview.observed.finalizing {
        take_over::check_read_only(ctx, &preview.observed, &preview.plan).await?;
    }
    Ok(preview)
}

/// [`preview`] without the take-over rule, which may ask the API server who holds a name: what
/// a shadow candidate decides, from the caches alone. Its calls are not counted as the active
/// guest's.
///
/// # Errors
/// As [`preview`], but for a name held by another controller.
pub async fn plan_only(
    ctx: &Context,
    parent: &DynamicObject,
    guest: &ActiveGuest,
) -> Result<Preview, Failure> {
    let observed = observe::observe(ctx, parent, guest)?;
    let related = related::read_only(ctx, guest, parent, observed.namespace.as_deref()).await?;
    let shown = observation(parent, &ctx.parent_kind, &observed).with_related(related);
    let decision = decide::decide_unrecorded(ctx, guest, parent, shown).await?;
    // As in a reconcile: checking and preparing the answer is memory of the host's budget.
    let _processing = ctx
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
    Ok(Preview { observed, plan })
}
