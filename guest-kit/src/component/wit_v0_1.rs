//! The bindings of the frozen contract 0.1.0 (`wit/0.1.0/`), for the guests built with the
//! feature `contract-0-1`, and the conversions between them and the plain types of [`super`]:
//! what 0.1 lacks is neither asked for (no configuration, no related objects) nor sent (Events
//! a guest returns are dropped: 0.1 cannot carry them).

use super::{Desired, Manifest, Observed, ReconcileError, Reconciler};

/// Generated once here for every guest; `export_guest!` names this module's export macro.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/0.1.0",
        world: "reconciler",
        pub_export_macro: true,
        export_macro_name: "export_reconciler",
        default_bindings_module: "guest_kit::component::wit::bindings",
    });
}

use bindings::exports::wasm_reconciler::reconciler::guest as wit_guest;
use bindings::wasm_reconciler::reconciler::log as wit_log;
use bindings::wasm_reconciler::reconciler::types::GroupVersionKind;

shared_by_every_version!();

pub fn describe<R: Reconciler>() -> wit_guest::Manifest {
    let Manifest {
        name,
        version,
        parent,
        children,
        related: _,
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
        related: Vec::new(),
        config: "null".into(),
        finalizing: observed.finalizing,
    };
    match R::reconcile(observed) {
        Ok(Desired {
            children,
            status,
            requeue_after_ms,
            events: _,
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

/// The export of `export_guest!` in this contract version.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_guest_wit {
    ($guest:ty) => {
        const _: () = {
            struct Component;

            impl $crate::component::wit::bindings::exports::wasm_reconciler::reconciler::guest::Guest
                for Component
            {
                fn describe() -> $crate::component::wit::bindings::exports::wasm_reconciler::reconciler::guest::Manifest {
                    $crate::component::wit::describe::<$guest>()
                }

                fn reconcile(
                    observed: $crate::component::wit::bindings::exports::wasm_reconciler::reconciler::guest::Observed,
                ) -> ::core::result::Result<
                    $crate::component::wit::bindings::exports::wasm_reconciler::reconciler::guest::Desired,
                    $crate::component::wit::bindings::exports::wasm_reconciler::reconciler::guest::ReconcileError,
                > {
                    $crate::component::wit::reconcile::<$guest>(observed)
                }
            }

            $crate::component::wit::bindings::export_reconciler!(Component);
        };
    };
}
