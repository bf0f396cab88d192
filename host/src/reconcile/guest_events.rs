//! The Events a guest asks for (contract 0.2 `desired.events`), checked before the host publishes
//! them on the parent: at most [`MAX_EVENTS_PER_CALL`] per reconcile, a reason the API server
//! accepts, and an `about` that names one of the guest's own child kinds. An Event that breaks a
//! rule is dropped and logged, never a reason to fail the reconcile: Events only tell people
//! things, and the children and status the guest decided are still right.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use tracing::warn;

use crate::cluster::ResolvedKind;
use crate::sandbox::{self, GuestEvent};

use super::events::EventType;

/// Most Events one reconcile may publish; the contract promises guests this number.
pub const MAX_EVENTS_PER_CALL: usize = 8;
/// The longest reason the API server accepts (events.k8s.io/v1 `reason`).
const MAX_REASON_BYTES: usize = 128;

/// An Event ready to publish: the publisher cuts the note to the API server's limit.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedEvent {
    pub type_: EventType,
    pub reason: String,
    pub note: String,
    /// The child it is about (the Event's `related`).
    pub related: Option<ObjectReference>,
}

/// The guest's Events that may be published, in the guest's order, for a parent in `namespace`
/// (`None` for a cluster-scoped parent) whose guest declared the child `kinds`.
pub fn check(
    events: Vec<GuestEvent>,
    namespace: Option<&str>,
    kinds: &[Arc<ResolvedKind>],
) -> Vec<PlannedEvent> {
    let asked = events.len();
    if asked > MAX_EVENTS_PER_CALL {
        warn!(
            asked,
            published = MAX_EVENTS_PER_CALL,
            "the guest returned more Events than one reconcile may publish; the rest are dropped"
        );
    }
    events
        .into_iter()
        .take(MAX_EVENTS_PER_CALL)
        .filter_map(|event| match checked(event, namespace, kinds) {
            Ok(planned) => Some(planned),
            Err(why) => {
                warn!(%why, "an Event the guest returned is dropped");
                None
            }
        })
        .collect()
}

fn checked(
    event: GuestEvent,
    namespace: Option<&str>,
    kinds: &[Arc<ResolvedKind>],
) -> Result<PlannedEvent, String> {
    let reason = event.reason;
    let well_formed = reason.len() <= MAX_REASON_BYTES
        && reason.starts_with(|c: char| c.is_ascii_uppercase())
        && reason.chars().all(|c| c.is_ascii_alphanumeric());
    if !well_formed {
        return Err(format!(
            "reason {reason:?} is not UpperCamelCase ASCII letters and digits of at most \
             {MAX_REASON_BYTES} bytes"
        ));
    }
    let related = event
        .about
        .map(|child| child_reference(child, namespace, kinds))
        .transpose()?;
    Ok(PlannedEvent {
        type_: match event.event_type {
            sandbox::EventType::Normal => EventType::Normal,
            sandbox::EventType::Warning => EventType::Warning,
        },
        reason,
        note: event.message,
        related,
    })
}

fn child_reference(
    child: sandbox::ChildRef,
    namespace: Option<&str>,
    kinds: &[Arc<ResolvedKind>],
) -> Result<ObjectReference, String> {
    let kind = kinds.iter().find(|k| k.gvk == child.kind).ok_or_else(|| {
        format!(
            "it is about a {} {}, not one of the guest's child kinds",
            child.kind.kind, child.name
        )
    })?;
    let namespace = kind
        .namespaced
        .then(|| {
            child
                .namespace
                .unwrap_or_else(|| namespace.unwrap_or_default().to_string())
        })
        .filter(|ns| !ns.is_empty());
    Ok(ObjectReference {
        api_version: Some(kind.resource.api_version.clone()),
        kind: Some(kind.resource.kind.clone()),
        name: Some(child.name),
        namespace,
        ..ObjectReference::default()
    })
}

#[cfg(test)]
mod tests {
    use kube::api::{ApiResource, GroupVersionKind};

    use super::*;

    fn kinds() -> Vec<Arc<ResolvedKind>> {
        let gvk = GroupVersionKind::gvk("apps", "v1", "Deployment");
        vec![Arc::new(ResolvedKind {
            resource: ApiResource::from_gvk(&gvk),
            gvk,
            namespaced: true,
        })]
    }

    fn event(reason: &str, about: Option<(&str, &str)>) -> GuestEvent {
        GuestEvent {
            event_type: sandbox::EventType::Warning,
            reason: reason.into(),
            message: "look".into(),
            about: about.map(|(kind, name)| sandbox::ChildRef {
                kind: GroupVersionKind::gvk("apps", "v1", kind),
                name: name.into(),
                namespace: None,
            }),
        }
    }

    #[test]
    fn at_most_eight_events_are_published_in_the_guests_order() {
        let events = (0..12)
            .map(|i| event(&format!("Reason{i}"), None))
            .collect();
        let planned = check(events, Some("ns"), &kinds());
        let reasons: Vec<&str> = planned.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "Reason0", "Reason1", "Reason2", "Reason3", "Reason4", "Reason5", "Reason6",
                "Reason7"
            ]
        );
    }

    #[test]
    fn a_bad_reason_or_a_foreign_kind_drops_that_event_only() {
        let long = format!("A{}", "b".repeat(MAX_REASON_BYTES));
        let events = vec![
            event("not camel", None),
            event(&long, None),
            event("PartScaled", Some(("StatefulSet", "web"))),
            event("PartScaled", Some(("Deployment", "web"))),
        ];
        let planned = check(events, Some("ns"), &kinds());
        assert_eq!(planned.len(), 1, "{planned:?}");
        let related = planned[0].related.as_ref().unwrap();
        assert_eq!(related.kind.as_deref(), Some("Deployment"));
        assert_eq!(related.api_version.as_deref(), Some("apps/v1"));
        assert_eq!(related.namespace.as_deref(), Some("ns"));
        assert_eq!(planned[0].type_, EventType::Warning);
    }
}
