//! The first step of a reconcile: the parent and its cached children, and the guest's view of
//! them.

use kube::ResourceExt;
use kube::api::DynamicObject;
use serde_json::Value;

use crate::cluster::{ObservedChild, ParentRef, ResolvedKind};
use crate::sandbox::Observation;

use super::Context;
use super::active_guest::ActiveGuest;
use super::error::Failure;

/// What a reconcile saw of one parent.
pub struct Observed {
    /// The parent, as its children's owner reference names it.
    pub parent: ParentRef,
    pub namespace: String,
    /// The parent is being deleted.
    pub finalizing: bool,
    /// Its children in the caches, of the kinds the guest declared.
    pub children: Vec<ObservedChild>,
}

impl Observed {
    /// The observed child `name` of `kind`, if there is one.
    pub fn child(&self, kind: &ResolvedKind, name: &str) -> Option<&ObservedChild> {
        self.children
            .iter()
            .find(|o| o.kind.gvk == kind.gvk && o.object.metadata.name.as_deref() == Some(name))
    }
}

/// Reads the parent's identity and its children from the caches.
///
/// # Errors
/// [`Failure::MissingMetadata`] for a parent without namespace or UID; [`Failure::NotSynced`]
/// while a child kind's cache has not listed completely, and [`Failure::ChildWatchFailing`]
/// while its watch fails and has not listed again (never decide, or prune, on part of the
/// children).
pub fn observe(
    ctx: &Context,
    parent: &DynamicObject,
    guest: &ActiveGuest,
) -> Result<Observed, Failure> {
    let namespace = parent
        .namespace()
        .ok_or(Failure::MissingMetadata("namespace"))?;
    let uid = parent.uid().ok_or(Failure::MissingMetadata("uid"))?;
    if !ctx.children.synced(&guest.child_kinds) {
        let failing = ctx.children.failing(&guest.child_kinds);
        if !failing.is_empty() {
            return Err(Failure::ChildWatchFailing(failing.join(", ")));
        }
        return Err(Failure::NotSynced);
    }
    let children = ctx.children.owned_by(&uid, &namespace, &guest.child_kinds);
    Ok(Observed {
        parent: ParentRef {
            api_version: ctx.parent_kind.resource.api_version.clone(),
            kind: ctx.parent_kind.resource.kind.clone(),
            name: parent.name_any(),
            uid,
        },
        namespace,
        finalizing: parent.metadata.deletion_timestamp.is_some(),
        children,
    })
}

/// What the guest is shown: the parent and the observed children as JSON.
pub fn observation(
    parent: &DynamicObject,
    parent_kind: &ResolvedKind,
    observed: &Observed,
) -> Observation {
    Observation::new(
        guest_json(parent, parent_kind),
        observed
            .children
            .iter()
            .map(|c| guest_json(&c.object, &c.kind))
            .collect(),
        observed.finalizing,
    )
}

/// An object as the guest sees it: as the API server returned it, with `apiVersion`/`kind` even
/// when it came in a list response (whose items lack them; the guest is promised them), minus
/// `managedFields` (bookkeeping of server-side apply, large and of no use to a decision).
pub fn guest_json(object: &DynamicObject, kind: &ResolvedKind) -> String {
    // Cached children are already in this shape (the child watch normalises them): written as
    // they are, without the detour through a `Value` tree (a fifth of a reconcile's CPU before).
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

/// `namespace/name`, how the guest's log lines name the parent they were written for.
pub fn parent_key(parent: &DynamicObject) -> String {
    format!(
        "{}/{}",
        parent.namespace().unwrap_or_default(),
        parent.name_any()
    )
}
