//! What a guest's store holds and what the guest may import: an empty WASI context (it satisfies
//! the imports std adds and grants nothing) and the `log` interface (see `log.rs`).

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{self, LogLevel};
use super::limits::CallLimits;
use super::log::CallLog;

/// Per-call state of a store.
pub(super) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limits: CallLimits,
    log: CallLog,
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

impl bindings::wasm_reconciler::reconciler::types::Host for GuestState {}

impl bindings::wasm_reconciler::reconciler::log::Host for GuestState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log.log(level, message);
    }
}
