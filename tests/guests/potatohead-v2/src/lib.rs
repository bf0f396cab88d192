//! Test guest for hot swap: the default PotatoHead guest's decisions, plus the label
//! `podtato.example.com/variant: v2` on every child, so a test can see which guest decided.
//! It fails (a transient error) on the parents annotated `podtato.example.com/v2-fails`, for the
//! rollback test: a new guest that breaks where the one before it did not.

use guest_kit::component::{Desired, Manifest, Observed, ReconcileError, Reconciler};

struct PotatoHeadV2;

const FAILS_ANNOTATION: &str = "podtato.example.com/v2-fails";

impl Reconciler for PotatoHeadV2 {
    fn describe() -> Manifest {
        potatohead_decisions::manifest("potatohead-v2", env!("CARGO_PKG_VERSION"))
    }

    fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
        let parent: serde_json::Value = serde_json::from_str(&observed.parent)
            .map_err(|e| ReconcileError::Transient(e.to_string()))?;
        if !parent["metadata"]["annotations"][FAILS_ANNOTATION].is_null() {
            return Err(ReconcileError::Transient(format!(
                "potatohead-v2 fails on parents annotated {FAILS_ANNOTATION}"
            )));
        }
        let desired = potatohead_decisions::decide(&observed)?;
        Ok(Desired {
            children: desired
                .children
                .into_iter()
                .map(|mut child| {
                    child["metadata"]["labels"]["podtato.example.com/variant"] = "v2".into();
                    child.to_string()
                })
                .collect(),
            status: desired.status.map(|s| s.to_string()),
            requeue_after_ms: desired.requeue_after_ms,
            events: Vec::new(),
        })
    }
}

guest_kit::export_guest!(PotatoHeadV2);
