//! What a guest's store holds and what the guest may import: an empty WASI context (it satisfies
//! the imports std adds and grants nothing) and the `log` interface (see `log.rs`; each contract
//! version's `log` is implemented beside its bindings, in `bindings/`).

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::limits::CallLimits;
use super::log::CallLog;

/// Per-call state of a store.
pub(super) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: CallLimits,
    pub(super) log: CallLog,
}

impl GuestState {
    pub fn new(limits: CallLimits, log: CallLog) -> Self {
        Self {
            wasi: WasiCtxBuilder::new().build(),
            table: ResourceTable::new(),
            limits,
            log,
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
