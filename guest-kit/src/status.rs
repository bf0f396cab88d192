//! The parts of a guest's status that the host completes: the `Ready` condition's transition
//! times and generations, and `reconciler` (which guest decided).

use serde::{Deserialize, Serialize};

/// The guest that made the last decision: the host writes it so operators can see which logic
/// produced what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
pub struct ReconcilerStamp {
    pub name: String,
    pub version: String,
    /// `sha256:` digest of the guest file.
    pub digest: String,
    /// The contract version the guest speaks, e.g. `0.2.0`. Written for guests of contract 0.2
    /// and later only, so the status of a 0.1 guest, and the CRDs written for it, stay as they
    /// were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
}

/// A condition following the Kubernetes API conventions (metav1.Condition).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

impl Condition {
    /// `Ready`: `True` with `ready_reason` when nothing is waited for, else `False` with
    /// `waiting_reason`; the host adds the transition time and generation.
    pub fn ready(ready: bool, ready_reason: &str, waiting_reason: &str, message: String) -> Self {
        Self {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            reason: if ready { ready_reason } else { waiting_reason }.into(),
            message,
            observed_generation: None,
            last_transition_time: None,
        }
    }
}
