//! The scope rule of a guest's kinds, known once they are resolved against the API server:
//! checked at start and on every hot swap, before anything stops.
//!
//! - A namespaced parent owns namespaced children only: Kubernetes refuses a namespaced owner of
//!   a cluster-scoped object (its garbage collector deletes such a child).
//! - A cluster-scoped parent needs a host watching every namespace: its parents, and children it
//!   places in any namespace, are outside any one namespace's view (and the Role of a
//!   namespaced install).
//! - A cluster-scoped child kind (a Namespace, a ClusterRoleBinding) is written only when the
//!   guest's allowed child kinds name it: the default, "any kind", means any namespaced kind.

use std::sync::Arc;

use crate::cluster::ResolvedKind;
use crate::guests::KindAllowlist;

/// Why a guest's kinds cannot serve together.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ScopeError {
    #[error(
        "the guest's child kind {child} is cluster-scoped and its parent kind {parent} is \
         namespaced; a namespaced object cannot own a cluster-scoped one (make the parent kind \
         cluster-scoped, or the child namespaced)"
    )]
    ClusterScopedChildOfNamespacedParent { child: String, parent: String },
    #[error(
        "the guest's parent kind {parent} is cluster-scoped and the host watches only namespace \
         {namespace:?} (--namespace); serve it from a host that watches every namespace"
    )]
    ClusterScopedParentInOneNamespace { parent: String, namespace: String },
    #[error(
        "the guest's child kind {child} is cluster-scoped; a cluster-scoped child kind must be \
         named in --allowed-child-kind (and in the guest's allowed-child-kinds, if it has any): \
         the default allows namespaced kinds only"
    )]
    ClusterScopedChildNotNamed { child: String },
}

/// Checks the scope rule for a guest of `parent` with `children`, allowed `allowed` child kinds,
/// in a host watching `namespace` (`None`: every namespace).
///
/// # Errors
/// The first [`ScopeError`].
pub fn check(
    parent: &ResolvedKind,
    children: &[Arc<ResolvedKind>],
    allowed: &KindAllowlist,
    namespace: Option<&str>,
) -> Result<(), ScopeError> {
    if !parent.namespaced
        && let Some(namespace) = namespace
    {
        return Err(ScopeError::ClusterScopedParentInOneNamespace {
            parent: parent.display_name(),
            namespace: namespace.into(),
        });
    }
    for child in children.iter().filter(|child| !child.namespaced) {
        if parent.namespaced {
            return Err(ScopeError::ClusterScopedChildOfNamespacedParent {
                child: child.display_name(),
                parent: parent.display_name(),
            });
        }
        if !allowed.names(&child.gvk) {
            return Err(ScopeError::ClusterScopedChildNotNamed {
                child: child.display_name(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kube::api::{ApiResource, GroupVersionKind};

    use super::*;

    fn kind(group: &str, name: &str, namespaced: bool) -> Arc<ResolvedKind> {
        let gvk = GroupVersionKind::gvk(group, "v1", name);
        Arc::new(ResolvedKind {
            resource: ApiResource::from_gvk(&gvk),
            gvk,
            namespaced,
        })
    }

    #[test]
    fn the_scope_rule() {
        let tenant = kind("example.com", "Tenant", false);
        let potato = kind("example.com", "PotatoHead", true);
        let namespace = kind("", "Namespace", false);
        let quota = kind("", "ResourceQuota", true);
        let named = KindAllowlist::Only(vec![namespace.gvk.clone(), quota.gvk.clone()]);
        let children = [Arc::clone(&namespace), Arc::clone(&quota)];
        assert_eq!(check(&tenant, &children, &named, None), Ok(()));
        assert_eq!(
            check(&potato, &[Arc::clone(&quota)], &KindAllowlist::Any, None),
            Ok(())
        );
        assert!(matches!(
            check(&tenant, &children, &KindAllowlist::Any, None),
            Err(ScopeError::ClusterScopedChildNotNamed { .. })
        ));
        assert!(matches!(
            check(&potato, &children, &named, None),
            Err(ScopeError::ClusterScopedChildOfNamespacedParent { .. })
        ));
        let refused = check(&tenant, &children, &named, Some("team")).unwrap_err();
        assert!(refused.to_string().contains("--namespace"), "{refused}");
    }
}
