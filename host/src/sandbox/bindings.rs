//! The host side of the WIT contract (`wit/reconciler.wit`): the single `bindgen!` invocation and
//! every conversion between its generated types and the host's own. Private to `sandbox/`: the rest
//! of the host speaks [`Observation`](super::Observation), [`Decision`](super::Decision) and
//! [`GuestManifest`](super::GuestManifest), so a change of the WIT stops at this folder.

use kube::api::GroupVersionKind;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "reconciler",
});

pub use exports::wasm_reconciler::reconciler::guest::{
    Desired, Manifest, Observed, ReconcileError,
};
pub use wasm_reconciler::reconciler::log::Level as LogLevel;
pub use wasm_reconciler::reconciler::types::GroupVersionKind as WitGvk;

/// The WIT package this host implements; guests must be built against a compatible version.
pub const WIT_PACKAGE: &str = "wasm-reconciler:reconciler@0.1.0";

impl From<&WitGvk> for GroupVersionKind {
    fn from(gvk: &WitGvk) -> Self {
        GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind)
    }
}

impl From<Desired> for super::Decision {
    /// Moves the strings: no copy of the guest's output.
    fn from(desired: Desired) -> Self {
        Self {
            children: desired.children,
            status: desired.status,
            requeue_after: desired
                .requeue_after_ms
                .map(std::time::Duration::from_millis),
        }
    }
}

impl super::Observation {
    /// What the guest is handed: the WIT record, built without copying.
    pub(super) fn as_wit(&self) -> &Observed {
        &self.0
    }
}

/// The WIT record for an observation.
pub(super) fn observed(parent: String, children: Vec<String>, finalizing: bool) -> Observed {
    Observed {
        parent,
        children,
        finalizing,
    }
}
