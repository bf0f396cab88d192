//! Test guest, legal alone, that attacks the host together with `configmap-echo`: for every
//! ServiceAccount it wants one ConfigMap `<name>-echo`, while `configmap-echo` wants a
//! ServiceAccount for every ConfigMap. Served side by side, one ConfigMap would make a
//! ServiceAccount, which makes a ConfigMap, which makes… (a fork loop across guests).

use guest_kit::component::{Desired, Manifest, Observed, ReconcileError, Reconciler, kind};
use serde_json::{Value, json};

struct Echo;

impl Reconciler for Echo {
    fn describe() -> Manifest {
        Manifest::new(
            "serviceaccount-echo",
            "0.1.0",
            kind("", "v1", "ServiceAccount"),
        )
        .with_children([kind("", "v1", "ConfigMap")])
    }

    fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
        let parent: Value = serde_json::from_str(&observed.parent)
            .map_err(|e| ReconcileError::Transient(e.to_string()))?;
        let name = parent["metadata"]["name"].as_str().unwrap_or("x");
        let echo = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": format!("{name}-echo") }, "data": { "from": name } });
        Ok(Desired::children(vec![echo.to_string()]))
    }
}

guest_kit::export_guest!(Echo);
