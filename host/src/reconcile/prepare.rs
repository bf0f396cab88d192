//! What the host adds to every desired child before it is applied: the controller owner
//! reference, the managed-by label, and the digest of the desired object (which tells, later,
//! whether exactly this desired state was already applied). Pure.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::cluster::{MANAGED_BY_LABEL, ParentRef};

/// Annotation carrying the digest of the desired object last applied.
pub const DESIRED_DIGEST_ANNOTATION: &str = "wasm-reconciler.example.com/desired-digest";

/// Adds what the host owns on every child and returns the desired-state digest it annotated.
///
/// Never panics, whatever `object` is: a field of the wrong shape on the way is replaced by a map
/// (the output policy refuses such children before this, so that only happens to callers that
/// skipped it).
pub fn prepare(object: &mut Value, parent: &ParentRef, managed_by: &str) -> String {
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
    digest
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ownership::fixtures::parent;

    fn prepared(replicas: i64) -> Value {
        let mut object = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "web", "namespace": "ns" },
            "spec": { "replicas": replicas },
        });
        prepare(&mut object, &parent(), "wasm-reconciler");
        object
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
    fn the_returned_digest_is_the_annotated_one() {
        let mut object =
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" } });
        let digest = prepare(&mut object, &parent(), "m");
        assert_eq!(
            object["metadata"]["annotations"][DESIRED_DIGEST_ANNOTATION],
            digest.as_str()
        );
    }
}
