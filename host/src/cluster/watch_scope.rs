//! Where and what the host's watches look at: the client, the namespace (or all), and the
//! managed-by label that tells the host's children from everything else. The child caches and
//! their watches both read it.

use kube::api::{Api, ApiResource};

use super::kinds::ResolvedKind;
use super::ownership::MANAGED_BY_LABEL;

/// Where and what the child watches look at.
#[derive(Clone)]
pub struct WatchScope {
    pub client: kube::Client,
    /// `None`: all namespaces.
    pub namespace: Option<String>,
    /// The value of the managed-by label on every child (the field manager).
    pub managed_by: String,
}

impl WatchScope {
    /// Selects the host's children.
    pub(super) fn owned_selector(&self) -> String {
        format!("{MANAGED_BY_LABEL}={}", self.managed_by)
    }

    /// Selects every other object, including those without the label.
    pub(super) fn unmanaged_selector(&self) -> String {
        format!("{MANAGED_BY_LABEL}!={}", self.managed_by)
    }

    /// The objects of `kind` the host watches: in its namespace (or all), or the cluster for a
    /// cluster-scoped kind.
    pub(super) fn api<K>(&self, kind: &ResolvedKind) -> Api<K>
    where
        K: kube::Resource<DynamicType = ApiResource, Scope = kube::core::DynamicResourceScope>,
    {
        match self.namespace.as_deref().filter(|_| kind.namespaced) {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &kind.resource),
            None => Api::all_with(self.client.clone(), &kind.resource),
        }
    }
}
