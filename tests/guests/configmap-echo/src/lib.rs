//! Test guest whose parent kind is not PotatoHead: for every ConfigMap it wants one
//! ServiceAccount `<name>-echo`. Used to show that a guest for another parent kind is refused by
//! default and taken (with a controller restart) under `--allow-parent-kind-change`.

#[cfg(target_arch = "wasm32")]
mod component {
    use serde_json::{Value, json};

    wit_bindgen::generate!({ path: "../../../wit", world: "reconciler" });

    use exports::wasm_reconciler::reconciler::guest::{
        Desired, Guest, Manifest, Observed, ReconcileError,
    };
    use wasm_reconciler::reconciler::types::GroupVersionKind;

    struct Echo;

    impl Guest for Echo {
        fn describe() -> Manifest {
            Manifest {
                name: "configmap-echo".into(),
                version: "0.1.0".into(),
                parent: GroupVersionKind {
                    group: String::new(),
                    version: "v1".into(),
                    kind: "ConfigMap".into(),
                },
                children: vec![GroupVersionKind {
                    group: String::new(),
                    version: "v1".into(),
                    kind: "ServiceAccount".into(),
                }],
            }
        }

        fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
            let parent: Value = serde_json::from_str(&observed.parent)
                .map_err(|e| ReconcileError::Transient(e.to_string()))?;
            let name = parent["metadata"]["name"].as_str().unwrap_or("x");
            let echo = json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": format!("{name}-echo") } });
            Ok(Desired {
                children: vec![echo.to_string()],
                status: None,
                requeue_after_ms: None,
            })
        }
    }

    export!(Echo);
}
