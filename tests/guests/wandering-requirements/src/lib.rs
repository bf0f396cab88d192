//! Test guest whose requirements are not a function of the parent: every `requirements` call
//! names a ConfigMap after the clock and a random number, so two calls for the same parent
//! disagree. Its reconcile is harmless (one ConfigMap `<name>-ok`): what the host must catch is
//! the requirements alone.

use guest_kit::component::{
    Desired, Manifest, Observed, ReconcileError, Reconciler, Requirement, kind,
};
use std::hash::{BuildHasher, RandomState};

use serde_json::{Value, json};

struct Wandering;

impl Reconciler for Wandering {
    fn describe() -> Manifest {
        Manifest::new(
            "wandering-requirements",
            "0.1.0",
            kind("podtato.example.com", "v1alpha1", "PotatoHead"),
        )
        .with_children([kind("", "v1", "ConfigMap")])
        .with_related([kind("", "v1", "ConfigMap")])
    }

    fn requirements(_parent: &str, _config: &str) -> Result<Vec<Requirement>, ReconcileError> {
        // The clock alone may read the same twice (its resolution is the host's); a fresh
        // instance's hash keys are random, so two calls never agree.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|since| since.as_nanos())
            .unwrap_or_default();
        let random = RandomState::new().hash_one(nanos);
        Ok(vec![Requirement::names(
            "now",
            kind("", "v1", "ConfigMap"),
            [format!("at-{nanos}-{random}")],
        )])
    }

    fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
        let parent: Value = serde_json::from_str(&observed.parent)
            .map_err(|e| ReconcileError::Transient(e.to_string()))?;
        let name = parent["metadata"]["name"].as_str().unwrap_or("x");
        let ok = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": format!("{name}-ok") } });
        Ok(Desired::children(vec![ok.to_string()]))
    }
}

guest_kit::export_guest!(Wandering);
