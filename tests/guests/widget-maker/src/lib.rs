//! Test guest whose child kind is a custom resource: one Widget `<name>-widget` per PotatoHead.
//! It attacks nothing itself; the test deletes the Widget CRD under it, which makes its child
//! watch fail while its cache still holds every Widget (a guest deciding, and pruning, on a
//! cache that no longer says what exists).

use guest_kit::component::{Desired, Manifest, Observed, ReconcileError, Reconciler, kind};
use serde_json::{Value, json};

struct WidgetMaker;

impl Reconciler for WidgetMaker {
    fn describe() -> Manifest {
        Manifest::new(
            "widget-maker",
            "0.1.0",
            kind("podtato.example.com", "v1alpha1", "PotatoHead"),
        )
        .with_children([kind("test.wasm-reconciler.io", "v1", "Widget")])
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
        Ok(Desired::children(vec![widget.to_string()]))
    }
}

guest_kit::export_guest!(WidgetMaker);
