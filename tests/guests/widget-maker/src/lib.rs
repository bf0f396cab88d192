//! Test guest whose child kind is a custom resource: one Widget `<name>-widget` per PotatoHead.
//! It attacks nothing itself; the test deletes the Widget CRD under it, which makes its child
//! watch fail while its cache still holds every Widget (a guest deciding, and pruning, on a
//! cache that no longer says what exists).

#[cfg(target_arch = "wasm32")]
mod component {
    use serde_json::{Value, json};

    wit_bindgen::generate!({ path: "../../../wit", world: "reconciler" });

    use exports::wasm_reconciler::reconciler::guest::{
        Desired, Guest, Manifest, Observed, ReconcileError,
    };
    use wasm_reconciler::reconciler::types::GroupVersionKind;

    struct WidgetMaker;

    fn gvk(group: &str, version: &str, kind: &str) -> GroupVersionKind {
        GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    impl Guest for WidgetMaker {
        fn describe() -> Manifest {
            Manifest {
                name: "widget-maker".into(),
                version: "0.1.0".into(),
                parent: gvk("podtato.example.com", "v1alpha1", "PotatoHead"),
                children: vec![gvk("test.wasm-reconciler.io", "v1", "Widget")],
            }
        }

        fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
            let parent: Value = serde_json::from_str(&observed.parent)
                .map_err(|e| ReconcileError::Transient(e.to_string()))?;
            let name = parent["metadata"]["name"].as_str().unwrap_or("x");
            let widget = json!({
                "apiVersion": "test.wasm-reconciler.io/v1",
                "kind": "Widget",
                "metadata": { "name": format!("{name}-widget") },
                "spec": { "size": 1 },
            });
            Ok(Desired {
                children: vec![widget.to_string()],
                status: None,
                requeue_after_ms: None,
            })
        }
    }

    export!(WidgetMaker);
}
