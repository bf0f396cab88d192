//! Property test: the host's handling of a guest's output — the output policy, preparing children
//! for apply, comparing them with observed objects, computing the next status — never panics,
//! whatever JSON it is given. These are the steps both the controller and `render` run after the
//! guest call. Inputs are arbitrary JSON values and structure-aware mutations of real children
//! and statuses (the default guest's, computed natively): one field anywhere replaced by
//! anything.
//!
//! `make test` runs 3 000 cases; the long run of docs/benchmarks.md ("Containment: no panic on
//! untrusted JSON") is `PROPTEST_CASES=1000000 cargo test -p reconciler-host --test
//! untrusted_json` (43 minutes here in a debug build; `--release` is faster once built).

use std::sync::Arc;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use proptest::prelude::*;
use reconciler_host::cluster::{MANAGED_BY_LABEL, ParentRef, ResolvedKind};
use reconciler_host::reconcile::placement::{Placement, ProtectedNamespaces};
use reconciler_host::reconcile::status::{self, FailureReason, Outcome};
use reconciler_host::reconcile::{json_match, plan, policy, prepare};
use reconciler_host::sandbox::Decision;
use serde_json::{Map, Value, json};

fn kinds() -> Vec<Arc<ResolvedKind>> {
    let kind = |group: &str, version: &str, kind: &str, namespaced: bool| {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        Arc::new(ResolvedKind {
            resource: ApiResource::from_gvk(&gvk),
            gvk,
            namespaced,
        })
    };
    vec![
        kind("apps", "v1", "Deployment", true),
        kind("", "v1", "Service", true),
        kind("", "v1", "ConfigMap", true),
        kind("", "v1", "Namespace", false),
    ]
}

fn parent_ref() -> ParentRef {
    ParentRef {
        api_version: "podtato.example.com/v1alpha1".into(),
        kind: "PotatoHead".into(),
        name: "demo".into(),
        uid: "00000000-0000-0000-0000-000000000001".into(),
    }
}

/// The default guest's real output for the committed sample: 13 children and a status.
fn real_output() -> (Vec<Value>, Value) {
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/samples/potatohead.yaml"
    ))
    .unwrap();
    let parent: Value = serde_saphyr::from_str(&sample).unwrap();
    let desired =
        potatohead_decisions::reconcile::reconcile(&parent.to_string(), &[], false).unwrap();
    (desired.children, desired.status.unwrap())
}

/// Keys the host looks at, mixed with arbitrary ones, so generated objects reach deep paths.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "apiVersion", "kind", "metadata", "name", "namespace", "labels", "annotations",
            "finalizers", "ownerReferences", "status", "conditions", "type", "spec",
            "lastTransitionTime", "observedGeneration", "uid", "resourceVersion",
            "app.kubernetes.io/managed-by",
        ])
        .prop_map(String::from),
        1 => "[a-zA-Z./-]{0,10}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(vec![
            "v1",
            "apps/v1",
            "Deployment",
            "Service",
            "ConfigMap",
            "Ready"
        ])
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// `value` with the node found by following `path` (indices taken modulo each level's size)
/// replaced by `replacement`.
fn mutate(mut value: Value, path: &[usize], replacement: Value) -> Value {
    replace_at(&mut value, path, replacement);
    value
}

fn replace_at(node: &mut Value, path: &[usize], replacement: Value) {
    let Some((step, rest)) = path.split_first() else {
        *node = replacement;
        return;
    };
    match node {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(step % map.len()).unwrap().clone();
            replace_at(map.get_mut(&key).unwrap(), rest, replacement);
        }
        Value::Array(items) if !items.is_empty() => {
            let len = items.len();
            replace_at(&mut items[step % len], rest, replacement);
        }
        _ => *node = replacement,
    }
}

/// A guest output: real children and status with one mutation each, or arbitrary values.
fn guest_output() -> impl Strategy<Value = (Vec<Value>, Value)> {
    let (children, status) = real_output();
    let path = prop::collection::vec(any::<usize>(), 0..7);
    let mutated = (
        0..children.len(),
        path.clone(),
        json_value(),
        path,
        json_value(),
    )
        .prop_map(
            move |(which, child_path, child_value, status_path, status_value)| {
                let mut children = children.clone();
                children[which] = mutate(children[which].clone(), &child_path, child_value);
                (children, mutate(status.clone(), &status_path, status_value))
            },
        );
    prop_oneof![
        3 => mutated,
        1 => (prop::collection::vec(json_value(), 0..4), json_value()),
    ]
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3_000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn handling_a_guests_output_never_panics(
        (children, status) in guest_output(),
        observed_status in json_value(),
        observed_child in json_value(),
    ) {
        let texts: Vec<String> = children.iter().map(Value::to_string).collect();
        let decision = Decision { children: texts.clone(), status: Some(status.to_string()), requeue_after: None, events: Vec::new() };
        if let Ok(planned) = plan::plan(decision, &parent_ref(), Placement::Namespace("ns"), &kinds(), "wasm-reconciler") {
            prop_assert!(planned.children.len() == texts.len());
        }
        // The same output as a cluster-scoped parent's: never a panic, never a protected namespace.
        let protected = ProtectedNamespaces::default();
        if let Ok(checked) = policy::check_children(&texts, Placement::Cluster(&protected), &kinds()) {
            for child in checked {
                prop_assert!(!protected.contains(&child.namespace));
            }
        }
        if let Ok(checked) = policy::check_children(&texts, Placement::Namespace("ns"), &kinds()) {
            for mut child in checked {
                prepare::prepare(&mut child.object, &parent_ref(), "wasm-reconciler");
                prop_assert_eq!(
                    &child.object["metadata"]["labels"][MANAGED_BY_LABEL],
                    &json!("wasm-reconciler")
                );
                if let Ok(observed) = serde_json::from_value::<DynamicObject>(observed_child.clone()) {
                    json_match::is_satisfied(&child.object, &observed);
                }
            }
        }
        // prepare promises not to panic even on what the policy would refuse.
        let mut unchecked = observed_child.clone();
        prepare::prepare(&mut unchecked, &parent_ref(), "wasm-reconciler");

        let now = json!("2026-12-01T00:00:00Z");
        let stamp = json!({ "name": "g", "version": "1", "digest": "sha256:00" });
        let outcomes = [
            policy::check_status(&status.to_string())
                .ok()
                .map(|guest_status| Outcome::Reconciled { guest_status: Some(guest_status) }),
            Some(Outcome::Reconciled { guest_status: None }),
            Some(Outcome::Failed { reason: FailureReason::GuestFailed, message: "m".into() }),
        ];
        for outcome in outcomes.into_iter().flatten() {
            let next = status::next_status(Some(&observed_status), &outcome, Some(2), &stamp, &now);
            let conditions = next["conditions"].as_array().expect("conditions are a list");
            prop_assert!(conditions.iter().all(Value::is_object));
            prop_assert!(conditions.iter().any(|c| c["type"] == "Ready"));
            status::needs_write(Some(&observed_status), &next);
        }
    }
}
