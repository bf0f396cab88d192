//! Contract 0.1.0 (`wit/0.1.0/reconciler.wit`, frozen): the guests built before 0.2 keep running
//! unchanged. Parent and children in; children, status and a requeue out.

use wasmtime::Store;

use super::Call;
use crate::sandbox::imports::GuestState;
use crate::sandbox::log::guest_failure;
use crate::sandbox::manifest::Described;
use crate::sandbox::{Decision, GuestError, Observation};

wasmtime::component::bindgen!({
    path: "../wit/0.1.0",
    world: "reconciler",
});

use exports::wasm_reconciler::reconciler::guest as wit;
use wasm_reconciler::reconciler::log::Level;
use wasm_reconciler::reconciler::types::GroupVersionKind;

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
        related: Vec::new(),
    })
}

pub(super) fn reconcile(
    guest: &Reconciler,
    store: &mut Store<GuestState>,
    observation: &Observation,
) -> Call<Result<Decision, GuestError>> {
    // 0.1 has no related objects: the host never asks a 0.1 guest for any (its `requirements`
    // are empty), so nothing is left out here.
    let observed = wit::Observed {
        parent: observation.parent().to_string(),
        children: observation.children().to_vec(),
        finalizing: observation.finalizing(),
    };
    let answer = guest
        .wasm_reconciler_reconciler_guest()
        .call_reconcile(store, &observed)?;
    Ok(match answer {
        Ok(desired) => Ok(Decision {
            children: desired.children,
            status: desired.status,
            requeue_after: desired
                .requeue_after_ms
                .map(std::time::Duration::from_millis),
            events: Vec::new(),
        }),
        Err(wit::ReconcileError::InvalidSpec(reason)) => Err(guest_failure(true, &reason)),
        Err(wit::ReconcileError::Transient(reason)) => Err(guest_failure(false, &reason)),
    })
}
