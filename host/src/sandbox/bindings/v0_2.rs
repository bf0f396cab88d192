//! Contract 0.2.0 (`wit/reconciler.wit`): 0.1 plus configuration, related objects, Events and
//! cluster-scoped parents. The host's [`Observation`] holds this version's record, so the newest
//! guests are handed their input without a copy.

use wasmtime::Store;

use super::Call;
use crate::sandbox::imports::GuestState;
use crate::sandbox::log::guest_failure;
use crate::sandbox::manifest::Described;
use crate::sandbox::{
    ChildRef, Decision, EventType, GuestError, GuestEvent, Observation, Requirement, Selection,
};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "reconciler",
});

use exports::wasm_reconciler::reconciler::guest as wit;
use wasm_reconciler::reconciler::log::Level;
use wasm_reconciler::reconciler::types::{self as wit_types, GroupVersionKind};

pub(in crate::sandbox) use wit::Observed;
pub(in crate::sandbox) use wit_types::RelatedObjects;

shared_by_every_version!();

pub(super) fn describe(guest: &Reconciler, store: &mut Store<GuestState>) -> Call<Described> {
    let manifest = guest
        .wasm_reconciler_reconciler_guest()
        .call_describe(store)?;
    Ok(Described {
        name: manifest.name,
        version: manifest.version,
        parent: manifest.parent.into(),
        children: manifest.children.into_iter().map(Into::into).collect(),
        related: manifest.related.into_iter().map(Into::into).collect(),
    })
}

pub(super) fn configure(
    guest: &Reconciler,
    store: &mut Store<GuestState>,
    config: &String,
) -> Call<Result<(), String>> {
    guest
        .wasm_reconciler_reconciler_guest()
        .call_configure(store, config)
}

pub(super) fn requirements(
    guest: &Reconciler,
    store: &mut Store<GuestState>,
    parent: &String,
    config: &String,
) -> Call<Result<Vec<Requirement>, GuestError>> {
    let answer = guest
        .wasm_reconciler_reconciler_guest()
        .call_requirements(store, parent, config)?;
    Ok(answer
        .map(|list| list.into_iter().map(requirement).collect())
        .map_err(error))
}

pub(super) fn reconcile(
    guest: &Reconciler,
    store: &mut Store<GuestState>,
    observation: &Observation,
    config: &String,
) -> Call<Result<Decision, GuestError>> {
    let answer = guest.wasm_reconciler_reconciler_guest().call_reconcile(
        store,
        observation.as_wit(),
        config,
    )?;
    Ok(answer
        .map(|desired| Decision {
            children: desired.children,
            status: desired.status,
            requeue_after: desired
                .requeue_after_ms
                .map(std::time::Duration::from_millis),
            events: desired.events.into_iter().map(event).collect(),
        })
        .map_err(error))
}

fn error(error: wit::ReconcileError) -> GuestError {
    match error {
        wit::ReconcileError::InvalidSpec(reason) => guest_failure(true, &reason),
        wit::ReconcileError::Transient(reason) => guest_failure(false, &reason),
    }
}

fn kind(gvk: GroupVersionKind) -> kube::api::GroupVersionKind {
    kube::api::GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind)
}

fn requirement(requirement: wit_types::Requirement) -> Requirement {
    Requirement {
        key: requirement.key,
        kind: kind(requirement.kind),
        namespace: requirement.namespace,
        selection: match requirement.selection {
            wit_types::Selection::Names(names) => Selection::Names(names),
            wit_types::Selection::LabelSelector(selector) => Selection::LabelSelector(selector),
        },
    }
}

fn event(event: wit_types::Event) -> GuestEvent {
    GuestEvent {
        event_type: match event.event_type {
            wit_types::EventType::Normal => EventType::Normal,
            wit_types::EventType::Warning => EventType::Warning,
        },
        reason: event.reason,
        message: event.message,
        about: event.about.map(|child| ChildRef {
            kind: kind(child.kind),
            name: child.name,
            namespace: child.namespace,
        }),
    }
}
