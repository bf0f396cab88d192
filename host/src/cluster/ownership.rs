//! Who owns what: the host's managed-by label, how objects are keyed, who controls an object
//! (its controller owner reference), and the parent a child is written for.

use kube::api::ObjectMeta;

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

/// What controls an existing object: its controller owner reference, whatever its kind. Which
/// parent kinds the host serves is decided where the holder is used (routing a child's event to
/// its parent's controller, the take-over rule), so one index serves every parent kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// The object's controller.
    Controller {
        api_version: String,
        kind: String,
        name: String,
        uid: String,
    },
    /// An object without a controller owner reference.
    Uncontrolled,
}

impl Holder {
    /// The controller reference among an object's owner references.
    pub fn of(meta: &ObjectMeta) -> Self {
        let controller = meta
            .owner_references
            .iter()
            .flatten()
            .find(|r| r.controller == Some(true));
        match controller {
            Some(owner) => Self::Controller {
                api_version: owner.api_version.clone(),
                kind: owner.kind.clone(),
                name: owner.name.clone(),
                uid: owner.uid.clone(),
            },
            None => Self::Uncontrolled,
        }
    }

    /// The controller's UID.
    pub fn uid(&self) -> Option<&str> {
        match self {
            Self::Controller { uid, .. } => Some(uid),
            Self::Uncontrolled => None,
        }
    }

    /// For messages: `PotatoHead "a"`, or `nothing (no controller owner reference)`.
    pub fn to_text(&self) -> String {
        match self {
            Self::Controller { kind, name, .. } => format!("{kind} {name:?}"),
            Self::Uncontrolled => "nothing (no controller owner reference)".to_string(),
        }
    }
}

/// Fixtures for unit tests of what reads ownership.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{ParentRef, ResourceName};

    /// A parent `p` (UID `u1`) of the kind `Parent.example.com/v1`.
    pub(crate) fn parent() -> ParentRef {
        ParentRef {
            api_version: "example.com/v1".into(),
            kind: "Parent".into(),
            name: "p".into(),
            uid: "u1".into(),
        }
    }

    /// The ConfigMap `name` in namespace `ns`.
    pub(crate) fn config_map_name(name: &str) -> ResourceName {
        ResourceName {
            group: String::new(),
            kind: "ConfigMap".into(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }
}
