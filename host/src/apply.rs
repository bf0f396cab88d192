//! Writing children: server-side apply under one field manager, with the host's owner reference
//! and labels; skipping children whose desired state is already met; pruning the undesired.
//!
//! # Guarantees
//! - Every apply is declarative (server-side apply, forced: the host's fields win over other
//!   managers' for the fields it sets, and fields it does not set are left alone).
//! - A delete carries a UID precondition: it never removes an object that replaced the one the
//!   host saw under the same name.
//!
//! # Assumptions
//! "Already met" needs two things: the child carries the digest of exactly this desired object
//! (so a field the guest stopped setting still gets removed by an apply), and every field of the
//! desired object has the same value on the observed one (so edits by others are reverted).

use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Label the host puts on every child; its watches select on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Annotation carrying the digest of the desired object last applied.
pub const DESIRED_DIGEST_ANNOTATION: &str = "wasm-reconciler.example.com/desired-digest";

/// The parent a child is applied for.
#[derive(Clone, Debug)]
pub struct ParentRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// Adds what the host owns on every child: the controller owner reference, the managed-by label
/// and the desired-state digest.
///
/// Never panics, whatever `object` is: a field of the wrong shape on the way is replaced by a map
/// (the output policy refuses such children before this, so that only happens to callers that
/// skipped it).
pub fn prepare(object: &mut Value, parent: &ParentRef, managed_by: &str) {
    let metadata = map_in(as_map(object), "metadata");
    map_in(metadata, "labels").insert(MANAGED_BY_LABEL.into(), json!(managed_by));
    metadata.insert(
        "ownerReferences".into(),
        json!([{
            "apiVersion": parent.api_version,
            "kind": parent.kind,
            "name": parent.name,
            "uid": parent.uid,
            "controller": true,
            // Foreground deletion of the parent waits for its children.
            "blockOwnerDeletion": true,
        }]),
    );
    let digest = desired_digest(object);
    let metadata = map_in(as_map(object), "metadata");
    map_in(metadata, "annotations").insert(DESIRED_DIGEST_ANNOTATION.into(), json!(digest));
}

/// `value` as a map, replacing it with an empty one if it is something else.
fn as_map(value: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !value.is_object() {
        *value = Value::Object(serde_json::Map::new());
    }
    match value {
        Value::Object(map) => map,
        _ => unreachable!("replaced by a map above"),
    }
}

/// The map under `key` in `map`, created (or replacing a non-map) as needed.
fn map_in<'a>(
    map: &'a mut serde_json::Map<String, Value>,
    key: &str,
) -> &'a mut serde_json::Map<String, Value> {
    as_map(map.entry(key).or_insert(Value::Null))
}

fn desired_digest(object: &Value) -> String {
    let bytes = serde_json::to_vec(object).expect("JSON values serialize");
    let digest = Sha256::digest(&bytes);
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

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
pub(crate) fn contains(observed: &Value, desired: &Value) -> bool {
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

/// Server-side applies one prepared child.
pub async fn apply(
    api: &Api<DynamicObject>,
    name: &str,
    object: &Value,
    field_manager: &str,
) -> Result<(), kube::Error> {
    api.patch(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(object),
    )
    .await?;
    Ok(())
}

/// What a prune did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pruned {
    Deleted,
    /// Already gone, or replaced by another object with the same name (UID precondition failed).
    AlreadyGone,
}

/// Deletes a child the parent no longer wants, only if it still is the object with `uid`.
pub async fn prune(api: &Api<DynamicObject>, name: &str, uid: &str) -> Result<Pruned, kube::Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(Pruned::Deleted),
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {
            Ok(Pruned::AlreadyGone)
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent() -> ParentRef {
        ParentRef {
            api_version: "example.com/v1".into(),
            kind: "Parent".into(),
            name: "p".into(),
            uid: "u1".into(),
        }
    }

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
    fn prepare_adds_the_controller_reference_label_and_digest() {
        let object = prepared(1);
        let owner = &object["metadata"]["ownerReferences"][0];
        assert_eq!(
            (owner["uid"].as_str(), owner["controller"].as_bool()),
            (Some("u1"), Some(true))
        );
        assert_eq!(
            object["metadata"]["labels"][MANAGED_BY_LABEL],
            "wasm-reconciler"
        );
        assert_ne!(
            prepared(1)["metadata"]["annotations"][DESIRED_DIGEST_ANNOTATION],
            prepared(2)["metadata"]["annotations"][DESIRED_DIGEST_ANNOTATION]
        );
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
