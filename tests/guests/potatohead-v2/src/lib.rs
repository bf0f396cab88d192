//! Test guest for hot swap: the default PotatoHead guest's decisions, plus the label
//! `podtato.example.com/variant: v2` on every child, so a test can see which guest decided.
//!
//! It compiles the default guest's decision modules into itself (rather than depending on the
//! `guest-potatohead` crate, whose component exports would clash with these).

#[path = "../../../../guest-potatohead/src/children.rs"]
pub mod children;
#[path = "../../../../guest-potatohead/src/parts.rs"]
pub mod parts;
#[path = "../../../../guest-potatohead/src/reconcile.rs"]
pub mod reconcile;
#[path = "../../../../guest-potatohead/src/spec.rs"]
pub mod spec;
#[path = "../../../../guest-potatohead/src/status.rs"]
pub mod status;
#[path = "../../../../guest-potatohead/src/validate.rs"]
pub mod validate;

#[cfg(target_arch = "wasm32")]
mod component {
    use crate::{reconcile, spec};

    wit_bindgen::generate!({ path: "../../../wit", world: "reconciler" });

    use exports::wasm_reconciler::reconciler::guest::{
        Desired, Guest, Manifest, Observed, ReconcileError,
    };
    use wasm_reconciler::reconciler::types::GroupVersionKind;

    struct PotatoHeadV2;

    fn gvk(group: &str, version: &str, kind: &str) -> GroupVersionKind {
        GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    impl Guest for PotatoHeadV2 {
        fn describe() -> Manifest {
            Manifest {
                name: "potatohead-v2".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                parent: gvk(spec::GROUP, spec::VERSION, spec::KIND),
                children: vec![
                    gvk("apps", "v1", "Deployment"),
                    gvk("", "v1", "Service"),
                    gvk("", "v1", "ConfigMap"),
                ],
            }
        }

        fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
            let desired =
                reconcile::reconcile(&observed.parent, &observed.children, observed.finalizing)
                    .map_err(|reconcile::ReconcileError::InvalidSpec(reason)| {
                        ReconcileError::InvalidSpec(reason)
                    })?;
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
            })
        }
    }

    export!(PotatoHeadV2);
}
