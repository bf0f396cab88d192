//! The controller: watches the guest's parent kind and every declared child kind, and reconciles
//! each parent through the guest: observe, decide (guest), check (policy), apply, prune, report.
//!
//! # Guarantees
//! - Nothing is pruned on incomplete information: reconciles wait until every child cache has
//!   listed completely, and prune only when the guest succeeded, its output passed the policy and
//!   every apply of this reconcile succeeded.
//! - A guest failure or policy violation changes no child; it is reported in the parent's
//!   `Ready` condition and retried with per-parent exponential backoff.
//! - An invalid spec is reported and not retried until the parent changes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryFutureExt};
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::Value;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::apply::{self, MANAGED_BY_LABEL, ParentRef, Pruned};
use crate::bindings::Observed;
use crate::config::RunSettings;
use crate::guest::{GuestError, LoadedGuest};
use crate::kinds::{self, DiscoveryError, ResolvedKind};
use crate::owned::{ObservedChild, OwnedChildren, OwnerKind};
use crate::policy::{self, PolicyViolation};
use crate::status::{self, FailureReason, Outcome};

/// First retry delay after a failed reconcile; doubles per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay after failures.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Shortest requeue a guest may ask for, so a guest cannot make the host spin.
const MIN_REQUEUE: Duration = Duration::from_secs(1);
/// Children applied at the same time for one parent.
const APPLY_CONCURRENCY: usize = 8;

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The parent kind or a child kind is not served by the API server.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The guest's parent kind is cluster-scoped; children could not be kept in its namespace.
    #[error(
        "the guest's parent kind {0} is cluster-scoped; only namespaced parent kinds are supported"
    )]
    ClusterScopedParent(String),
}

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
    #[error("guest task failed: {0}")]
    GuestTask(#[source] tokio::task::JoinError),
    /// The guest's output broke the output policy; nothing was applied.
    #[error("guest output refused: {0}")]
    Policy(#[source] PolicyViolation),
    /// One or more applies or prunes failed.
    #[error("{0}")]
    Write(String),
    /// The status could not be written.
    #[error("writing status: {0}")]
    Status(#[source] kube::Error),
}

/// Everything a reconcile needs, shared by all of them.
struct Context {
    client: Client,
    guest: Arc<LoadedGuest>,
    parent_kind: ResolvedKind,
    children: Arc<OwnedChildren>,
    settings: RunSettings,
    /// Consecutive failures per parent (namespace/name), for backoff.
    failures: Mutex<HashMap<String, u32>>,
}

/// Resolves the guest's kinds, starts the child watches, waits for them to sync, then runs the
/// controller until SIGTERM or Ctrl-C (finishing in-flight reconciles).
///
/// # Errors
/// A [`StartError`] when a kind cannot be used.
pub async fn run(
    client: Client,
    guest: Arc<LoadedGuest>,
    settings: RunSettings,
) -> Result<(), StartError> {
    let manifest = guest.manifest().clone();
    let parent_kind = kinds::resolve(&client, &manifest.parent).await?;
    if !parent_kind.namespaced {
        return Err(StartError::ClusterScopedParent(parent_kind.display_name()));
    }
    let mut child_kinds = Vec::with_capacity(manifest.children.len());
    for gvk in &manifest.children {
        child_kinds.push(kinds::resolve(&client, gvk).await?);
    }

    let owner = OwnerKind {
        api_version: parent_kind.resource.api_version.clone(),
        kind: parent_kind.resource.kind.clone(),
    };
    let children = OwnedChildren::new(owner, child_kinds);
    let selector = format!("{MANAGED_BY_LABEL}={}", settings.field_manager);
    let namespace = settings.namespace.as_deref();
    let parent_api = scoped_api(&client, namespace, &parent_kind.resource);
    let mut controller = Controller::new_with(
        parent_api,
        watcher::Config::default(),
        parent_kind.resource.clone(),
    );
    for (index, kind) in children.kinds().enumerate() {
        let (triggers, triggered) = futures::channel::mpsc::unbounded();
        let api = scoped_api(&client, namespace, &kind.resource);
        tokio::spawn(Arc::clone(&children).watch(
            index,
            api,
            watcher::Config::default().labels(&selector),
            triggers,
        ));
        controller = controller.owns_stream_with(triggered.map(Ok), kind.resource.clone());
    }

    info!(
        parent = %parent_kind.display_name(),
        children = %children.kinds().map(ResolvedKind::display_name).collect::<Vec<_>>().join(", "),
        namespace = namespace.unwrap_or("<all>"),
        "waiting for child caches to sync"
    );
    children.wait_synced().await;
    info!("child caches synced; reconciling");

    let context = Arc::new(Context {
        client,
        guest,
        parent_kind,
        children,
        failures: Mutex::new(HashMap::new()),
        settings: settings.clone(),
    });
    controller
        .with_config(ControllerConfig::default().concurrency(settings.concurrency))
        .shutdown_on_signal()
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                Err(kube::runtime::controller::Error::ReconcilerFailed(error, object)) => {
                    warn!(parent = %object, error = %error, "reconcile failed; retrying with backoff");
                }
                Err(error) => debug!(%error, "controller event"),
            }
        })
        .await;
    info!("controller stopped");
    Ok(())
}

fn scoped_api(
    client: &Client,
    namespace: Option<&str>,
    resource: &ApiResource,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

async fn reconcile(
    parent: Arc<DynamicObject>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let span = info_span!(
        "reconcile",
        namespace = parent.namespace().as_deref().unwrap_or_default(),
        name = %parent.name_any(),
        generation = parent.metadata.generation.unwrap_or_default(),
        guest = %ctx.guest.digest(),
    );
    let key = format!(
        "{}/{}",
        parent.namespace().unwrap_or_default(),
        parent.name_any()
    );
    let result = reconcile_parent(&parent, &ctx).instrument(span).await;
    if result.is_ok() {
        ctx.failures
            .lock()
            .expect("failure map lock poisoned")
            .remove(&key);
    }
    result
}

fn error_policy(parent: Arc<DynamicObject>, _error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let key = format!(
        "{}/{}",
        parent.namespace().unwrap_or_default(),
        parent.name_any()
    );
    let mut failures = ctx.failures.lock().expect("failure map lock poisoned");
    let attempts = failures.entry(key).or_insert(0);
    *attempts = attempts.saturating_add(1);
    let delay = BACKOFF_BASE
        .saturating_mul(1 << (*attempts - 1).min(16))
        .min(BACKOFF_MAX);
    Action::requeue(delay)
}

async fn reconcile_parent(parent: &DynamicObject, ctx: &Context) -> Result<Action, ReconcileError> {
    let namespace = parent
        .namespace()
        .ok_or(ReconcileError::MissingMetadata("namespace"))?;
    let uid = parent.uid().ok_or(ReconcileError::MissingMetadata("uid"))?;
    if !ctx.children.synced() {
        // Cannot happen after start-up (relists swap in complete indexes), kept as the guard of
        // the never-prune-on-incomplete-information invariant.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let finalizing = parent.metadata.deletion_timestamp.is_some();
    let observed_children = ctx.children.owned_by(&uid);
    let observed = Observed {
        parent: guest_json(parent),
        children: observed_children
            .iter()
            .map(|c| guest_json(&c.object))
            .collect(),
        finalizing,
    };

    let guest = Arc::clone(&ctx.guest);
    let parent_key = format!("{namespace}/{}", parent.name_any());
    // The guest's log lines belong to this reconcile's span, on whichever thread it runs.
    let span = tracing::Span::current();
    let answer = tokio::task::spawn_blocking(move || {
        span.in_scope(|| guest.reconcile(&observed, &parent_key))
    })
    .await
    .map_err(ReconcileError::GuestTask)?;
    let desired = match answer {
        Ok(desired) => desired,
        Err(GuestError::InvalidSpec(reason)) => {
            info!(%reason, "guest rejected the spec; waiting for it to change");
            report_failure(
                ctx,
                parent,
                FailureReason::InvalidSpec,
                format!("invalid spec: {reason}"),
            )
            .await?;
            return Ok(Action::await_change());
        }
        Err(error) => {
            report_failure(ctx, parent, FailureReason::GuestFailed, error.to_string()).await?;
            return Err(ReconcileError::Guest(error));
        }
    };

    let checked =
        policy::check(&desired.children, &namespace, &ctx.children).and_then(|children| {
            Ok((
                children,
                desired
                    .status
                    .as_deref()
                    .map(policy::check_status)
                    .transpose()?,
            ))
        });
    let (desired_children, guest_status) = match checked {
        Ok(checked) => checked,
        Err(violation) => {
            report_failure(
                ctx,
                parent,
                FailureReason::PolicyViolation,
                violation.to_string(),
            )
            .await?;
            return Err(ReconcileError::Policy(violation));
        }
    };
    let requeue = desired.requeue_after_ms.map_or(ctx.settings.resync, |ms| {
        Duration::from_millis(ms).max(MIN_REQUEUE)
    });

    if finalizing {
        // Garbage collection removes the children of a parent being deleted; re-applying them
        // would race it.
        report(ctx, parent, &Outcome::Reconciled { guest_status }).await?;
        return Ok(Action::await_change());
    }

    let parent_ref = ParentRef {
        api_version: ctx.parent_kind.resource.api_version.clone(),
        kind: ctx.parent_kind.resource.kind.clone(),
        name: parent.name_any(),
        uid: uid.clone(),
    };
    let wanted: HashSet<(usize, String)> = desired_children
        .iter()
        .map(|c| (c.kind, c.name.clone()))
        .collect();
    let writes = futures::stream::iter(desired_children.into_iter().map(|mut child| {
        apply::prepare(&mut child.object, &parent_ref, &ctx.settings.field_manager);
        let observed = observed_children.iter().find(|o| {
            o.kind == child.kind && o.object.metadata.name.as_deref() == Some(child.name.as_str())
        });
        let satisfied = observed.is_some_and(|o| apply::is_satisfied(&child.object, &o.object));
        let kind = ctx.children.kind(child.kind);
        let api =
            Api::<DynamicObject>::namespaced_with(ctx.client.clone(), &namespace, &kind.resource);
        let what = format!("{} {}", kind.resource.kind, child.name);
        async move {
            if satisfied {
                return Ok(false);
            }
            apply::apply(
                &api,
                &child.name,
                &child.object,
                &ctx.settings.field_manager,
            )
            .map_ok(|()| true)
            .map_err(|e| format!("applying {what}: {e}"))
            .await
        }
    }))
    .buffer_unordered(APPLY_CONCURRENCY)
    .collect::<Vec<_>>()
    .await;
    let applied = writes.iter().filter(|w| matches!(w, Ok(true))).count();
    let unchanged = writes.iter().filter(|w| matches!(w, Ok(false))).count();
    let mut failures: Vec<String> = writes.into_iter().filter_map(Result::err).collect();

    let mut pruned = 0;
    if failures.is_empty() {
        for child in observed_children.iter().filter(|c| !is_wanted(c, &wanted)) {
            match prune_child(ctx, &namespace, child).await {
                Ok(Pruned::Deleted) => pruned += 1,
                Ok(Pruned::AlreadyGone) => {}
                Err(failure) => failures.push(failure),
            }
        }
    }
    if !failures.is_empty() {
        let message = failures.join("; ");
        report_failure(ctx, parent, FailureReason::ApplyFailed, message.clone()).await?;
        return Err(ReconcileError::Write(message));
    }
    if applied + pruned > 0 {
        info!(applied, unchanged, pruned, "children reconciled");
    } else {
        debug!(unchanged, "children already as desired");
    }
    report(ctx, parent, &Outcome::Reconciled { guest_status }).await?;
    Ok(Action::requeue(requeue))
}

fn is_wanted(child: &ObservedChild, wanted: &HashSet<(usize, String)>) -> bool {
    let name = child.object.metadata.name.clone().unwrap_or_default();
    wanted.contains(&(child.kind, name))
}

async fn prune_child(
    ctx: &Context,
    namespace: &str,
    child: &ObservedChild,
) -> Result<Pruned, String> {
    let kind = ctx.children.kind(child.kind);
    let name = child.object.name_any();
    let uid = child.object.uid().unwrap_or_default();
    let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), namespace, &kind.resource);
    let pruned = apply::prune(&api, &name, &uid)
        .await
        .map_err(|e| format!("pruning {} {name}: {e}", kind.resource.kind))?;
    if pruned == Pruned::Deleted {
        info!(kind = %kind.resource.kind, %name, "pruned a child the guest no longer wants");
    }
    Ok(pruned)
}

/// Records a failed reconcile in the parent's status. A failure to write it is only logged: the
/// reconcile is failing already and will be retried.
async fn report_failure(
    ctx: &Context,
    parent: &DynamicObject,
    reason: FailureReason,
    message: String,
) -> Result<(), ReconcileError> {
    if let Err(error) = report(ctx, parent, &Outcome::Failed { reason, message }).await {
        warn!(%error, "could not record the failure in the parent's status");
    }
    Ok(())
}

async fn report(
    ctx: &Context,
    parent: &DynamicObject,
    outcome: &Outcome,
) -> Result<(), ReconcileError> {
    let observed = parent.data.get("status").filter(|s| s.is_object());
    let next = status::next_status(
        observed,
        outcome,
        parent.metadata.generation,
        &status::now(),
    );
    if !status::needs_write(observed, &next) {
        return Ok(());
    }
    let api = Api::<DynamicObject>::namespaced_with(
        ctx.client.clone(),
        &parent.namespace().unwrap_or_default(),
        &ctx.parent_kind.resource,
    );
    match status::write(&api, parent, &next, &ctx.settings.field_manager).await {
        // The parent was deleted meanwhile: nothing to report on.
        Err(kube::Error::Api(response)) if response.code == 404 => Ok(()),
        result => result.map_err(ReconcileError::Status),
    }
}

/// An object as the guest sees it: as the API server returned it, minus `managedFields`
/// (bookkeeping of server-side apply, large and of no use to a reconcile decision).
fn guest_json(object: &DynamicObject) -> String {
    let mut value = serde_json::to_value(object).expect("objects from the API server serialize");
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    value.to_string()
}
