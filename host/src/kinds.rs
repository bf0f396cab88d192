//! Resolves the kinds a guest names (group/version/kind) to API resources the server serves.

use kube::api::{ApiResource, GroupVersionKind};
use kube::discovery::{self, Scope};

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
}

/// Formats a kind the way kubectl does.
pub fn display_gvk(gvk: &GroupVersionKind) -> String {
    if gvk.group.is_empty() {
        format!("{}.{}", gvk.kind, gvk.version)
    } else {
        format!("{}.{}/{}", gvk.kind, gvk.group, gvk.version)
    }
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
