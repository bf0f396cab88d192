//! Test guest whose parent kind is not PotatoHead: for every ConfigMap it wants one
//! ServiceAccount `<name>-echo`. Used to show that a guest for another parent kind is refused by
//! default and taken (with a controller restart) under `--allow-parent-kind-change`.

use guest_kit::component::{Desired, Manifest, Observed, ReconcileError, Reconciler, kind};
use serde_json::{Value, json};

struct Echo;

impl Reconciler for Echo {
    fn describe() -> Manifest {
        Manifest::new("configmap-echo", "0.1.0", kind("", "v1", "ConfigMap")).with_children([kind(
            "",
            "v1",
            "ServiceAccount",
        )])
    }

    fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
        let parent: Value = serde_json::from_str(&observed.parent)
            .map_err(|e| ReconcileError::Transient(e.to_string()))?;
        let name = parent["metadata"]["name"].as_str().unwrap_or("x");
        let echo = json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": format!("{name}-echo") } });
        Ok(Desired::children(vec![echo.to_string()]))
    }
}

guest_kit::export_guest!(Echo);
