//! A candidate's plan for one parent against the active guest's: the same children (by kind,
//! namespace, name and desired-state digest, which covers every field the host would apply) and
//! the same status agree; anything else diverges, with the fields that differ. What is kept of a
//! divergence is bounded (children, fields, value lengths), whatever the two guests plan.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::metrics::ShadowVerdict;
use crate::reconcile::DESIRED_DIGEST_ANNOTATION;
use crate::reconcile::error::Failure;
use crate::reconcile::field_changes::{FieldChange, changes};
use crate::reconcile::plan::{Plan, PlannedChild};

/// Most children a divergence lists; the rest are counted.
const MAX_CHILDREN: usize = 10;
/// Most fields listed per child or status; the rest are counted.
const MAX_FIELDS: usize = 10;
/// Longest value text kept of a field (longer ones are cut, and say so).
const MAX_VALUE_CHARS: usize = 200;

/// What the candidate decided for a parent, against the active guest.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Agrees,
    Diverges(Divergence),
    /// The candidate failed where the active guest planned (or failed otherwise).
    Fails {
        reason: String,
    },
}

impl Verdict {
    /// Its `verdict` label.
    pub fn label(&self) -> ShadowVerdict {
        match self {
            Self::Agrees => ShadowVerdict::Agree,
            Self::Diverges(_) => ShadowVerdict::Diverge,
            Self::Fails { .. } => ShadowVerdict::Fail,
        }
    }
}

/// How the candidate's plan differs from the active guest's.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Divergence {
    /// Why the active guest failed, when the candidate planned where it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_fails: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildDivergence>,
    /// Children past [`MAX_CHILDREN`] that differ too.
    #[serde(skip_serializing_if = "is_zero")]
    pub more_children: usize,
    /// The status fields that differ (the guest's status, before the host's fields).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<FieldChange>,
}

/// One child the two plans differ on.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChildDivergence {
    /// `Kind name`.
    pub child: String,
    pub change: ChildChange,
    /// What the candidate would apply instead (for `changes`), field by field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    #[serde(skip_serializing_if = "is_zero")]
    pub more_fields: usize,
}

/// How a child differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildChange {
    /// Only the candidate wants it.
    Adds,
    /// Only the active guest wants it: the candidate would prune it.
    Drops,
    /// Both want it, with other content.
    Changes,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The verdict on `candidate`'s outcome against `active`'s.
pub fn compare(active: Result<&Plan, &Failure>, candidate: Result<&Plan, &Failure>) -> Verdict {
    match (active, candidate) {
        (Err(active), Err(candidate)) if active.to_string() == candidate.to_string() => {
            Verdict::Agrees
        }
        (_, Err(candidate)) => Verdict::Fails {
            reason: cut(&candidate.to_string()),
        },
        (Err(active), Ok(_)) => Verdict::Diverges(Divergence {
            active_fails: Some(cut(&active.to_string())),
            ..Divergence::default()
        }),
        (Ok(active), Ok(candidate)) => compare_plans(active, candidate),
    }
}

type ChildKey<'p> = (String, &'p str, &'p str);

fn by_key(plan: &Plan) -> BTreeMap<ChildKey<'_>, &PlannedChild> {
    plan.children
        .iter()
        .map(|child| {
            let key = (
                child.kind.display_name(),
                child.namespace.as_str(),
                child.name.as_str(),
            );
            (key, child)
        })
        .collect()
}

fn compare_plans(active: &Plan, candidate: &Plan) -> Verdict {
    let (ours, theirs) = (by_key(active), by_key(candidate));
    let mut differing = Vec::new();
    for (key, child) in &ours {
        match theirs.get(key) {
            None => differing.push((*child, ChildChange::Drops, None)),
            Some(other) if other.digest != child.digest => {
                differing.push((*child, ChildChange::Changes, Some(*other)));
            }
            Some(_) => {}
        }
    }
    for (key, child) in &theirs {
        if !ours.contains_key(key) {
            differing.push((*child, ChildChange::Adds, None));
        }
    }
    let status = bounded(changes(
        active.status.as_ref().unwrap_or(&Value::Null),
        candidate.status.as_ref().unwrap_or(&Value::Null),
    ))
    .0;
    if differing.is_empty() && status.is_empty() {
        return Verdict::Agrees;
    }
    let more_children = differing.len().saturating_sub(MAX_CHILDREN);
    let children = differing
        .into_iter()
        .take(MAX_CHILDREN)
        .map(|(child, change, other)| {
            let (fields, more_fields) = match other {
                Some(other) => bounded(content_changes(&child.object, &other.object)),
                None => (Vec::new(), 0),
            };
            ChildDivergence {
                child: child.to_text(),
                change,
                fields,
                more_fields,
            }
        })
        .collect();
    Verdict::Diverges(Divergence {
        active_fails: None,
        children,
        more_children,
        status,
    })
}

/// The fields that differ between two planned objects, but the host's desired-state digest
/// (which differs whenever anything else does, and says nothing more).
fn content_changes(active: &Value, candidate: &Value) -> Vec<FieldChange> {
    let digest = format!("metadata.annotations[\"{DESIRED_DIGEST_ANNOTATION}\"]");
    changes(active, candidate)
        .into_iter()
        .filter(|change| change.path != digest)
        .collect()
}

/// At most [`MAX_FIELDS`] of `changes`, their values cut, and how many were left out.
fn bounded(changes: Vec<FieldChange>) -> (Vec<FieldChange>, usize) {
    let more = changes.len().saturating_sub(MAX_FIELDS);
    let kept = changes
        .into_iter()
        .take(MAX_FIELDS)
        .map(|change| FieldChange {
            path: cut(&change.path),
            before: change.before.map(cut_value),
            after: change.after.map(cut_value),
        })
        .collect();
    (kept, more)
}

fn cut_value(value: Value) -> Value {
    let text = value.to_string();
    if text.len() <= MAX_VALUE_CHARS {
        value
    } else {
        Value::String(cut(&text))
    }
}

/// `text`, or its first [`MAX_VALUE_CHARS`] characters and `…`.
fn cut(text: &str) -> String {
    match text.char_indices().nth(MAX_VALUE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kube::api::{ApiResource, GroupVersionKind};
    use serde_json::json;

    use super::*;
    use crate::cluster::ResolvedKind;

    fn child(name: &str, image: &str) -> PlannedChild {
        let gvk = GroupVersionKind::gvk("apps", "v1", "Deployment");
        PlannedChild {
            kind: Arc::new(ResolvedKind {
                resource: ApiResource::from_gvk(&gvk),
                gvk,
                namespaced: true,
            }),
            namespace: "ns".into(),
            name: name.into(),
            object: json!({
                "metadata": { "annotations": { DESIRED_DIGEST_ANNOTATION: format!("{name}-{image}") } },
                "spec": { "image": image },
            }),
            digest: format!("{name}-{image}"),
        }
    }

    fn plan(children: Vec<PlannedChild>, status: Value) -> Plan {
        Plan {
            children,
            status: Some(status),
            requeue_after: None,
            events: Vec::new(),
        }
    }

    #[test]
    fn the_same_children_and_status_agree() {
        let a = plan(vec![child("a", "v1")], json!({ "parts": 1 }));
        let b = plan(vec![child("a", "v1")], json!({ "parts": 1 }));
        assert_eq!(compare(Ok(&a), Ok(&b)), Verdict::Agrees);
    }

    #[test]
    fn other_content_other_children_or_another_status_diverge_with_the_fields() {
        let active = plan(
            vec![child("a", "v1"), child("gone", "v1")],
            json!({ "parts": 2 }),
        );
        let candidate = plan(
            vec![child("a", "v2"), child("new", "v2")],
            json!({ "parts": 3 }),
        );
        let Verdict::Diverges(divergence) = compare(Ok(&active), Ok(&candidate)) else {
            panic!("expected a divergence");
        };
        let changes: Vec<(&str, ChildChange)> = divergence
            .children
            .iter()
            .map(|c| (c.child.as_str(), c.change))
            .collect();
        assert_eq!(
            changes,
            [
                ("Deployment a", ChildChange::Changes),
                ("Deployment gone", ChildChange::Drops),
                ("Deployment new", ChildChange::Adds)
            ]
        );
        assert_eq!(
            divergence.children[0].fields.len(),
            1,
            "the digest annotation is not news"
        );
        assert_eq!(divergence.children[0].fields[0].path, "spec.image");
        assert_eq!(divergence.children[0].fields[0].after, Some(json!("v2")));
        assert_eq!(divergence.status[0].path, "parts");
    }

    #[test]
    fn a_candidate_failing_where_the_active_plans_fails_and_the_same_failure_agrees() {
        let a = plan(vec![child("a", "v1")], json!({}));
        let failure = Failure::InvalidSpec("no parts".into());
        assert!(matches!(
            compare(Ok(&a), Err(&failure)),
            Verdict::Fails { .. }
        ));
        assert_eq!(compare(Err(&failure), Err(&failure)), Verdict::Agrees);
        assert!(matches!(
            compare(Err(&failure), Ok(&a)),
            Verdict::Diverges(Divergence {
                active_fails: Some(_),
                ..
            })
        ));
    }

    // Attack: a candidate planning a thousand children with huge values must not make the
    // report hold them all.
    #[test]
    fn a_divergence_is_bounded() {
        let active = plan(Vec::new(), json!({}));
        let many: Vec<PlannedChild> = (0..1000)
            .map(|i| child(&format!("c{i:04}"), &"x".repeat(10_000)))
            .collect();
        let candidate = plan(many, json!({ "big": "y".repeat(10_000) }));
        let Verdict::Diverges(divergence) = compare(Ok(&active), Ok(&candidate)) else {
            panic!("expected a divergence");
        };
        assert_eq!(divergence.children.len(), MAX_CHILDREN);
        assert_eq!(divergence.more_children, 1000 - MAX_CHILDREN);
        let text = serde_json::to_string(&divergence).unwrap();
        assert!(text.len() < 4_000, "{} bytes", text.len());
    }
}
