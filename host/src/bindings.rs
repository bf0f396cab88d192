//! The host side of the WIT contract (`wit/reconciler.wit`): the single `bindgen!` invocation and
//! the conversions between its generated types and the host's own.

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

impl From<&WitGvk> for kube::api::GroupVersionKind {
    fn from(gvk: &WitGvk) -> Self {
        kube::api::GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind)
    }
}
