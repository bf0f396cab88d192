//! The default guest: the PotatoHead operator's reconcile decisions as a WebAssembly component.
//!
//! This file is only the binding glue between the WIT interface and the plain functions in the
//! other modules, which hold the decisions and their native unit tests.

pub mod arena;
pub mod children;
pub mod parts;
pub mod reconcile;
pub mod spec;
pub mod status;
pub mod validate;

// The component glue exists only in the wasm32 build: natively the crate is a plain library for
// unit tests and the CRD generator (component export names are not valid native symbols).
#[cfg(target_arch = "wasm32")]
mod component {
    use crate::{reconcile, spec};

    wit_bindgen::generate!({ path: "../wit", world: "reconciler" });

    use exports::wasm_reconciler::reconciler::guest::{
        Desired, Guest, Manifest, Observed, ReconcileError,
    };
    use wasm_reconciler::reconciler::log::{Level, log};
    use wasm_reconciler::reconciler::types::GroupVersionKind;

    struct PotatoHeadGuest;

    fn gvk(group: &str, version: &str, kind: &str) -> GroupVersionKind {
        GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    impl Guest for PotatoHeadGuest {
        fn describe() -> Manifest {
            Manifest {
                name: "potatohead".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                parent: gvk(spec::GROUP, spec::VERSION, spec::KIND),
                children: vec![
                    gvk("apps", "v1", "Deployment"),
                    gvk("", "v1", "Service"),
                    gvk("", "v1", "ConfigMap"),
                ],
            }
        }

        fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
            match reconcile::reconcile(&observed.parent, &observed.children, observed.finalizing) {
                Ok(desired) => {
                    log(
                        Level::Debug,
                        &format!("desired {} children", desired.children.len()),
                    );
                    let (children, status) = desired.to_text();
                    Ok(Desired {
                        children,
                        status,
                        requeue_after_ms: desired.requeue_after_ms,
                    })
                }
                Err(reconcile::ReconcileError::InvalidSpec(reason)) => {
                    Err(ReconcileError::InvalidSpec(reason))
                }
            }
        }
    }

    export!(PotatoHeadGuest);
}
