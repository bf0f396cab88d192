//! A PodTatoHead's status from the Deployments the host observed.

use guest_kit::observed::{ObservedChild, deployment, deployment_ready, ready_replicas};
use serde_json::Value;

use crate::parts::PARTS;
use crate::spec::{Condition, PartStatus, PodTatoHeadSpec, PodTatoHeadStatus};
use crate::validate::object_name;

/// The status of a validated spec.
pub fn status(spec: &PodTatoHeadSpec, observed: &[ObservedChild]) -> PodTatoHeadStatus {
    let replicas = i64::from(spec.replica_count.unwrap_or(1));
    let parts: Vec<PartStatus> = PARTS
        .into_iter()
        .filter_map(|part| Some((part, part.of(spec)?)))
        .map(|(part, part_spec)| {
            let name = object_name(part_spec.name());
            let deployment = deployment(observed, &name);
            PartStatus {
                part: part.field().into(),
                ready: deployment.is_some_and(|d| deployment_ready(d, replicas)),
                ready_replicas: deployment.map_or(0, ready_replicas),
                name,
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
    let message = if waiting.is_empty() {
        format!("{ready_count}/{total} parts ready")
    } else {
        format!(
            "{ready_count}/{total} parts ready; waiting for {}",
            waiting.join(", ")
        )
    };
    let condition = Condition::ready(
        waiting.is_empty(),
        "AllPartsReady",
        "PartsNotReady",
        message,
    );
    PodTatoHeadStatus {
        summary: Some(format!("{ready_count}/{total}")),
        parts,
        conditions: vec![condition],
        observed_generation: None,
        reconciler: None,
    }
}

/// The status as JSON, for the WIT record.
pub fn to_value(status: &PodTatoHeadStatus) -> Value {
    serde_json::to_value(status).expect("the status serializes")
}
