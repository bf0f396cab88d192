//! "Is the desired state already met?": a desired child compared with the observed object, field
//! by field. Pure.
//!
//! # Assumptions
//! "Already met" needs two things: the child carries the digest of exactly this desired object
//! (so a field the guest stopped setting still gets removed by an apply), and every field of the
//! desired object has the same value on the observed one (so edits by others are reverted).

use kube::api::DynamicObject;
use serde_json::Value;

/// True when applying `desired` (prepared) to the observed child would change nothing.
///
/// Compares field by field against the object as it is held (`data` is already JSON), so only
/// the small `metadata` is converted: turning each whole observed child into a `Value` first was
/// most of a steady-state reconcile's CPU.
pub fn is_satisfied(desired: &Value, observed: &DynamicObject) -> bool {
    let Some(desired) = desired.as_object() else {
        return false;
    };
    desired.iter().all(|(key, want)| match key.as_str() {
        "apiVersion" => observed
            .types
            .as_ref()
            .is_some_and(|t| want.as_str() == Some(t.api_version.as_str())),
        "kind" => observed
            .types
            .as_ref()
            .is_some_and(|t| want.as_str() == Some(t.kind.as_str())),
        "metadata" => {
            serde_json::to_value(&observed.metadata).is_ok_and(|have| contains(&have, want))
        }
        _ => match observed.data.get(key) {
            Some(have) => contains(have, want),
            None => is_zero(want),
        },
    })
}

/// Whether every field set in `desired` has the same value in `observed`.
///
/// Lists must match element by element (same length): server-side apply replaces atomic lists
/// and a longer observed list of a keyed list means an entry to remove. A field the API server
/// omits because it holds its zero value (`""`, `0`, `false`, empty list or map) matches a desired
/// zero value, since Kubernetes types serialize those with `omitempty`.
pub fn contains(observed: &Value, desired: &Value) -> bool {
    match (observed, desired) {
        (Value::Object(observed), Value::Object(desired)) => {
            desired.iter().all(|(key, want)| match observed.get(key) {
                Some(have) => contains(have, want),
                None => is_zero(want),
            })
        }
        (Value::Array(observed), Value::Array(desired)) => {
            observed.len() == desired.len()
                && observed
                    .iter()
                    .zip(desired)
                    .all(|(have, want)| contains(have, want))
        }
        (Value::Number(have), Value::Number(want)) => have.as_f64() == want.as_f64(),
        (have, want) => have == want,
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use crate::cluster::ownership::fixtures::parent;
    use serde_json::json;

    use super::*;
    use crate::reconcile::prepare::prepare;

    fn prepared(replicas: i64) -> Value {
        let mut object = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "web", "namespace": "ns" },
            "spec": { "replicas": replicas, "template": { "spec": { "containers": [{ "name": "c", "image": "i:1" }] } } },
        });
        prepare(&mut object, &parent(), "wasm-reconciler");
        object
    }

    fn as_observed(value: &Value) -> DynamicObject {
        serde_json::from_value(value.clone()).unwrap()
    }

    #[test]
    fn an_observed_child_with_server_defaults_added_is_satisfied() {
        let desired = prepared(1);
        let mut observed = desired.clone();
        observed["metadata"]["uid"] = json!("x");
        observed["spec"]["strategy"] = json!({ "type": "RollingUpdate" });
        observed["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        observed["status"] = json!({ "replicas": 1 });
        assert!(is_satisfied(&desired, &as_observed(&observed)));
    }

    #[test]
    fn an_edited_field_is_not_satisfied() {
        let desired = prepared(1);
        let mut observed = desired.clone();
        observed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("evil:1");
        assert!(!is_satisfied(&desired, &as_observed(&observed)));
    }

    #[test]
    fn a_changed_desired_state_is_not_satisfied_by_the_old_object() {
        let observed = as_observed(&prepared(1));
        assert!(!is_satisfied(&prepared(2), &observed));
    }

    #[test]
    fn a_field_removed_from_the_desired_state_needs_an_apply() {
        // Old desired had a label; the new one drops it. Every new field is present on the
        // observed object, but the digest differs, so the apply that removes the label happens.
        let mut old = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c", "labels": { "x": "1" } } });
        prepare(&mut old, &parent(), "m");
        let mut new =
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" } });
        prepare(&mut new, &parent(), "m");
        assert!(!is_satisfied(&new, &as_observed(&old)));
    }

    #[test]
    fn zero_values_omitted_by_the_server_still_match() {
        let desired = json!({ "env": [{ "name": "A", "value": "" }], "paused": false });
        let observed = json!({ "env": [{ "name": "A" }] });
        assert!(contains(&observed, &desired));
        assert!(!contains(&json!({ "env": [] }), &desired));
    }
}
