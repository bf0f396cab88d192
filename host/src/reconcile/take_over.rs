//! The take-over rule of the output policy: every planned child the caches do not show as this
//! parent's must not exist under another controller, or under none. The caches know every name
//! of a watched kind (the host's children in full, other objects by name and controller); only
//! while they are still listing is the API server asked, one GET per such child.
//!
//! The caches do not show this host's own writes before the watch does, so the names a parent is
//! about to create are also claimed (`claims.rs`): of two parents racing for one name, one wins.
//! A refused parent waits for the name: it is reconciled again as soon as the watch sees that
//! object deleted, not only at its next backoff retry.

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::reflector::ObjectRef;

use crate::cluster::{Holder, ResourceName};
use crate::error_text::api_error_text;

use super::Context;
use super::apply::WRITE_CONCURRENCY;
use super::error::Failure;
use super::observe::Observed;
use super::plan::{Plan, PlannedChild};
use super::policy::PolicyViolation;

/// Checks that the plan takes over nothing and claims the names it will create.
///
/// # Errors
/// [`Failure::Policy`] with [`PolicyViolation::TakeOver`] or [`PolicyViolation::NameClaimed`];
/// [`Failure::Write`] when the API server could not say who holds a name.
pub async fn check(ctx: &Context, observed: &Observed, plan: &Plan) -> Result<(), Failure> {
    let unseen = unseen(observed, plan);
    if let Some((child, violation)) = first_taken_over(ctx, observed, &unseen).await? {
        return Err(refused(ctx, observed, child, violation));
    }
    let names: Vec<ResourceName> = unseen
        .iter()
        .map(|child| ResourceName {
            group: child.kind.gvk.group.clone(),
            kind: child.kind.gvk.kind.clone(),
            namespace: child.namespace.clone(),
            name: child.name.clone(),
        })
        .collect();
    if let Err((name, other)) = ctx.claims.claim_all(&names, &observed.parent.uid) {
        // `names` was made from `unseen`, in order.
        let index = names.iter().position(|n| *n == name).unwrap_or_default();
        let child = unseen[index];
        let violation = PolicyViolation::NameClaimed {
            kind: child.kind.display_name(),
            name: name.name,
            parent_uid: other,
        };
        return Err(refused(ctx, observed, child, violation));
    }
    Ok(())
}

/// The take-over rule alone, read only: no name claimed, no wait for a name. What a preview
/// (`preview.rs`) checks.
///
/// # Errors
/// [`Failure::Policy`] with [`PolicyViolation::TakeOver`]; [`Failure::Write`] when the API
/// server could not say who holds a name.
pub async fn check_read_only(
    ctx: &Context,
    observed: &Observed,
    plan: &Plan,
) -> Result<(), Failure> {
    match first_taken_over(ctx, observed, &unseen(observed, plan)).await? {
        Some((_, violation)) => Err(Failure::Policy(violation)),
        None => Ok(()),
    }
}

/// The planned children the caches do not show as this parent's.
fn unseen<'p>(observed: &Observed, plan: &'p Plan) -> Vec<&'p PlannedChild> {
    plan.children
        .iter()
        .filter(|child| {
            observed
                .child(&child.kind, &child.namespace, &child.name)
                .is_none()
        })
        .collect()
}

/// The first of `unseen` whose name another controller, or none, holds.
async fn first_taken_over<'p>(
    ctx: &Context,
    observed: &Observed,
    unseen: &[&'p PlannedChild],
) -> Result<Option<(&'p PlannedChild, PolicyViolation)>, Failure> {
    for (child, holder) in holders(ctx, unseen).await? {
        match holder {
            None => {}
            // Ours, and the cache has not caught up yet (or someone removed the host's label).
            Some(holder) if holder.uid() == Some(observed.parent.uid.as_str()) => {}
            Some(holder) => {
                let violation = PolicyViolation::TakeOver {
                    kind: child.kind.display_name(),
                    name: child.name.clone(),
                    controller: holder.to_text(),
                };
                return Ok(Some((child, violation)));
            }
        }
    }
    Ok(None)
}

/// The parent waits for the name it was refused.
fn refused(
    ctx: &Context,
    observed: &Observed,
    child: &PlannedChild,
    violation: PolicyViolation,
) -> Failure {
    let parent = ObjectRef::new_with(&observed.parent.name, ctx.parent_kind.resource.clone());
    let parent = match &observed.namespace {
        Some(namespace) => parent.within(namespace),
        None => parent,
    };
    ctx.children
        .wait_for_name(&child.kind, &child.namespace, &child.name, parent);
    Failure::Policy(violation)
}

/// Who holds each of `children`'s names: from the caches, or (while they list) the API server.
async fn holders<'p>(
    ctx: &Context,
    children: &[&'p PlannedChild],
) -> Result<Vec<(&'p PlannedChild, Option<Holder>)>, Failure> {
    let mut known = Vec::new();
    let mut fetches = Vec::new();
    for &child in children {
        match ctx
            .children
            .holder(&child.kind, &child.namespace, &child.name)
        {
            Some(holder) => known.push((child, holder)),
            None => {
                let api = child.kind.api(&ctx.client, child.namespace());
                fetches.push(fetch(api, child));
            }
        }
    }
    let fetched: Vec<_> = futures::stream::iter(fetches)
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    for (child, found) in fetched {
        let found = found.map_err(|e| {
            Failure::write(format!(
                "checking {}: {}",
                child.to_text(),
                api_error_text(&e)
            ))
        })?;
        known.push((child, found));
    }
    Ok(known)
}

/// Who holds a child's name, asked of the API server.
async fn fetch(
    api: Api<DynamicObject>,
    child: &PlannedChild,
) -> (&PlannedChild, Result<Option<Holder>, kube::Error>) {
    let found = api.get_opt(&child.name).await;
    (
        child,
        found.map(|object| object.map(|o| Holder::of(&o.metadata))),
    )
}
