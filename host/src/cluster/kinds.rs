//! Resolves the kinds a guest names (group/version/kind) to API resources the server serves; tells
//! Kubernetes' own kinds from custom resources.

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::discovery::{self, Scope};

pub use crate::gvk::display_gvk;

/// A kind the API server serves, with what the host needs to talk about it.
#[derive(Clone, Debug)]
pub struct ResolvedKind {
    pub gvk: GroupVersionKind,
    pub resource: ApiResource,
    pub namespaced: bool,
}

impl ResolvedKind {
    /// `Deployment.apps/v1`, `Service.v1`: how users write kinds in kubectl.
    pub fn display_name(&self) -> String {
        display_gvk(&self.gvk)
    }

    /// The API of this kind's objects in `namespace`: every namespace for `None`, and the
    /// cluster for a cluster-scoped kind (whose objects have no namespace, whatever is given).
    pub fn api(&self, client: &kube::Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace.filter(|ns| self.namespaced && !ns.is_empty()) {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        }
    }
}

/// API groups Kubernetes itself serves (1.20 to 1.33): their kinds have a status their own
/// controllers write, and most have none the host could write.
const BUILTIN_GROUPS: [&str; 22] = [
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "certificates.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "resource.k8s.io",
    "internal.apiserver.k8s.io",
];

/// Kubernetes' own cluster-scoped kinds a guest might own, by (group, kind): what `render`
/// knows of scopes without a cluster.
const BUILTIN_CLUSTER_SCOPED: [(&str, &str); 14] = [
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("networking.k8s.io", "IngressClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    ("certificates.k8s.io", "CertificateSigningRequest"),
];

/// Whether `gvk` is one of Kubernetes' own cluster-scoped kinds (a custom resource is not known
/// to be without asking the API server).
pub fn is_builtin_cluster_scoped(gvk: &GroupVersionKind) -> bool {
    BUILTIN_CLUSTER_SCOPED
        .iter()
        .any(|(group, kind)| gvk.group == *group && gvk.kind == *kind)
}

/// Whether `gvk` is one of Kubernetes' own kinds (not a custom resource).
pub fn is_builtin(gvk: &GroupVersionKind) -> bool {
    BUILTIN_GROUPS.contains(&gvk.group.as_str())
}

/// The message for a guest whose parent kind is built in, when that is not allowed.
pub fn builtin_parent_refused(gvk: &GroupVersionKind) -> String {
    format!(
        "the guest reconciles {}, a kind Kubernetes itself serves: its status belongs to its own \
         controllers, so the host could not report on it there; start the host with \
         --allow-builtin-parent-kind to reconcile it anyway (the host then writes no status to \
         these parents and reports through Events and metrics only)",
        display_gvk(gvk)
    )
}

/// Why a kind could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The API server does not serve the kind (for a custom resource: its CRD is not installed).
    #[error(
        "the API server does not serve {kind}; if it is a custom resource, install its \
         CustomResourceDefinition first (e.g. `kubectl apply -f deploy/crd/`)"
    )]
    NotServed {
        kind: String,
        #[source]
        source: kube::Error,
    },
}

/// Asks the API server (discovery) for one kind.
pub async fn resolve(
    client: &kube::Client,
    gvk: &GroupVersionKind,
) -> Result<ResolvedKind, DiscoveryError> {
    let (resource, capabilities) = discovery::pinned_kind(client, gvk)
        .await
        .map_err(|source| DiscoveryError::NotServed {
            kind: display_gvk(gvk),
            source,
        })?;
    Ok(ResolvedKind {
        gvk: gvk.clone(),
        resource,
        namespaced: capabilities.scope == Scope::Namespaced,
    })
}

#[cfg(test)]
mod builtin_tests {
    use super::*;

    #[test]
    fn kubernetes_kinds_are_built_in_and_custom_resources_are_not() {
        for (group, kind) in [
            ("", "ConfigMap"),
            ("apps", "Deployment"),
            ("networking.k8s.io", "Ingress"),
        ] {
            assert!(
                is_builtin(&GroupVersionKind::gvk(group, "v1", kind)),
                "{kind}"
            );
        }
        for group in [
            "podtato.example.com",
            "gateway.networking.k8s.io",
            "example.com",
        ] {
            assert!(
                !is_builtin(&GroupVersionKind::gvk(group, "v1", "Thing")),
                "{group}"
            );
        }
        assert!(
            builtin_parent_refused(&GroupVersionKind::gvk("", "v1", "ConfigMap"))
                .contains("--allow-builtin-parent-kind")
        );
    }
}
