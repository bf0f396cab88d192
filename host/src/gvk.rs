//! How a kind is written for people: `Deployment.apps/v1`, `Service.v1`, as kubectl writes it.
//! A leaf both `sandbox/` (manifest messages) and `cluster/` (kinds) use.

use kube::api::GroupVersionKind;

/// Formats a kind the way kubectl does.
pub fn display_gvk(gvk: &GroupVersionKind) -> String {
    if gvk.group.is_empty() {
        format!("{}.{}", gvk.kind, gvk.version)
    } else {
        format!("{}.{}/{}", gvk.kind, gvk.group, gvk.version)
    }
}
