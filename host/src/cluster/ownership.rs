//! Who owns what: the host's managed-by label, how objects are keyed, who controls an object
//! (its controller owner reference), and the parent a child is written for.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, ObjectMeta};

/// Label the host puts on every child; its watches select on it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// Namespace and name of an object of a known kind.
pub type ObjectName = (String, String);

/// The namespace and name in `meta` (empty when missing).
pub fn object_name(meta: &ObjectMeta) -> ObjectName {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// An object name as a resource sees it: group and kind (not version: `v1` and `v2` of one kind
/// are the same objects), namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceName {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// The parent a child is applied for: what its controller owner reference says.
#[derive(Clone, Debug)]
pub struct ParentRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

/// What controls an existing object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// A parent of the host's parent kind, by UID (name kept for messages).
    Parent { uid: String, name: String },
    /// Something else: its description (`ReplicaSet "x"`), or none.
    Other(Option<String>),
}

impl Holder {
    /// The controller reference among an object's owner references, sorted by whether it points
    /// at the parent kind.
    pub fn of(meta: &ObjectMeta, parent: &ApiResource) -> Self {
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true));
        match controller {
            Some(owner) if is_parent(owner, parent) => Self::Parent {
                uid: owner.uid.clone(),
                name: owner.name.clone(),
            },
            Some(owner) => Self::Other(Some(format!("{} {:?}", owner.kind, owner.name))),
            None => Self::Other(None),
        }
    }

    /// For messages: `PotatoHead "a"`, or `nothing (no controller owner reference)`.
    pub fn to_text(&self, parent: &ApiResource) -> String {
        match self {
            Self::Parent { name, .. } => format!("{} {name:?}", parent.kind),
            Self::Other(Some(description)) => description.clone(),
            Self::Other(None) => "nothing (no controller owner reference)".to_string(),
        }
    }
}

fn is_parent(owner: &OwnerReference, parent: &ApiResource) -> bool {
    owner.kind == parent.kind && owner.api_version == parent.api_version
}
