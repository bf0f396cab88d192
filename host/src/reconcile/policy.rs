//! The output policy: the host's promise to cluster admins about what a guest can make it write.
//! A guest's output is checked as a whole before anything is applied or pruned; one violation
//! refuses the whole reconcile.
//!
//! # Guarantees
//! A desired child that passes [`check_children`]
//! - is a JSON object of a kind the guest declared;
//! - lives where the placement rule allows (`placement.rs`): for a namespaced parent, a namespaced
//!   kind in the parent's namespace (or naming none, and put there); for a cluster-scoped parent,
//!   a cluster-scoped kind, or a namespaced kind in the namespace it names, never a protected one;
//! - has a valid `metadata.name`, unique per kind and namespace;
//! - does not set fields the host owns: `metadata.ownerReferences`, `metadata.managedFields`,
//!   `metadata.uid`, `metadata.resourceVersion`, or `status`;
//! - carries no `metadata.finalizers` (the host never removes one, so the child, and with it its
//!   namespace, could never be deleted);
//! - has `metadata.labels` and `metadata.annotations`, when present, as maps of strings (the
//!   host adds its own entries to both; any other shape would be refused by the API server).
//!
//! A status that passes [`check_status`] is a JSON object whose `conditions`, when present, is a
//! list of objects each with a string `type` (the host keeps the `Ready` condition and the
//! transition times in that list).
//!
//! One more rule needs the API server and is checked by the reconcile before anything is applied
//! (`take_over.rs`, [`PolicyViolation::TakeOver`]): a child that does not exist yet in the host's caches must not
//! exist on the server under another controller, or under none.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use crate::cluster::ResolvedKind;

use super::placement::{self, Placement};

/// A desired child that passed the policy.
#[derive(Clone, Debug)]
pub struct DesiredChild {
    pub kind: Arc<ResolvedKind>,
    /// Empty for a cluster-scoped kind.
    pub namespace: String,
    pub name: String,
    pub object: Value,
}

/// Why a guest's output was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PolicyViolation {
    /// The child is not a JSON object.
    #[error("desired child #{index} is not a JSON object: {reason}")]
    NotAnObject { index: usize, reason: String },
    /// The child's `apiVersion`/`kind` is missing or not among the kinds the guest declared.
    #[error("desired child #{index} is a {kind}, which the guest did not declare as a child kind")]
    UndeclaredKind { index: usize, kind: String },
    /// The child's kind is cluster-scoped; a namespaced parent may only own namespaced objects.
    #[error(
        "desired child {kind} {name:?} is cluster-scoped; the children of a namespaced parent \
         must live in the parent's namespace"
    )]
    ClusterScoped { kind: String, name: String },
    /// A cluster-scoped parent's namespaced child names no namespace.
    #[error(
        "desired child {kind} {name:?} names no metadata.namespace; a cluster-scoped parent has \
         no namespace to put it in, so each namespaced child must name its own"
    )]
    NoNamespace { kind: String, name: String },
    /// A cluster-scoped child names a namespace.
    #[error(
        "desired child {kind} {name:?} is cluster-scoped but names metadata.namespace \
         {namespace:?}; leave the namespace out"
    )]
    NamespaceOnClusterScoped {
        kind: String,
        name: String,
        namespace: String,
    },
    /// A cluster-scoped parent's child would be in (or be) a protected namespace.
    #[error(
        "desired child {kind} {name:?} would write to namespace {namespace:?}, which the host \
         protects (Kubernetes' own namespaces and the host's); start the host with \
         --allow-protected-namespace={namespace} to allow it"
    )]
    ProtectedNamespace {
        kind: String,
        name: String,
        namespace: String,
    },
    /// The child names a namespace other than the parent's.
    #[error(
        "desired child {kind} {name:?} is in namespace {namespace:?}; children must be in the parent's namespace {parent_namespace:?}"
    )]
    OtherNamespace {
        kind: String,
        name: String,
        namespace: String,
        parent_namespace: String,
    },
    /// The child has no name or an invalid one.
    #[error("desired child #{index} ({kind}) has an invalid metadata.name {name:?}: {reason}")]
    InvalidName {
        index: usize,
        kind: String,
        name: String,
        reason: &'static str,
    },
    /// The child sets a field the host owns.
    #[error("desired child {kind} {name:?} sets {field}, which only the host may set")]
    HostOwnedField {
        kind: String,
        name: String,
        field: &'static str,
    },
    /// The child has a metadata field of the wrong shape.
    #[error("desired child {kind} {name:?} has an invalid {field}: {reason}")]
    InvalidMetadata {
        kind: String,
        name: String,
        field: &'static str,
        reason: &'static str,
    },
    /// The status is not a JSON object, or its `conditions` are not condition objects.
    #[error("the desired status is invalid: {reason}")]
    InvalidStatus { reason: String },
    /// A desired child already exists and is not controlled by this parent: applying it would
    /// take it over (and a later prune could delete something the host never created).
    #[error(
        "desired child {kind} {name:?} already exists and is controlled by {controller}; the host does not take over objects it did not create"
    )]
    TakeOver {
        kind: String,
        name: String,
        controller: String,
    },
    /// Another parent of this host is creating a child of that name right now.
    #[error(
        "desired child {kind} {name:?} is being created by another parent (UID {parent_uid}); \
         each name goes to one parent"
    )]
    NameClaimed {
        kind: String,
        name: String,
        parent_uid: String,
    },
    /// Two children have the same kind, namespace and name.
    #[error("desired child {kind} {name:?} is returned twice")]
    Duplicate { kind: String, name: String },
}

const HOST_OWNED_METADATA: [&str; 4] =
    ["ownerReferences", "managedFields", "uid", "resourceVersion"];

/// Checks every desired child (JSON text from the guest) of a parent placed at `placement`;
/// `kinds` are the child kinds the guest declared.
///
/// # Errors
/// The first [`PolicyViolation`] found; nothing of this output may then be applied or pruned.
pub fn check_children(
    children: &[String],
    placement: Placement<'_>,
    kinds: &[Arc<ResolvedKind>],
) -> Result<Vec<DesiredChild>, PolicyViolation> {
    let mut seen = HashSet::with_capacity(children.len());
    let mut checked = Vec::with_capacity(children.len());
    for (index, text) in children.iter().enumerate() {
        let child = check_child(index, text, placement, kinds)?;
        let key = (
            child.kind.display_name(),
            child.namespace.clone(),
            child.name.clone(),
        );
        if !seen.insert(key) {
            return Err(PolicyViolation::Duplicate {
                kind: child.kind.display_name(),
                name: child.name,
            });
        }
        checked.push(child);
    }
    Ok(checked)
}

/// Checks one desired child, the `index`th, and puts it in its namespace.
fn check_child(
    index: usize,
    text: &str,
    placement: Placement<'_>,
    kinds: &[Arc<ResolvedKind>],
) -> Result<DesiredChild, PolicyViolation> {
    let mut object: Value =
        serde_json::from_str(text).map_err(|e| PolicyViolation::NotAnObject {
            index,
            reason: e.to_string(),
        })?;
    if !object.is_object() {
        return Err(PolicyViolation::NotAnObject {
            index,
            reason: "not an object".into(),
        });
    }
    let kind = declared_kind(index, &object, kinds)?;
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if let Err(reason) = check_name(&name) {
        return Err(PolicyViolation::InvalidName {
            index,
            kind: kind.display_name(),
            name,
            reason,
        });
    }
    let namespace = placement::place(&kind, &name, &object, placement)?;
    if let Some(field) = host_owned_field(&object) {
        return Err(PolicyViolation::HostOwnedField {
            kind: kind.display_name(),
            name,
            field,
        });
    }
    if let Err((field, reason)) = check_metadata_shapes(&object["metadata"]) {
        return Err(PolicyViolation::InvalidMetadata {
            kind: kind.display_name(),
            name,
            field,
            reason,
        });
    }
    if !namespace.is_empty() {
        object["metadata"]["namespace"] = Value::String(namespace.clone());
    }
    Ok(DesiredChild {
        kind,
        namespace,
        name,
        object,
    })
}

/// The declared kind the object's `apiVersion` and `kind` name.
fn declared_kind(
    index: usize,
    object: &Value,
    kinds: &[Arc<ResolvedKind>],
) -> Result<Arc<ResolvedKind>, PolicyViolation> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind_name = object["kind"].as_str().unwrap_or_default();
    kinds
        .iter()
        .find(|k| k.resource.api_version == api_version && k.resource.kind == kind_name)
        .cloned()
        .ok_or_else(|| PolicyViolation::UndeclaredKind {
            index,
            kind: format!("{kind_name} ({api_version})"),
        })
}

/// The first field the child sets that only the host may set.
fn host_owned_field(object: &Value) -> Option<&'static str> {
    let metadata = HOST_OWNED_METADATA
        .into_iter()
        .find(|field| object["metadata"].get(field).is_some())
        .map(|field| match field {
            "ownerReferences" => "metadata.ownerReferences",
            "managedFields" => "metadata.managedFields",
            "uid" => "metadata.uid",
            _ => "metadata.resourceVersion",
        });
    metadata.or_else(|| object.get("status").map(|_| "status"))
}

/// Checks the desired status (JSON text from the guest): it must be a JSON object.
///
/// # Errors
/// [`PolicyViolation::InvalidStatus`] otherwise.
pub fn check_status(text: &str) -> Result<Value, PolicyViolation> {
    let invalid = |reason: String| PolicyViolation::InvalidStatus { reason };
    let status = serde_json::from_str::<Value>(text).map_err(|e| invalid(e.to_string()))?;
    if !status.is_object() {
        return Err(invalid("not a JSON object".into()));
    }
    match status.get("conditions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(conditions)) => {
            if let Some(index) = conditions
                .iter()
                .position(|c| !c.get("type").is_some_and(Value::is_string))
            {
                return Err(invalid(format!(
                    "conditions[{index}] is not an object with a string `type`"
                )));
            }
        }
        Some(_) => return Err(invalid("`conditions` is not a list".into())),
    }
    Ok(status)
}

/// The metadata fields a child may set but whose shape the host relies on: `finalizers` are
/// refused outright; `labels` and `annotations` must be maps of strings (the host writes its
/// own entries into both before applying).
fn check_metadata_shapes(metadata: &Value) -> Result<(), (&'static str, &'static str)> {
    if metadata.get("finalizers").is_some_and(|f| !f.is_null()) {
        return Err((
            "metadata.finalizers",
            "children may not carry finalizers: the host never removes them, so the child \
             (and its namespace) could never be deleted",
        ));
    }
    for (field, path) in [
        ("labels", "metadata.labels"),
        ("annotations", "metadata.annotations"),
    ] {
        match metadata.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) if map.values().all(Value::is_string) => {}
            Some(Value::Object(_)) => return Err((path, "every value must be a string")),
            Some(_) => return Err((path, "must be a map of strings")),
        }
    }
    Ok(())
}

/// A DNS-1123 subdomain, the rule for most object names.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("missing");
    }
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !valid_chars || !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Err(
            "must be lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kube::api::{ApiResource, GroupVersionKind};
    use serde_json::json;

    use super::*;

    fn kinds() -> Vec<Arc<ResolvedKind>> {
        let kind = |g: &str, k: &str, namespaced: bool| {
            let gvk = GroupVersionKind::gvk(g, "v1", k);
            Arc::new(ResolvedKind {
                resource: ApiResource::from_gvk(&gvk),
                gvk,
                namespaced,
            })
        };
        vec![
            kind("apps", "Deployment", true),
            kind("", "Service", true),
            kind("", "Namespace", false),
        ]
    }

    fn deployment(name: &str) -> Value {
        json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": name } })
    }

    fn check_one(object: Value) -> Result<Vec<DesiredChild>, PolicyViolation> {
        check_children(&[object.to_string()], Placement::Namespace("ns"), &kinds())
    }

    #[test]
    fn declared_children_pass_and_are_put_in_the_parents_namespace() {
        let checked = check_one(deployment("web")).unwrap();
        assert_eq!(checked[0].kind.gvk.kind, "Deployment");
        assert_eq!(checked[0].object["metadata"]["namespace"], "ns");
    }

    #[test]
    fn an_undeclared_kind_is_refused() {
        let binding = json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": { "name": "x" } });
        assert!(matches!(
            check_one(binding),
            Err(PolicyViolation::UndeclaredKind { .. })
        ));
    }

    #[test]
    fn a_cluster_scoped_kind_is_refused_even_when_declared() {
        let namespace =
            json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "x" } });
        assert!(matches!(
            check_one(namespace),
            Err(PolicyViolation::ClusterScoped { .. })
        ));
    }

    #[test]
    fn another_namespace_is_refused() {
        let mut object = deployment("web");
        object["metadata"]["namespace"] = json!("kube-system");
        assert!(matches!(
            check_one(object),
            Err(PolicyViolation::OtherNamespace { .. })
        ));
    }

    #[test]
    fn host_owned_fields_are_refused() {
        let mut owned = deployment("web");
        owned["metadata"]["ownerReferences"] = json!([]);
        assert!(matches!(
            check_one(owned),
            Err(PolicyViolation::HostOwnedField {
                field: "metadata.ownerReferences",
                ..
            })
        ));
        let mut with_status = deployment("web");
        with_status["status"] = json!({});
        assert!(matches!(
            check_one(with_status),
            Err(PolicyViolation::HostOwnedField {
                field: "status",
                ..
            })
        ));
    }

    #[test]
    fn bad_names_and_duplicates_are_refused() {
        for name in ["", "Web", "-web", "web_1", &"a".repeat(254)] {
            assert!(
                matches!(
                    check_one(deployment(name)),
                    Err(PolicyViolation::InvalidName { .. })
                ),
                "{name:?}"
            );
        }
        let twice = [deployment("web").to_string(), deployment("web").to_string()];
        assert!(matches!(
            check_children(&twice, Placement::Namespace("ns"), &kinds()),
            Err(PolicyViolation::Duplicate { .. })
        ));
    }

    #[test]
    fn a_status_must_be_an_object_with_condition_objects() {
        assert_eq!(check_status(r#"{"a":1}"#).unwrap()["a"], 1);
        assert!(check_status(r#"{"conditions":[{"type":"Ready","status":"True"}]}"#).is_ok());
        for bad in [
            "[1]",
            "{",
            r#"{"conditions":["x",5]}"#,
            r#"{"conditions":"Ready"}"#,
            r#"{"conditions":[{"status":"True"}]}"#,
        ] {
            assert!(
                matches!(
                    check_status(bad),
                    Err(PolicyViolation::InvalidStatus { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn labels_and_annotations_must_be_string_maps_and_finalizers_are_refused() {
        for (field, value) in [
            ("labels", json!("app=web")),
            ("labels", json!({ "n": 5 })),
            ("annotations", json!(["a"])),
            ("finalizers", json!(["example.com/keep"])),
        ] {
            let mut object = deployment("web");
            object["metadata"][field] = value.clone();
            assert!(
                matches!(
                    check_one(object),
                    Err(PolicyViolation::InvalidMetadata { .. })
                ),
                "{field}: {value}"
            );
        }
        let mut fine = deployment("web");
        fine["metadata"]["labels"] = json!({ "app": "web" });
        fine["metadata"]["annotations"] = Value::Null;
        assert!(check_one(fine).is_ok());
    }

    #[test]
    fn non_objects_are_refused() {
        let texts = ["{not json".to_string(), "[1,2]".to_string()];
        for text in texts {
            assert!(matches!(
                check_children(&[text], Placement::Namespace("ns"), &kinds()),
                Err(PolicyViolation::NotAnObject { .. })
            ));
        }
    }
}
