//! Where a parent's children may live: the placement rule of the output policy.
//!
//! # Guarantees
//! - A namespaced parent's children are namespaced and in its own namespace (a child that names
//!   none is put there). Kubernetes does not allow a namespaced owner of a cluster-scoped object
//!   (the garbage collector would delete it), and a parent cannot reach outside its namespace.
//! - A cluster-scoped parent's children are cluster-scoped objects, or namespaced objects in the
//!   namespace each names (there is no parent namespace to default to), but never in a
//!   *protected* namespace: `kube-system`, `kube-public`, `kube-node-lease` and the host's own,
//!   unless the admin allows it (`--allow-protected-namespace`). A Namespace child named like a
//!   protected namespace is refused the same way (owning it would let a prune delete it).
//! - The observed children a reconcile sees, and so may prune, are those the rule admits: an
//!   object elsewhere carrying the host's label and the parent's UID was not written by the host.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::cluster::ResolvedKind;

use super::policy::PolicyViolation;

/// The namespaces Kubernetes itself keeps its objects in.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// The namespaces no cluster-scoped parent's child may be written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectedNamespaces(BTreeSet<String>);

impl Default for ProtectedNamespaces {
    /// Kubernetes' own namespaces.
    fn default() -> Self {
        Self::new(None, &[])
    }
}

impl ProtectedNamespaces {
    /// Kubernetes' own namespaces and the host's (`host_namespace`), minus those `allowed`.
    pub fn new(host_namespace: Option<&str>, allowed: &[String]) -> Self {
        let protected = SYSTEM_NAMESPACES
            .into_iter()
            .chain(host_namespace.filter(|ns| !ns.is_empty()))
            .filter(|ns| !allowed.iter().any(|allowed| allowed == ns))
            .map(str::to_owned)
            .collect();
        Self(protected)
    }

    pub fn contains(&self, namespace: &str) -> bool {
        self.0.contains(namespace)
    }

    /// `kube-node-lease, kube-public, kube-system`, or `none`.
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Where one parent's children may live.
#[derive(Clone, Copy, Debug)]
pub enum Placement<'a> {
    /// A namespaced parent: its own namespace.
    Namespace(&'a str),
    /// A cluster-scoped parent: anywhere but the protected namespaces.
    Cluster(&'a ProtectedNamespaces),
}

impl<'a> Placement<'a> {
    /// The placement of a parent in `namespace` (`None`: cluster-scoped).
    pub fn of(namespace: Option<&'a str>, protected: &'a ProtectedNamespaces) -> Self {
        match namespace {
            Some(namespace) => Self::Namespace(namespace),
            None => Self::Cluster(protected),
        }
    }

    /// The parent's namespace; `None` for a cluster-scoped parent.
    pub fn parent_namespace(&self) -> Option<&'a str> {
        match self {
            Self::Namespace(namespace) => Some(namespace),
            Self::Cluster(_) => None,
        }
    }

    /// Whether an existing child in `namespace` (empty: cluster-scoped) is one the rule admits,
    /// so one the reconcile may show the guest and prune.
    pub fn admits(&self, namespace: &str) -> bool {
        match self {
            Self::Namespace(own) => namespace == *own,
            Self::Cluster(protected) => !protected.contains(namespace),
        }
    }
}

/// Checks where the desired child `name` of `kind` goes and returns its namespace (empty for a
/// cluster-scoped kind).
///
/// # Errors
/// The [`PolicyViolation`] of a child placed where the rule does not allow it.
pub fn place(
    kind: &ResolvedKind,
    name: &str,
    object: &Value,
    placement: Placement<'_>,
) -> Result<String, PolicyViolation> {
    let named = object["metadata"]["namespace"]
        .as_str()
        .filter(|ns| !ns.is_empty());
    let violation = |namespace: &str| PolicyViolation::ProtectedNamespace {
        kind: kind.display_name(),
        name: name.into(),
        namespace: namespace.into(),
    };
    match placement {
        Placement::Namespace(parent_namespace) => {
            if !kind.namespaced {
                return Err(PolicyViolation::ClusterScoped {
                    kind: kind.display_name(),
                    name: name.into(),
                });
            }
            match named {
                None => Ok(parent_namespace.into()),
                Some(ns) if ns == parent_namespace => Ok(ns.into()),
                Some(ns) => Err(PolicyViolation::OtherNamespace {
                    kind: kind.display_name(),
                    name: name.into(),
                    namespace: ns.into(),
                    parent_namespace: parent_namespace.into(),
                }),
            }
        }
        Placement::Cluster(protected) if kind.namespaced => match named {
            None => Err(PolicyViolation::NoNamespace {
                kind: kind.display_name(),
                name: name.into(),
            }),
            Some(ns) if protected.contains(ns) => Err(violation(ns)),
            Some(ns) => Ok(ns.into()),
        },
        Placement::Cluster(protected) => {
            if let Some(ns) = named {
                return Err(PolicyViolation::NamespaceOnClusterScoped {
                    kind: kind.display_name(),
                    name: name.into(),
                    namespace: ns.into(),
                });
            }
            if is_namespace_kind(kind) && protected.contains(name) {
                return Err(violation(name));
            }
            Ok(String::new())
        }
    }
}

/// Whether `kind` is the core `Namespace`.
fn is_namespace_kind(kind: &ResolvedKind) -> bool {
    kind.gvk.group.is_empty() && kind.gvk.kind == "Namespace"
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kube::api::{ApiResource, GroupVersionKind};
    use serde_json::json;

    use super::*;

    fn kind(group: &str, name: &str, namespaced: bool) -> Arc<ResolvedKind> {
        let gvk = GroupVersionKind::gvk(group, "v1", name);
        Arc::new(ResolvedKind {
            resource: ApiResource::from_gvk(&gvk),
            gvk,
            namespaced,
        })
    }

    fn object(namespace: Option<&str>) -> Value {
        json!({ "metadata": { "name": "x", "namespace": namespace } })
    }

    #[test]
    fn the_protected_namespaces_are_the_systems_and_the_hosts_minus_the_allowed() {
        let protected = ProtectedNamespaces::new(Some("operators"), &["kube-public".into()]);
        assert_eq!(
            protected.describe(),
            "kube-node-lease, kube-system, operators"
        );
        assert!(ProtectedNamespaces::default().contains("kube-system"));
        let none = ProtectedNamespaces::new(None, &SYSTEM_NAMESPACES.map(String::from));
        assert_eq!(none.describe(), "none");
    }

    #[test]
    fn a_namespaced_parent_keeps_its_children_in_its_namespace() {
        let role_binding = kind("rbac.authorization.k8s.io", "RoleBinding", true);
        let at = Placement::Namespace("team");
        assert_eq!(
            place(&role_binding, "x", &object(None), at).unwrap(),
            "team"
        );
        assert_eq!(
            place(&role_binding, "x", &object(Some("team")), at).unwrap(),
            "team"
        );
        assert!(matches!(
            place(&role_binding, "x", &object(Some("other")), at),
            Err(PolicyViolation::OtherNamespace { .. })
        ));
        assert!(matches!(
            place(&kind("", "Namespace", false), "x", &object(None), at),
            Err(PolicyViolation::ClusterScoped { .. })
        ));
    }

    #[test]
    fn a_cluster_scoped_parent_places_anywhere_but_protected_namespaces() {
        let protected = ProtectedNamespaces::new(Some("operators"), &[]);
        let at = Placement::Cluster(&protected);
        let quota = kind("", "ResourceQuota", true);
        assert_eq!(
            place(&quota, "x", &object(Some("tenant-a")), at).unwrap(),
            "tenant-a"
        );
        assert!(matches!(
            place(&quota, "x", &object(None), at),
            Err(PolicyViolation::NoNamespace { .. })
        ));
        for refused in ["kube-system", "kube-node-lease", "operators"] {
            let violation = place(&quota, "x", &object(Some(refused)), at).unwrap_err();
            assert!(
                violation
                    .to_string()
                    .contains("--allow-protected-namespace"),
                "{violation}"
            );
        }
        let namespace = kind("", "Namespace", false);
        assert_eq!(
            place(&namespace, "tenant-a", &object(None), at).unwrap(),
            ""
        );
        assert!(matches!(
            place(&namespace, "kube-system", &object(None), at),
            Err(PolicyViolation::ProtectedNamespace { .. })
        ));
        assert!(matches!(
            place(&namespace, "x", &object(Some("tenant-a")), at),
            Err(PolicyViolation::NamespaceOnClusterScoped { .. })
        ));
    }

    #[test]
    fn observed_children_count_only_where_the_rule_admits_them() {
        let protected = ProtectedNamespaces::default();
        assert!(Placement::Namespace("a").admits("a"));
        assert!(!Placement::Namespace("a").admits("b"));
        assert!(!Placement::Namespace("a").admits(""));
        let cluster = Placement::Cluster(&protected);
        assert!(cluster.admits("") && cluster.admits("tenant-a"));
        assert!(!cluster.admits("kube-system"));
    }
}
