//! Test guest, legal alone, that attacks the host together with `configmap-echo`: for every
//! ServiceAccount it wants one ConfigMap `<name>-echo`, while `configmap-echo` wants a
//! ServiceAccount for every ConfigMap. Served side by side, one ConfigMap would make a
//! ServiceAccount, which makes a ConfigMap, which makes… (a fork loop across guests).

#[cfg(target_arch = "wasm32")]
mod component {
    use serde_json::{Value, json};

    wit_bindgen::generate!({ path: "../../../wit", world: "reconciler" });

    use exports::wasm_reconciler::reconciler::guest::{
        Desired, Guest, Manifest, Observed, ReconcileError,
    };
    use wasm_reconciler::reconciler::types::GroupVersionKind;

    struct Echo;

    fn core(kind: &str) -> GroupVersionKind {
        GroupVersionKind {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
        }
    }

    impl Guest for Echo {
        fn describe() -> Manifest {
            Manifest {
                name: "serviceaccount-echo".into(),
                version: "0.1.0".into(),
                parent: core("ServiceAccount"),
                children: vec![core("ConfigMap")],
            }
        }

        fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
            let parent: Value = serde_json::from_str(&observed.parent)
                .map_err(|e| ReconcileError::Transient(e.to_string()))?;
            let name = parent["metadata"]["name"].as_str().unwrap_or("x");
            let echo = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": format!("{name}-echo") }, "data": { "from": name } });
            Ok(Desired {
                children: vec![echo.to_string()],
                status: None,
                requeue_after_ms: None,
            })
        }
    }

    export!(Echo);
}
