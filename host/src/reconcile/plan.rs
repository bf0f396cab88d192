//! The planning step, pure: a guest's decision → the children the host would apply
//! (policy-checked, host-owned fields added) and the guest's status (checked). The reconcile and
//! `render` both call [`plan`], so the offline tool shows exactly what the controller applies.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::cluster::{ParentRef, ResolvedKind};
use crate::sandbox::Decision;

use super::guest_events::{self, PlannedEvent};
use super::placement::Placement;
use super::policy::{self, PolicyViolation};
use super::prepare::prepare;

/// Shortest requeue a guest may ask for, so a guest cannot make the host spin.
pub const MIN_REQUEUE: Duration = Duration::from_secs(1);

/// What the host would write for one parent.
#[derive(Debug)]
pub struct Plan {
    pub children: Vec<PlannedChild>,
    /// The guest's status (a JSON object), before the host adds its own fields.
    pub status: Option<Value>,
    /// When the guest wants the parent reconciled again (at least [`MIN_REQUEUE`]).
    pub requeue_after: Option<Duration>,
    /// The guest's Events that may be published (see `guest_events.rs`).
    pub events: Vec<PlannedEvent>,
}

/// One desired child, ready to apply.
#[derive(Clone, Debug)]
pub struct PlannedChild {
    pub kind: Arc<ResolvedKind>,
    /// Empty for a cluster-scoped kind.
    pub namespace: String,
    pub name: String,
    /// The object as applied: in its namespace, with the host's owner reference,
    /// managed-by label and desired-state digest.
    pub object: Value,
    /// The desired-state digest annotated on `object`.
    pub digest: String,
}

impl PlannedChild {
    /// `Kind name`, how logs, Events and messages name a child.
    pub fn to_text(&self) -> String {
        format!("{} {}", self.kind.resource.kind, self.name)
    }

    /// The namespace for the API: `None` for a cluster-scoped child.
    pub fn namespace(&self) -> Option<&str> {
        Some(self.namespace.as_str()).filter(|ns| !ns.is_empty())
    }
}

impl Plan {
    /// Whether the plan keeps the child `namespace/name` of `kind` (anything else of the
    /// parent's is pruned).
    pub fn wants(&self, kind: &ResolvedKind, namespace: &str, name: &str) -> bool {
        self.children
            .iter()
            .any(|c| c.kind.gvk == kind.gvk && c.namespace == namespace && c.name == name)
    }
}

/// Checks a guest's decision for a parent (`parent`, placed at `placement`) against the output policy
/// and prepares every child for apply under `field_manager`; `kinds` are the child kinds the
/// guest declared.
///
/// # Errors
/// The first [`PolicyViolation`]; nothing of this decision may then be applied or pruned.
pub fn plan(
    decision: Decision,
    parent: &ParentRef,
    placement: Placement<'_>,
    kinds: &[Arc<ResolvedKind>],
    field_manager: &str,
) -> Result<Plan, PolicyViolation> {
    let desired = policy::check_children(&decision.children, placement, kinds)?;
    let status = decision
        .status
        .as_deref()
        .map(policy::check_status)
        .transpose()?;
    let children = desired
        .into_iter()
        .map(|mut child| {
            let digest = prepare(&mut child.object, parent, field_manager);
            PlannedChild {
                kind: child.kind,
                namespace: child.namespace,
                name: child.name,
                object: child.object,
                digest,
            }
        })
        .collect();
    Ok(Plan {
        children,
        status,
        requeue_after: decision.requeue_after.map(|after| after.max(MIN_REQUEUE)),
        events: guest_events::check(decision.events, placement.parent_namespace(), kinds),
    })
}

#[cfg(test)]
mod tests {
    use crate::cluster::ownership::fixtures::parent;
    use kube::api::{ApiResource, GroupVersionKind};
    use serde_json::json;

    use super::*;
    use crate::cluster::MANAGED_BY_LABEL;

    fn kinds() -> Vec<Arc<ResolvedKind>> {
        let gvk = GroupVersionKind::gvk("", "v1", "ConfigMap");
        vec![Arc::new(ResolvedKind {
            resource: ApiResource::from_gvk(&gvk),
            gvk,
            namespaced: true,
        })]
    }

    fn decision(children: Vec<Value>, requeue_ms: Option<u64>) -> Decision {
        Decision {
            children: children.iter().map(Value::to_string).collect(),
            status: Some(r#"{"summary":"ok"}"#.into()),
            requeue_after: requeue_ms.map(Duration::from_millis),
            events: Vec::new(),
        }
    }

    #[test]
    fn children_are_checked_put_in_the_namespace_and_prepared() {
        let config_map =
            json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" } });
        let plan = plan(
            decision(vec![config_map], Some(10)),
            &parent(),
            Placement::Namespace("ns"),
            &kinds(),
            "m",
        )
        .unwrap();
        let child = &plan.children[0];
        assert_eq!(child.to_text(), "ConfigMap c");
        assert_eq!(child.object["metadata"]["namespace"], "ns");
        assert_eq!(child.object["metadata"]["labels"][MANAGED_BY_LABEL], "m");
        assert_eq!(plan.status.unwrap()["summary"], "ok");
        assert_eq!(
            plan.requeue_after,
            Some(MIN_REQUEUE),
            "raised to the minimum"
        );
        assert!(plan.children.len() == 1);
    }

    #[test]
    fn a_violation_plans_nothing() {
        let undeclared =
            json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": "s" } });
        assert!(matches!(
            plan(
                decision(vec![undeclared], None),
                &parent(),
                Placement::Namespace("ns"),
                &kinds(),
                "m"
            ),
            Err(PolicyViolation::UndeclaredKind { .. })
        ));
    }
}
