//! A guest for the seed operator's own API, `crd.demo.com/v1alpha1` `PodTatoHead`: a user of the
//! original operator applies their resource unchanged and gets the same Deployments and Services,
//! minus the original's bugs (see `validate.rs`).
//!
//! This file is only the binding glue between the WIT interface and the plain functions in the
//! other modules, which hold the decisions and their native unit tests.

pub mod children;
pub mod parts;
pub mod reconcile;
pub mod spec;
pub mod status;
pub mod validate;

// The component glue exists only in the wasm32 build: natively the crate is a plain library for
// unit tests and the CRD generator.
#[cfg(target_arch = "wasm32")]
mod component {
    use crate::{reconcile, spec};

    wit_bindgen::generate!({ path: "../wit", world: "reconciler" });

    use exports::wasm_reconciler::reconciler::guest::{
        Desired, Guest, Manifest, Observed, ReconcileError,
    };
    use wasm_reconciler::reconciler::types::GroupVersionKind;

    struct PodTatoHeadGuest;

    fn gvk(group: &str, version: &str, kind: &str) -> GroupVersionKind {
        GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    impl Guest for PodTatoHeadGuest {
        fn describe() -> Manifest {
            Manifest {
                name: "podtatohead".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                parent: gvk(spec::GROUP, spec::VERSION, spec::KIND),
                children: vec![gvk("apps", "v1", "Deployment"), gvk("", "v1", "Service")],
            }
        }

        fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
            let text = |value: &serde_json::Value| {
                serde_json::to_string(value).expect("JSON values serialize")
            };
            reconcile::reconcile(&observed.parent, &observed.children, observed.finalizing)
                .map(|desired| Desired {
                    children: desired.children.iter().map(text).collect(),
                    status: Some(text(&desired.status)),
                    requeue_after_ms: None,
                })
                .map_err(|reconcile::InvalidSpec(reason)| ReconcileError::InvalidSpec(reason))
        }
    }

    export!(PodTatoHeadGuest);
}
