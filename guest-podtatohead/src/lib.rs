//! A guest for the seed operator's own API, `crd.demo.com/v1alpha1` `PodTatoHead`: a user of the
//! original operator applies their resource unchanged and gets the same Deployments and Services,
//! minus the original's bugs (see `validate.rs`).
//!
//! This file only names the guest to the contract (through `guest-kit`); the other modules hold
//! the decisions and their native unit tests.

pub mod children;
pub mod parts;
pub mod reconcile;
pub mod spec;
pub mod status;
pub mod validate;

use guest_kit::component::{Desired, Manifest, Observed, ReconcileError, Reconciler, kind};

/// The guest: [`reconcile::reconcile`] over the contract's types.
pub struct PodTatoHeadGuest;

impl Reconciler for PodTatoHeadGuest {
    fn describe() -> Manifest {
        Manifest::new(
            "podtatohead",
            env!("CARGO_PKG_VERSION"),
            kind(spec::GROUP, spec::VERSION, spec::KIND),
        )
        .with_children([kind("apps", "v1", "Deployment"), kind("", "v1", "Service")])
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
                events: Vec::new(),
            })
            .map_err(|reconcile::InvalidSpec(reason)| ReconcileError::InvalidSpec(reason))
    }
}

guest_kit::export_guest!(PodTatoHeadGuest);
