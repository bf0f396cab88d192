//! Writing children: which planned children need a request, server-side apply of those (a few at
//! a time), and pruning of the children the plan no longer wants.
//!
//! # Guarantees
//! - Every apply is declarative (server-side apply, forced: the host's fields win over other
//!   managers' for the fields it sets, and fields it does not set are left alone).
//! - Nothing is sent for a child already as desired, or written and not yet seen back.
//! - Nothing is pruned unless every apply of the reconcile succeeded.
//! - Cluster-scoped children (a Namespace) are applied before namespaced ones, which may live in
//!   them.
//! - A delete carries a UID precondition: it never removes an object that replaced the one the
//!   host saw under the same name.

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use serde_json::Value;
use tracing::info;

use crate::cluster::{ObjectName, ObservedChild, object_name};
use crate::error_text::{api_error_text, summarize_failures};

use super::Context;
use super::error::Failure;
use super::json_match::is_satisfied;
use super::observe::Observed;
use super::plan::{Plan, PlannedChild};

/// Children applied (or pruned) at the same time for one parent.
pub const WRITE_CONCURRENCY: usize = 8;

/// One planned child and whether it must be sent.
pub struct Write<'p> {
    pub child: &'p PlannedChild,
    /// `(namespace, name)`, how the child caches key it.
    key: ObjectName,
    /// The child's version in the cache (`None`: not there).
    seen_version: Option<String>,
    /// False when the child is already as desired, or written and not yet seen back.
    pub send: bool,
}

/// What applying and pruning did in one reconcile.
#[derive(Debug, Default)]
pub struct Writes {
    pub applied: usize,
    pub unchanged: usize,
    /// `Kind name` of children applied that did not exist before.
    pub created: Vec<String>,
    /// `Kind name` of children deleted.
    pub pruned: Vec<String>,
    failures: Vec<String>,
}

impl Writes {
    /// `Err` when a request failed: the failures summarised, and what did succeed.
    pub fn into_result(self) -> Result<Self, Failure> {
        if self.failures.is_empty() {
            return Ok(self);
        }
        Err(Failure::Write {
            message: summarize_failures(&self.failures),
            created: self.created,
            pruned: self.pruned,
        })
    }
}

/// Decides, for every planned child, whether a request is needed.
pub fn writes_needed<'p>(ctx: &Context, plan: &'p Plan, observed: &Observed) -> Vec<Write<'p>> {
    plan.children
        .iter()
        .map(|child| {
            let current = observed.child(&child.kind, &child.namespace, &child.name);
            let key = (child.namespace.clone(), child.name.clone());
            let seen_version = current.and_then(|o| o.object.metadata.resource_version.clone());
            let send = !(current.is_some_and(|o| is_satisfied(&child.object, &o.object))
                || ctx.children.write_in_flight(
                    &child.kind,
                    &key,
                    seen_version.as_deref(),
                    &child.digest,
                ));
            Write {
                child,
                key,
                seen_version,
                send,
            }
        })
        .collect()
}

/// Applies the children that need it, a few at a time: the cluster-scoped ones first (a
/// namespaced child in a Namespace created by the same reconcile would otherwise be refused
/// until the next retry).
pub async fn apply_all(ctx: &Context, writes: Vec<Write<'_>>) -> Writes {
    let (cluster_scoped, namespaced): (Vec<_>, Vec<_>) = writes
        .into_iter()
        .partition(|write| !write.child.kind.namespaced);
    let mut results = apply_wave(ctx, cluster_scoped).await;
    results.extend(apply_wave(ctx, namespaced).await);
    let mut writes = Writes::default();
    for result in results {
        match result {
            Ok(None) => writes.unchanged += 1,
            Ok(Some((child, created))) => {
                writes.applied += 1;
                if created {
                    writes.created.push(child);
                }
            }
            Err(failure) => writes.failures.push(failure),
        }
    }
    writes
}

/// What applying one child did: `Some((Kind name, created))` when a request was sent.
type Applied = Result<Option<(String, bool)>, String>;

/// Applies `writes`, a few at a time.
async fn apply_wave(ctx: &Context, writes: Vec<Write<'_>>) -> Vec<Applied> {
    // The futures are made first: a stream mapping `Write<'_>` through a closure is not `Send`
    // for every lifetime, which the controller's reconcile future must be.
    let applies: Vec<_> = writes
        .into_iter()
        .map(|write| apply_one(ctx, write))
        .collect();
    futures::stream::iter(applies)
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await
}

/// Applies one child if it needs it.
async fn apply_one(ctx: &Context, write: Write<'_>) -> Applied {
    if !write.send {
        return Ok(None);
    }
    let child = write.child;
    let api = child.kind.api(&ctx.client, child.namespace());
    let created = write.seen_version.is_none();
    apply(
        &api,
        &child.name,
        &child.object,
        &ctx.settings.field_manager,
    )
    .await
    .map_err(|e| format!("applying {}: {}", child.to_text(), api_error_text(&e)))?;
    ctx.children.wrote(
        &child.kind,
        write.key,
        write.seen_version,
        child.digest.clone(),
    );
    Ok(Some((child.to_text(), created)))
}

/// Deletes the observed children the plan does not want, unless an apply failed: a failed
/// reconcile prunes nothing.
pub async fn prune_undesired(ctx: &Context, plan: &Plan, observed: &Observed, writes: &mut Writes) {
    if !writes.failures.is_empty() {
        return;
    }
    for child in &observed.children {
        let (namespace, name) = object_name(&child.object.metadata);
        if plan.wants(&child.kind, &namespace, &name) {
            continue;
        }
        match prune_child(ctx, child).await {
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

async fn prune_child(ctx: &Context, child: &ObservedChild) -> Result<Pruned, String> {
    let resource = &child.kind.resource;
    let name = child.object.name_any();
    let uid = child.object.uid().unwrap_or_default();
    let api = child
        .kind
        .api(&ctx.client, child.object.metadata.namespace.as_deref());
    let pruned = prune(&api, &name, &uid)
        .await
        .map_err(|e| format!("pruning {} {name}: {}", resource.kind, api_error_text(&e)))?;
    if pruned == Pruned::Deleted {
        info!(kind = %resource.kind, %name, "pruned a child the guest no longer wants");
    }
    Ok(pruned)
}

/// Server-side applies one prepared child.
async fn apply(
    api: &Api<DynamicObject>,
    name: &str,
    object: &Value,
    field_manager: &str,
) -> Result<(), kube::Error> {
    api.patch(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(object),
    )
    .await?;
    Ok(())
}

/// What a prune did.
#[derive(Debug, PartialEq, Eq)]
enum Pruned {
    Deleted,
    /// Already gone, or replaced by another object with the same name (UID precondition failed).
    AlreadyGone,
}

/// Deletes a child the parent no longer wants, only if it still is the object with `uid`.
async fn prune(api: &Api<DynamicObject>, name: &str, uid: &str) -> Result<Pruned, kube::Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(Pruned::Deleted),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            Ok(Pruned::AlreadyGone)
        }
        Err(error) => Err(error),
    }
}
