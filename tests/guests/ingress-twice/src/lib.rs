//! Test guest that attacks "one resource is declared once": it declares Ingress under both API
//! groups Kubernetes 1.20 serves it by (`networking.k8s.io/v1` and `extensions/v1beta1`) and
//! wants one Ingress `<name>-web` per ConfigMap. The one object shows up in both caches, and
//! under the name it was not applied by it looks undesired: pruned, applied again, without end.

use guest_kit::component::{Desired, Manifest, Observed, ReconcileError, Reconciler, kind};
use serde_json::{Value, json};

struct Twice;

impl Reconciler for Twice {
    fn describe() -> Manifest {
        Manifest::new("ingress-twice", "0.1.0", kind("", "v1", "ConfigMap")).with_children([
            kind("networking.k8s.io", "v1", "Ingress"),
            kind("extensions", "v1beta1", "Ingress"),
        ])
    }

    fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
        let parent: Value = serde_json::from_str(&observed.parent)
            .map_err(|e| ReconcileError::Transient(e.to_string()))?;
        let name = parent["metadata"]["name"].as_str().unwrap_or("x");
        let ingress = json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": { "name": format!("{name}-web") },
            "spec": { "defaultBackend": { "service": { "name": name, "port": { "number": 80 } } } }
        });
        Ok(Desired::children(vec![ingress.to_string()]))
    }
}

guest_kit::export_guest!(Twice);
