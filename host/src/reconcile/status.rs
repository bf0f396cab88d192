//! The parent's status: the guest's status plus what the host owns (`observedGeneration`, the
//! `Ready` condition when the guest gives none or the reconcile failed, condition generations and
//! transition times), written through the status subresource only when it changed.
//!
//! Conditions follow the Kubernetes API conventions: `lastTransitionTime` moves only when a
//! condition's `status` changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::json_match::contains;

/// Why a reconcile did not succeed, as the `reason` of the `Ready` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureReason {
    /// The guest rejected the spec.
    InvalidSpec,
    /// The guest trapped, timed out, or reported a transient failure.
    GuestFailed,
    /// The guest's output broke the output policy.
    PolicyViolation,
    /// The API server refused an apply or a prune.
    ApplyFailed,
    /// The guest's output changes on every call although the parent did not change; nothing
    /// was written.
    OutputUnsettled,
    /// The API server refused the status the reconcile computed (e.g. too large); the status
    /// written instead keeps the previous one and says so.
    StatusFailed,
    /// The guest's requirements selected more related objects than its limits allow.
    RelatedTooLarge,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::InvalidSpec => "InvalidSpec",
            FailureReason::GuestFailed => "GuestFailed",
            FailureReason::PolicyViolation => "PolicyViolation",
            FailureReason::ApplyFailed => "ApplyFailed",
            FailureReason::StatusFailed => "StatusFailed",
            FailureReason::OutputUnsettled => "OutputUnsettled",
            FailureReason::RelatedTooLarge => "RelatedObjectsTooLarge",
        }
    }
}

/// How the reconcile ended.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Children are as desired; the guest's status, if it returned one (a JSON object).
    Reconciled { guest_status: Option<Value> },
    /// Nothing or not everything was applied.
    Failed {
        reason: FailureReason,
        message: String,
    },
}

/// The status to write, given the parent's current status. `stamp` says which guest decided
/// (`status.reconciler`: name, version, digest).
pub fn next_status(
    observed: Option<&Value>,
    outcome: &Outcome,
    generation: Option<i64>,
    stamp: &Value,
    now: &Value,
) -> Value {
    let mut status = match outcome {
        Outcome::Reconciled {
            guest_status: Some(guest_status),
        } => guest_status.clone(),
        // On failure keep what the status said (e.g. per-part readiness) and only change Ready.
        _ => observed.cloned().unwrap_or_else(|| json!({})),
    };
    if !status.is_object() {
        status = json!({});
    }
    // Only condition objects are kept: a status from the API server is not checked by the output
    // policy (a CRD that preserves unknown fields lets anyone write `conditions: ["x", 5]`).
    let mut conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .map(|all| all.iter().filter(|c| c.is_object()).cloned().collect())
        .unwrap_or_default();
    let is_ready = |c: &Value| c["type"] == "Ready";
    match outcome {
        Outcome::Reconciled { .. } => {
            if !conditions.iter().any(is_ready) {
                conditions.push(json!({
                    "type": "Ready", "status": "True", "reason": "Reconciled",
                    "message": "children are as the guest wants them",
                }));
            }
        }
        Outcome::Failed { reason, message } => {
            conditions.retain(|c| !is_ready(c));
            conditions.push(json!({ "type": "Ready", "status": "False", "reason": reason.as_str(), "message": message }));
        }
    }
    let observed_conditions = observed.and_then(|s| s.get("conditions")?.as_array());
    for condition in &mut conditions {
        let previous =
            observed_conditions.and_then(|all| all.iter().find(|c| c["type"] == condition["type"]));
        condition["lastTransitionTime"] = match previous {
            Some(previous)
                if previous["status"] == condition["status"]
                    && previous["lastTransitionTime"].is_string() =>
            {
                previous["lastTransitionTime"].clone()
            }
            _ => now.clone(),
        };
        if let Some(generation) = generation {
            condition["observedGeneration"] = json!(generation);
        }
    }
    status["conditions"] = Value::Array(conditions);
    status["reconciler"] = stamp.clone();
    if let Some(generation) = generation {
        status["observedGeneration"] = json!(generation);
    }
    status
}

/// The current time as Kubernetes serializes `metav1.Time`.
pub fn now() -> Value {
    serde_json::to_value(Time(Timestamp::now())).expect("time serializes")
}

/// Whether `next` differs from the status the parent has.
pub fn needs_write(observed: Option<&Value>, next: &Value) -> bool {
    !observed.is_some_and(|observed| contains(observed, next) && contains(next, observed))
}

/// Writes the status through the status subresource (server-side apply, same field manager).
pub async fn write(
    api: &Api<DynamicObject>,
    parent: &DynamicObject,
    status: &Value,
    field_manager: &str,
) -> Result<(), kube::Error> {
    let types = parent.types.as_ref();
    let patch = json!({
        "apiVersion": types.map(|t| t.api_version.as_str()),
        "kind": types.map(|t| t.kind.as_str()),
        "metadata": { "name": parent.metadata.name },
        "status": status,
    });
    let name = parent.metadata.name.as_deref().unwrap_or_default();
    api.patch_status(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-01-01T00:00:00Z";
    const T1: &str = "2026-01-01T00:05:00Z";

    fn stamp() -> Value {
        json!({ "name": "g", "version": "1.0.0", "digest": "sha256:00" })
    }

    fn ready(status: &Value) -> &Value {
        status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
    }

    #[test]
    fn success_without_a_guest_condition_reports_ready() {
        let next = next_status(
            None,
            &Outcome::Reconciled {
                guest_status: Some(json!({ "summary": "1/1" })),
            },
            Some(3),
            &stamp(),
            &json!(T0),
        );
        assert_eq!(next["summary"], "1/1");
        assert_eq!(next["observedGeneration"], 3);
        assert_eq!(next["reconciler"], stamp());
        let ready = ready(&next);
        assert_eq!(
            (ready["status"].as_str(), ready["reason"].as_str()),
            (Some("True"), Some("Reconciled"))
        );
        assert_eq!(
            (
                ready["observedGeneration"].as_i64(),
                ready["lastTransitionTime"].as_str()
            ),
            (Some(3), Some(T0))
        );
    }

    #[test]
    fn the_guests_ready_condition_is_kept_on_success() {
        let guest = json!({ "conditions": [{ "type": "Ready", "status": "False", "reason": "PartsNotReady", "message": "0/1" }] });
        let next = next_status(
            None,
            &Outcome::Reconciled {
                guest_status: Some(guest),
            },
            Some(1),
            &stamp(),
            &json!(T0),
        );
        assert_eq!(ready(&next)["reason"], "PartsNotReady");
    }

    #[test]
    fn failure_keeps_the_rest_of_the_status_and_overrides_ready() {
        let observed = next_status(
            None,
            &Outcome::Reconciled {
                guest_status: Some(json!({ "summary": "2/6" })),
            },
            Some(1),
            &stamp(),
            &json!(T0),
        );
        let failed = Outcome::Failed {
            reason: FailureReason::InvalidSpec,
            message: "spec.x: bad".into(),
        };
        let next = next_status(Some(&observed), &failed, Some(2), &stamp(), &json!(T1));
        assert_eq!(next["summary"], "2/6");
        let ready = ready(&next);
        assert_eq!(
            (ready["status"].as_str(), ready["reason"].as_str()),
            (Some("False"), Some("InvalidSpec"))
        );
        assert_eq!(ready["lastTransitionTime"], T1);
    }

    #[test]
    fn conditions_that_are_not_objects_are_dropped_not_indexed() {
        // As anyone may write through the status subresource of a CRD that preserves unknown
        // fields; indexing into "x" used to panic the host.
        let observed = json!({ "conditions": ["x", 5, { "type": "Ready", "status": "True" }] });
        let failed = Outcome::Failed {
            reason: FailureReason::GuestFailed,
            message: "m".into(),
        };
        let next = next_status(Some(&observed), &failed, Some(1), &stamp(), &json!(T0));
        assert_eq!(next["conditions"].as_array().unwrap().len(), 1);
        for observed in [
            json!({ "conditions": "Ready" }),
            json!("a string"),
            json!(7),
        ] {
            let next = next_status(Some(&observed), &failed, Some(1), &stamp(), &json!(T0));
            assert_eq!(ready(&next)["reason"], "GuestFailed");
        }
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let ok = Outcome::Reconciled {
            guest_status: Some(json!({})),
        };
        let first = next_status(None, &ok, Some(1), &stamp(), &json!(T0));
        let again = next_status(Some(&first), &ok, Some(2), &stamp(), &json!(T1));
        assert_eq!(ready(&again)["lastTransitionTime"], T0);
        assert!(
            needs_write(Some(&first), &again),
            "observedGeneration changed"
        );
        let same = next_status(Some(&again), &ok, Some(2), &stamp(), &json!(T1));
        assert!(!needs_write(Some(&again), &same));
    }
}
