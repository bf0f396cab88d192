//! The WIT bindings and the conversions between them and the plain types of [`super`]. Only in
//! the WebAssembly build: component imports are not native symbols.

use super::{Desired, Kind, Level, Manifest, Observed, ReconcileError, Reconciler};

/// Generated once here for every guest; `export_guest!` names this module's export macro.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "reconciler",
        pub_export_macro: true,
        export_macro_name: "export_reconciler",
        default_bindings_module: "guest_kit::component::wit::bindings",
    });
}

use bindings::exports::wasm_reconciler::reconciler::guest as wit_guest;
use bindings::wasm_reconciler::reconciler::log as wit_log;
use bindings::wasm_reconciler::reconciler::types::GroupVersionKind;

fn gvk(kind: Kind) -> GroupVersionKind {
    GroupVersionKind {
        group: kind.group,
        version: kind.version,
        kind: kind.kind,
    }
}

pub fn describe<R: Reconciler>() -> wit_guest::Manifest {
    let Manifest {
        name,
        version,
        parent,
        children,
    } = R::describe();
    wit_guest::Manifest {
        name,
        version,
        parent: gvk(parent),
        children: children.into_iter().map(gvk).collect(),
    }
}

pub fn reconcile<R: Reconciler>(
    observed: wit_guest::Observed,
) -> Result<wit_guest::Desired, wit_guest::ReconcileError> {
    let observed = Observed {
        parent: observed.parent,
        children: observed.children,
        finalizing: observed.finalizing,
    };
    match R::reconcile(observed) {
        Ok(Desired {
            children,
            status,
            requeue_after_ms,
        }) => Ok(wit_guest::Desired {
            children,
            status,
            requeue_after_ms,
        }),
        Err(ReconcileError::InvalidSpec(reason)) => {
            Err(wit_guest::ReconcileError::InvalidSpec(reason))
        }
        Err(ReconcileError::Transient(reason)) => Err(wit_guest::ReconcileError::Transient(reason)),
    }
}

pub fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => wit_log::Level::Trace,
        Level::Debug => wit_log::Level::Debug,
        Level::Info => wit_log::Level::Info,
        Level::Warn => wit_log::Level::Warn,
        Level::Error => wit_log::Level::Error,
    };
    wit_log::log(level, message);
}
