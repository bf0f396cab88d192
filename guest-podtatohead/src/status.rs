//! A PodTatoHead's status from the Deployments the host observed.

use serde::Deserialize;
use serde_json::Value;

use crate::parts::PARTS;
use crate::spec::{Condition, PartStatus, PodTatoHeadSpec, PodTatoHeadStatus};
use crate::validate::object_name;

/// What the status reads of an observed child; every other field is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ObservedChild {
    pub kind: String,
    pub metadata: ObservedMetadata,
    pub spec: Option<ObservedSpec>,
    pub status: Option<ObservedStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ObservedMetadata {
    pub name: String,
    pub generation: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ObservedSpec {
    pub replicas: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObservedStatus {
    pub observed_generation: Option<i64>,
    pub ready_replicas: Option<i64>,
}

/// Parses the observed children the host sent; one that does not parse only makes its part look
/// not ready.
pub fn parse_observed(children: &[String]) -> Vec<ObservedChild> {
    children
        .iter()
        .filter_map(|c| serde_json::from_str(c).ok())
        .collect()
}

/// The status of a validated spec.
pub fn status(spec: &PodTatoHeadSpec, observed: &[ObservedChild]) -> PodTatoHeadStatus {
    let replicas = i64::from(spec.replica_count.unwrap_or(1));
    let parts: Vec<PartStatus> = PARTS
        .into_iter()
        .filter_map(|part| Some((part, part.of(spec)?)))
        .map(|(part, part_spec)| {
            let name = object_name(part_spec.name());
            let deployment = observed
                .iter()
                .find(|c| c.kind == "Deployment" && c.metadata.name == name);
            let ready_replicas = deployment
                .and_then(|d| d.status.as_ref()?.ready_replicas)
                .unwrap_or(0);
            PartStatus {
                part: part.field().into(),
                name,
                ready: deployment.is_some_and(|d| ready(d, replicas)),
                ready_replicas,
                replicas,
            }
        })
        .collect();
    let ready_count = parts.iter().filter(|p| p.ready).count();
    let waiting: Vec<&str> = parts
        .iter()
        .filter(|p| !p.ready)
        .map(|p| p.part.as_str())
        .collect();
    let total = parts.len();
    let condition = Condition {
        type_: "Ready".into(),
        status: if waiting.is_empty() { "True" } else { "False" }.into(),
        reason: if waiting.is_empty() {
            "AllPartsReady"
        } else {
            "PartsNotReady"
        }
        .into(),
        message: if waiting.is_empty() {
            format!("{ready_count}/{total} parts ready")
        } else {
            format!(
                "{ready_count}/{total} parts ready; waiting for {}",
                waiting.join(", ")
            )
        },
        observed_generation: None,
        last_transition_time: None,
    };
    PodTatoHeadStatus {
        summary: Some(format!("{ready_count}/{total}")),
        parts,
        conditions: vec![condition],
        observed_generation: None,
        reconciler: None,
    }
}

/// Runs the wanted replica count, its latest spec seen by the Deployment controller, and that
/// many replicas ready.
fn ready(deployment: &ObservedChild, replicas: i64) -> bool {
    let spec_replicas = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let status = deployment.status.as_ref();
    let seen_latest = status
        .and_then(|s| s.observed_generation)
        .is_none_or(|seen| seen >= generation);
    let ready_replicas = status.and_then(|s| s.ready_replicas).unwrap_or(0);
    spec_replicas == replicas && seen_latest && ready_replicas >= replicas
}

/// The status as JSON, for the WIT record.
pub fn to_value(status: &PodTatoHeadStatus) -> Value {
    serde_json::to_value(status).expect("the status serializes")
}
