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
use super::placement::Placement;

/// What a reconcile saw of one parent.
pub struct Observed {
    /// The parent, as its children's owner reference names it.
    pub parent: ParentRef,
    /// The parent's namespace; `None` for a cluster-scoped parent.
    pub namespace: Option<String>,
    /// The parent is being deleted.
    pub finalizing: bool,
    /// Its children in the caches, of the kinds the guest declared.
    pub children: Vec<ObservedChild>,
}

impl Observed {
    /// The observed child `namespace/name` of `kind` (`namespace` empty for a cluster-scoped
    /// one), if there is one.
    pub fn child(
        &self,
        kind: &ResolvedKind,
        namespace: &str,
        name: &str,
    ) -> Option<&ObservedChild> {
        self.children.iter().find(|o| {
            o.kind.gvk == kind.gvk
                && o.object.metadata.name.as_deref() == Some(name)
                && o.object.metadata.namespace.as_deref().unwrap_or_default() == namespace
        })
    }

    /// Where this parent's children may live.
    pub fn placement<'a>(&'a self, ctx: &'a Context) -> Placement<'a> {
        Placement::of(
            self.namespace.as_deref(),
            &ctx.settings.protected_namespaces,
        )
    }
}

/// Reads the parent's identity and its children from the caches.
///
/// # Errors
/// [`Failure::MissingMetadata`] for a namespaced parent without namespace, or a parent
/// without UID; [`Failure::NotSynced`]
/// while a child kind's cache has not listed completely, and [`Failure::ChildWatchFailing`]
/// while its watch fails and has not listed again (never decide, or prune, on part of the
/// children).
pub fn observe(
    ctx: &Context,
    parent: &DynamicObject,
    guest: &ActiveGuest,
) -> Result<Observed, Failure> {
    let namespace = parent.namespace();
    if ctx.parent_kind.namespaced && namespace.is_none() {
        return Err(Failure::MissingMetadata("namespace"));
    }
    let uid = parent.uid().ok_or(Failure::MissingMetadata("uid"))?;
    if !ctx.children.synced(&guest.child_kinds) {
        let failing = ctx.children.failing(&guest.child_kinds);
        if !failing.is_empty() {
            return Err(Failure::ChildWatchFailing(failing.join(", ")));
        }
        return Err(Failure::NotSynced);
    }
    let placement = Placement::of(namespace.as_deref(), &ctx.settings.protected_namespaces);
    let children = ctx
        .children
        .owned_by(&uid, |ns| placement.admits(ns), &guest.child_kinds);
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

/// `namespace/name` (`name` for a cluster-scoped parent), how the guest's log lines name the
/// parent they were written for.
pub fn parent_key(parent: &DynamicObject) -> String {
    match parent.namespace() {
        Some(namespace) => format!("{namespace}/{}", parent.name_any()),
        None => parent.name_any(),
    }
}
