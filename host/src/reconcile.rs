//! One reconcile of one parent: observe (caches), decide (guest), check (output policy), apply,
//! prune, report (status).
//!
//! # Guarantees
//! - Nothing is pruned on incomplete information: a reconcile runs only when every child kind of
//!   the active guest has listed completely, and prunes only when the guest succeeded, its
//!   output passed the policy and every apply of this reconcile succeeded.
//! - A guest failure or policy violation changes no child; it is reported in the parent's
//!   `Ready` condition and retried with per-parent exponential backoff.
//! - An invalid spec is reported and not retried until the parent changes.
//! - One reconcile uses one guest throughout, even if a hot swap happens meanwhile.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use serde_json::Value;
use tracing::{Instrument, debug, info, info_span};

use crate::active::{ActiveGuest, GuestSlot};
use crate::apply::{self, ParentRef, Pruned};
use crate::bindings::Observed;
use crate::claims::{ClaimedName, NameClaims};
use crate::config::RunSettings;
use crate::foreign::Holder;
use crate::guest::GuestError;
use crate::kinds::ResolvedKind;
use crate::metrics::{ChildAction, GuestFailureKind, Metrics, ReconcileResult};
use crate::owned::{ObservedChild, OwnedChildren};
use crate::parent_state::UNSETTLED_WINDOW;
use crate::policy::{self, DesiredChild, PolicyViolation};
use crate::report::Reporter;
use crate::status::{FailureReason, Outcome};

/// Shortest requeue a guest may ask for, so a guest cannot make the host spin.
const MIN_REQUEUE: Duration = Duration::from_secs(1);
/// Children applied at the same time for one parent.
const APPLY_CONCURRENCY: usize = 8;

/// Why a reconcile failed (and will be retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The parent lacks a namespace or UID (it did not come from the API server).
    #[error("parent has no {0}")]
    MissingMetadata(&'static str),
    /// The guest trapped, timed out, or reported a transient failure.
    #[error(transparent)]
    Guest(GuestError),
    /// The blocking task running the guest panicked or was cancelled.
    #[error("guest task failed")]
    GuestTask(#[source] tokio::task::JoinError),
    /// The guest's output broke the output policy; nothing was applied.
    #[error("guest output refused")]
    Policy(#[source] PolicyViolation),
    /// One or more applies or prunes failed.
    #[error("{0}")]
    Write(String),
    /// The status could not be written.
    #[error("writing status")]
    Status(#[source] kube::Error),
    /// The guest asked for the same child with new content again and again while its parent did
    /// not change: nothing was written.
    #[error("{0}")]
    Unsettled(String),
    /// The reconcile panicked: a bug in the host, contained to this parent (retried with
    /// backoff) instead of ending the process and every other parent's reconciles with it.
    #[error("the reconcile panicked (a bug in the host): {0}")]
    Panicked(String),
}

impl ReconcileError {
    fn result(&self) -> ReconcileResult {
        match self {
            ReconcileError::Guest(_)
            | ReconcileError::GuestTask(_)
            | ReconcileError::Unsettled(_) => ReconcileResult::GuestFailed,
            ReconcileError::Policy(_) => ReconcileResult::PolicyViolation,
            ReconcileError::Write(_) => ReconcileResult::ApplyFailed,
            ReconcileError::Status(_) => ReconcileResult::StatusFailed,
            ReconcileError::MissingMetadata(_) | ReconcileError::Panicked(_) => {
                ReconcileResult::Other
            }
        }
    }
}

impl GuestError {
    /// The metric kind of a failed call; `None` for an invalid spec, which is a verdict, not a
    /// failure of the guest.
    fn failure_kind(&self) -> Option<GuestFailureKind> {
        match self {
            GuestError::InvalidSpec(_) => None,
            GuestError::Transient(_) => Some(GuestFailureKind::Transient),
            GuestError::Timeout(_) => Some(GuestFailureKind::Timeout),
            GuestError::OutOfMemory(_) => Some(GuestFailureKind::Memory),
            GuestError::Trap(_) => Some(GuestFailureKind::Trap),
            GuestError::OutputTooLarge(_) => Some(GuestFailureKind::InvalidOutput),
        }
    }
}

impl PolicyViolation {
    fn failure_kind(&self) -> GuestFailureKind {
        match self {
            PolicyViolation::NotAnObject { .. } | PolicyViolation::InvalidStatus { .. } => {
                GuestFailureKind::InvalidOutput
            }
            _ => GuestFailureKind::Policy,
        }
    }
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub slot: Arc<GuestSlot>,
    pub parent_kind: ResolvedKind,
    pub children: Arc<OwnedChildren>,
    pub settings: RunSettings,
    pub metrics: Arc<Metrics>,
    /// Publishes Kubernetes Events about parents.
    pub events: crate::events::EventPublisher,
    /// The memory budget of guest calls running at once, in MiB permits: a call holds
    /// `--guest-memory-mib` of them while it runs, so all calls together stay within
    /// `--guest-memory-budget-mib` (forty calls holding 60 MiB each took a host to 1.97 GB).
    pub guest_memory: Arc<tokio::sync::Semaphore>,
    /// Child names this host's parents are creating now (see `claims.rs`).
    pub claims: NameClaims,
    /// Failures, reconciled generation and written status per parent (by UID).
    pub parent_states: crate::parent_state::ParentStates,
}

/// The text a panic was raised with.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// `namespace/name`, how the guest's log lines name the parent they were written for.
fn parent_key(parent: &DynamicObject) -> String {
    format!(
        "{}/{}",
        parent.namespace().unwrap_or_default(),
        parent.name_any()
    )
}

/// The reconcile kube-runtime's controller calls.
pub async fn reconcile(
    parent: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let active = ctx.slot.current();
    let span = info_span!(
        "reconcile",
        namespace = parent.namespace().as_deref().unwrap_or_default(),
        name = %parent.name_any(),
        generation = parent.metadata.generation.unwrap_or_default(),
        guest = %active.guest.digest(),
    );
    let _in_flight = ctx.metrics.in_flight();
    let started = Instant::now();
    let reconciled = AssertUnwindSafe(reconcile_parent(&parent, &ctx, &active).instrument(span))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let message = panic_message(panic.as_ref());
            tracing::error!(parent = %parent_key(&parent), %message, "a reconcile panicked; this parent is retried with backoff, the others are not affected");
            Err(ReconcileError::Panicked(message))
        });
    let (result, label) = match reconciled {
        Ok((action, label)) => (Ok(action), label),
        Err(error) => {
            let label = error.result();
            (Err(error), label)
        }
    };
    ctx.metrics
        .reconcile_finished(label, started.elapsed().as_secs_f64());
    ctx.parent_states.reconciled(&parent);
    if result.is_ok() {
        ctx.parent_states.clear_failures(&parent);
    }
    result
}

/// The reconcile proper; `Ok` carries how it ended for the metrics (an invalid spec is `Ok`:
/// nothing to retry until the parent changes).
async fn reconcile_parent(
    parent: &DynamicObject,
    ctx: &Context,
    active: &ActiveGuest,
) -> Result<(Action, ReconcileResult), ReconcileError> {
    let namespace = parent
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let uid = parent.uid().ok_or(ReconcileError::MissingMetadata("uid"))?;
    if !ctx.children.synced(&active.child_kinds) {
        // Start-up and hot swaps wait for caches before activating a guest, and relists swap in
        // complete indexes, so this is only the guard of the never-prune-on-incomplete-
        // information invariant.
        return Ok((
            Action::requeue(Duration::from_secs(1)),
            ReconcileResult::Other,
        ));
    }
    let report = Reporter {
        client: &ctx.client,
        parent_kind: &ctx.parent_kind,
        field_manager: &ctx.settings.field_manager,
        events: &ctx.events,
        parent,
        stamp: active.status_stamp(),
        states: &ctx.parent_states,
    };
    let finalizing = parent.metadata.deletion_timestamp.is_some();
    let observed_children = ctx.children.owned_by(&uid, &namespace, &active.child_kinds);
    let observed = Observed {
        parent: guest_json(parent, &ctx.parent_kind),
        children: observed_children
            .iter()
            .map(|c| guest_json(&c.object, &c.kind))
            .collect(),
        finalizing,
    };

    let guest = Arc::clone(&active.guest);
    let parent_key = parent_key(parent);
    // The guest's log lines belong to this reconcile's span, on whichever thread it runs.
    let span = tracing::Span::current();
    let memory_permits =
        u32::try_from(ctx.settings.limits.max_memory_bytes.div_ceil(1 << 20)).unwrap_or(u32::MAX);
    // Waits while other calls hold the budget; never closed, so an error cannot happen.
    let memory = ctx
        .guest_memory
        .acquire_many(memory_permits)
        .await
        .map_err(|_| ReconcileError::Panicked("the guest memory budget was closed".into()))?;
    let (answer, seconds) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let answer = span.in_scope(|| guest.reconcile(&observed, &parent_key));
        (answer, started.elapsed().as_secs_f64())
    })
    .await
    .map_err(ReconcileError::GuestTask)?;
    // Released as soon as the call ends (the store and its memory are gone), not after the
    // applies that follow.
    drop(memory);
    ctx.metrics.guest_called(seconds);
    let desired = match answer {
        Ok(desired) => desired,
        Err(GuestError::InvalidSpec(reason)) => {
            info!(%reason, "guest rejected the spec; waiting for it to change");
            report
                .failure(
                    FailureReason::InvalidSpec,
                    format!("invalid spec: {reason}"),
                )
                .await;
            return Ok((Action::await_change(), ReconcileResult::InvalidSpec));
        }
        Err(error) => {
            if let Some(kind) = error.failure_kind() {
                ctx.metrics.guest_failed(kind);
            }
            report
                .failure(FailureReason::GuestFailed, error.to_string())
                .await;
            return Err(ReconcileError::Guest(error));
        }
    };

    let checked =
        policy::check(&desired.children, &namespace, &active.child_kinds).and_then(|children| {
            let status = desired
                .status
                .as_deref()
                .map(policy::check_status)
                .transpose()?;
            Ok((children, status))
        });
    let (desired_children, guest_status) = match checked {
        Ok(checked) => checked,
        Err(violation) => {
            ctx.metrics.guest_failed(violation.failure_kind());
            report
                .failure(FailureReason::PolicyViolation, violation.to_string())
                .await;
            return Err(ReconcileError::Policy(violation));
        }
    };
    let requeue = desired.requeue_after_ms.map_or(ctx.settings.resync, |ms| {
        Duration::from_millis(ms).max(MIN_REQUEUE)
    });

    if finalizing {
        // Garbage collection removes the children of a parent being deleted; re-applying them
        // would race it.
        report
            .outcome(&Outcome::Reconciled { guest_status })
            .await?;
        return Ok((Action::await_change(), ReconcileResult::Success));
    }

    let parent_ref = ParentRef {
        api_version: ctx.parent_kind.resource.api_version.clone(),
        kind: ctx.parent_kind.resource.kind.clone(),
        name: parent.name_any(),
        uid,
    };
    if let Err(violation) = check_no_take_over(
        ctx,
        &namespace,
        &parent_ref,
        &desired_children,
        &observed_children,
    )
    .await?
    {
        ctx.metrics.guest_failed(violation.failure_kind());
        report
            .failure(FailureReason::PolicyViolation, violation.to_string())
            .await;
        return Err(ReconcileError::Policy(violation));
    }
    let wanted: HashSet<(String, String)> = desired_children
        .iter()
        .map(|c| (c.kind.display_name(), c.name.clone()))
        .collect();
    let planned = plan_writes(
        ctx,
        &namespace,
        &parent_ref,
        desired_children,
        &observed_children,
    );
    check_output_settles(ctx, parent, &planned, &report).await?;
    let mut writes = write_children(ctx, &namespace, planned).await;

    if writes.failures.is_empty() {
        for child in &observed_children {
            if wanted.contains(&(child.kind.display_name(), child.object.name_any())) {
                continue;
            }
            match prune_child(ctx, &namespace, child).await {
                Ok(Pruned::Deleted) => writes.pruned.push(format!(
                    "{} {}",
                    child.kind.resource.kind,
                    child.object.name_any()
                )),
                Ok(Pruned::AlreadyGone) => {}
                Err(failure) => writes.failures.push(failure),
            }
        }
    }
    let (applied, unchanged, pruned) = (writes.applied, writes.unchanged, writes.pruned.len());
    if !writes.failures.is_empty() {
        report
            .children_changed(&writes.created, &writes.pruned)
            .await;
        let message = crate::summarize_failures(&writes.failures);
        report
            .failure(FailureReason::ApplyFailed, message.clone())
            .await;
        return Err(ReconcileError::Write(message));
    }
    ctx.metrics.children(ChildAction::Applied, applied);
    ctx.metrics.children(ChildAction::Unchanged, unchanged);
    ctx.metrics.children(ChildAction::Pruned, pruned);
    if applied + pruned > 0 {
        info!(applied, unchanged, pruned, "children reconciled");
    } else {
        debug!(unchanged, "children already as desired");
    }
    // The Event and the status are independent writes: one round trip instead of two.
    let outcome = Outcome::Reconciled { guest_status };
    let ((), written) = futures::join!(
        report.children_changed(&writes.created, &writes.pruned),
        report.outcome(&outcome)
    );
    if let Err(error) = written {
        report_status_refused(&report, &error).await;
        return Err(error);
    }
    Ok((Action::requeue(requeue), ReconcileResult::Success))
}

/// Refuses the reconcile, before anything is written, when the guest's output does not settle:
/// one child to be written with new content again and again while the parent did not change.
async fn check_output_settles(
    ctx: &Context,
    parent: &DynamicObject,
    planned: &[PlannedWrite],
    report: &Reporter<'_>,
) -> Result<(), ReconcileError> {
    let sending: Vec<(String, String)> = planned
        .iter()
        .filter(|w| !w.satisfied)
        .map(|w| (w.describe(), w.digest.clone()))
        .collect();
    let Some((child, contents)) = ctx
        .parent_states
        .record_writes(parent, &sending, Instant::now())
    else {
        return Ok(());
    };
    let message = format!(
        "the guest's output does not settle: {child} was to be written with {contents} \
         different contents within {}s while the parent did not change (a timestamp or a \
         random value in the output?); retrying with backoff",
        UNSETTLED_WINDOW.as_secs()
    );
    ctx.metrics.guest_failed(GuestFailureKind::InvalidOutput);
    report
        .failure(FailureReason::OutputUnsettled, message.clone())
        .await;
    Err(ReconcileError::Unsettled(message))
}

/// A status the API server refused is reported like any failure: the status written instead
/// keeps the previous one (not the refused, perhaps oversized, guest status) with Ready=False,
/// and a Warning Event.
async fn report_status_refused(report: &Reporter<'_>, error: &ReconcileError) {
    let reason = match error {
        ReconcileError::Status(source) => crate::api_error_text(source),
        other => other.to_string(),
    };
    report
        .failure(
            FailureReason::StatusFailed,
            format!("the API server refused the status: {reason}"),
        )
        .await;
}

/// The take-over rule of the output policy: every desired child the caches do not show as this
/// parent's must not exist under another controller, or under none. The caches know every name
/// of a watched kind (the host's children in full, other objects by name and controller); only
/// while they are still listing is the API server asked, one GET per such child.
///
/// # Errors
/// `Err` when the API server cannot answer; `Ok(Err(violation))` when a child would be taken
/// over.
///
/// A refused parent waits for the name: it is reconciled again as soon as the watch sees that
/// object deleted, not only at its next backoff retry.
async fn check_no_take_over(
    ctx: &Context,
    namespace: &str,
    parent: &ParentRef,
    desired: &[DesiredChild],
    observed: &[ObservedChild],
) -> Result<Result<(), PolicyViolation>, ReconcileError> {
    let parent_uid = parent.uid.as_str();
    let refused = |child: &DesiredChild, violation: PolicyViolation| {
        ctx.children
            .wait_for_name(&child.kind, namespace, &child.name, &parent.name);
        Ok(Err(violation))
    };
    let mut fetches = Vec::new();
    let mut holders = Vec::new();
    let mut unseen = Vec::new();
    for child in desired {
        let known = observed.iter().any(|o| {
            o.kind.gvk == child.kind.gvk
                && o.object.metadata.name.as_deref() == Some(child.name.as_str())
        });
        if known {
            continue;
        }
        unseen.push(child);
        match ctx.children.holder(&child.kind, namespace, &child.name) {
            Some(holder) => holders.push((child, holder)),
            None => {
                let api = Api::<DynamicObject>::namespaced_with(
                    ctx.client.clone(),
                    namespace,
                    &child.kind.resource,
                );
                fetches.push(fetch(api, child, &ctx.parent_kind.resource));
            }
        }
    }
    let fetched: Vec<_> = futures::stream::iter(fetches)
        .buffer_unordered(APPLY_CONCURRENCY)
        .collect()
        .await;
    for (child, found) in fetched {
        let found = found.map_err(|e| {
            ReconcileError::Write(format!(
                "checking {} {}: {}",
                child.kind.resource.kind,
                child.name,
                crate::api_error_text(&e)
            ))
        })?;
        holders.push((child, found));
    }
    for (child, holder) in holders {
        match holder {
            None => {}
            // Ours, and the cache has not caught up yet (or someone removed the host's label).
            Some(Holder::Parent { uid, .. }) if uid == parent_uid => {}
            Some(holder) => {
                let violation = PolicyViolation::TakeOver {
                    kind: child.kind.display_name(),
                    name: child.name.clone(),
                    controller: holder.describe(&ctx.parent_kind.resource),
                };
                return refused(child, violation);
            }
        }
    }
    // The caches do not show this host's own writes before the watch does: another parent may
    // be creating one of these names right now.
    let names: Vec<ClaimedName> = unseen
        .iter()
        .map(|child| ClaimedName {
            group: child.kind.gvk.group.clone(),
            kind: child.kind.gvk.kind.clone(),
            namespace: namespace.to_string(),
            name: child.name.clone(),
        })
        .collect();
    if let Err((name, other)) = ctx.claims.claim_all(&names, parent_uid) {
        // `names` was made from `unseen`, in order.
        let index = names.iter().position(|n| *n == name).unwrap_or_default();
        let child = unseen[index];
        let violation = PolicyViolation::NameClaimed {
            kind: child.kind.display_name(),
            name: name.name,
            parent_uid: other,
        };
        return refused(child, violation);
    }
    Ok(Ok(()))
}

/// Who holds a child's name, asked of the API server.
async fn fetch<'a>(
    api: Api<DynamicObject>,
    child: &'a DesiredChild,
    parent: &ApiResource,
) -> (&'a DesiredChild, Result<Option<Holder>, kube::Error>) {
    let found = api.get_opt(&child.name).await;
    (
        child,
        found.map(|object| object.map(|o| Holder::of(&o.metadata, parent))),
    )
}

/// One desired child prepared for apply (host-owned fields added), and whether it must be sent.
struct PlannedWrite {
    child: DesiredChild,
    /// `(namespace, name)`, how the child caches key it.
    key: (String, String),
    digest: String,
    /// The child's version in the cache (`None`: not there).
    seen_version: Option<String>,
    /// Already as desired, or written and not yet seen back: no request.
    satisfied: bool,
}

impl PlannedWrite {
    fn describe(&self) -> String {
        format!("{} {}", self.child.kind.resource.kind, self.child.name)
    }
}

/// Prepares every desired child and decides which need a request.
fn plan_writes(
    ctx: &Context,
    namespace: &str,
    parent: &ParentRef,
    desired: Vec<DesiredChild>,
    observed: &[ObservedChild],
) -> Vec<PlannedWrite> {
    let field_manager = ctx.settings.field_manager.as_str();
    desired
        .into_iter()
        .map(|mut child| {
            apply::prepare(&mut child.object, parent, field_manager);
            let current = observed.iter().find(|o| {
                o.kind.gvk == child.kind.gvk
                    && o.object.metadata.name.as_deref() == Some(child.name.as_str())
            });
            let key = (namespace.to_string(), child.name.clone());
            let digest = child.object["metadata"]["annotations"][apply::DESIRED_DIGEST_ANNOTATION]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let seen_version = current.and_then(|o| o.object.metadata.resource_version.clone());
            let satisfied = current.is_some_and(|o| apply::is_satisfied(&child.object, &o.object))
                || ctx.children.write_in_flight(
                    &child.kind,
                    &key,
                    seen_version.as_deref(),
                    &digest,
                );
            PlannedWrite {
                child,
                key,
                digest,
                seen_version,
                satisfied,
            }
        })
        .collect()
}

/// Applies the planned children that need it, a few at a time.
async fn write_children(ctx: &Context, namespace: &str, planned: Vec<PlannedWrite>) -> Writes {
    let field_manager = ctx.settings.field_manager.as_str();
    let writes = futures::stream::iter(planned.into_iter().map(|write| {
        let api = Api::<DynamicObject>::namespaced_with(
            ctx.client.clone(),
            namespace,
            &write.child.kind.resource,
        );
        async move {
            if write.satisfied {
                return Ok(None);
            }
            let what = write.describe();
            let created = write.seen_version.is_none();
            apply::apply(&api, &write.child.name, &write.child.object, field_manager)
                .await
                .map_err(|e| format!("applying {what}: {}", crate::api_error_text(&e)))?;
            ctx.children.wrote(
                &write.child.kind,
                write.key,
                write.seen_version,
                write.digest,
            );
            Ok(Some((what, created)))
        }
    }))
    .buffer_unordered(APPLY_CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    let mut summary = Writes::default();
    for write in writes {
        match write {
            Ok(None) => summary.unchanged += 1,
            Ok(Some((what, created))) => {
                summary.applied += 1;
                if created {
                    summary.created.push(what);
                }
            }
            Err(failure) => summary.failures.push(failure),
        }
    }
    summary
}

/// What applying and pruning did in one reconcile.
#[derive(Default)]
struct Writes {
    applied: usize,
    unchanged: usize,
    /// `Kind name` of children applied that did not exist before.
    created: Vec<String>,
    /// `Kind name` of children deleted.
    pruned: Vec<String>,
    failures: Vec<String>,
}

async fn prune_child(
    ctx: &Context,
    namespace: &str,
    child: &ObservedChild,
) -> Result<Pruned, String> {
    let resource = &child.kind.resource;
    let name = child.object.name_any();
    let uid = child.object.uid().unwrap_or_default();
    let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), namespace, resource);
    let pruned = apply::prune(&api, &name, &uid).await.map_err(|e| {
        format!(
            "pruning {} {name}: {}",
            resource.kind,
            crate::api_error_text(&e)
        )
    })?;
    if pruned == Pruned::Deleted {
        info!(kind = %resource.kind, %name, "pruned a child the guest no longer wants");
    }
    Ok(pruned)
}

/// An object as the guest sees it: as the API server returned it, with `apiVersion`/`kind` even
/// when it came in a list response (whose items lack them; the guest is promised them), minus
/// `managedFields` (bookkeeping of server-side apply, large and of no use to a decision).
pub fn guest_json(object: &DynamicObject, kind: &ResolvedKind) -> String {
    // Cached children are already in this shape (see `owned::normalize`): written as they are,
    // without the detour through a `Value` tree (a fifth of a reconcile's CPU before).
    if object.types.is_some() && object.metadata.managed_fields.is_none() {
        return serde_json::to_string(object).expect("objects from the API server serialize");
    }
    let mut value = serde_json::to_value(object).expect("objects from the API server serialize");
    if value.get("kind").is_none() {
        value["apiVersion"] = Value::String(kind.resource.api_version.clone());
        value["kind"] = Value::String(kind.resource.kind.clone());
    }
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    value.to_string()
}
