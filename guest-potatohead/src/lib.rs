//! The default guest: the PotatoHead operator's reconcile decisions as a WebAssembly component.
//!
//! The decisions are the plain library `potatohead-decisions` (in `decisions/`, with their
//! unit tests); this crate names them to the contract and installs the arena allocator.

pub mod arena;

use guest_kit::component::{
    Desired, Level, Manifest, Observed, ReconcileError, Reconciler, Requirement, log,
};

/// The guest: [`potatohead_decisions::decide`] over the contract's types.
pub struct PotatoHeadGuest;

impl Reconciler for PotatoHeadGuest {
    fn describe() -> Manifest {
        potatohead_decisions::manifest("potatohead", env!("CARGO_PKG_VERSION"))
    }

    fn requirements(parent: &str, _config: &str) -> Result<Vec<Requirement>, ReconcileError> {
        potatohead_decisions::requirements(parent)
    }

    fn configure(config: &str) -> Result<(), String> {
        potatohead_decisions::config::parse(config).map(drop)
    }

    fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
        let desired = potatohead_decisions::decide(&observed)?;
        log(
            Level::Debug,
            &format!("desired {} children", desired.children.len()),
        );
        let (children, status) = desired.to_text();
        let events = desired.events;
        Ok(Desired {
            children,
            status,
            requeue_after_ms: desired.requeue_after_ms,
            events,
        })
    }
}

guest_kit::export_guest!(PotatoHeadGuest);
