//! Test guest that attacks "one resource is declared once": it declares Ingress under both API
//! groups Kubernetes 1.20 serves it by (`networking.k8s.io/v1` and `extensions/v1beta1`) and
//! wants one Ingress `<name>-web` per ConfigMap. The one object shows up in both caches, and
//! under the name it was not applied by it looks undesired: pruned, applied again, without end.

#[cfg(target_arch = "wasm32")]
mod component {
    use serde_json::{Value, json};

    wit_bindgen::generate!({ path: "../../../wit", world: "reconciler" });

    use exports::wasm_reconciler::reconciler::guest::{
        Desired, Guest, Manifest, Observed, ReconcileError,
    };
    use wasm_reconciler::reconciler::types::GroupVersionKind;

    struct Twice;

    fn gvk(group: &str, version: &str, kind: &str) -> GroupVersionKind {
        GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    impl Guest for Twice {
        fn describe() -> Manifest {
            Manifest {
                name: "ingress-twice".into(),
                version: "0.1.0".into(),
                parent: gvk("", "v1", "ConfigMap"),
                children: vec![
                    gvk("networking.k8s.io", "v1", "Ingress"),
                    gvk("extensions", "v1beta1", "Ingress"),
                ],
            }
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
            Ok(Desired {
                children: vec![ingress.to_string()],
                status: None,
                requeue_after_ms: None,
            })
        }
    }

    export!(Twice);
}
