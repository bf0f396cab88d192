//! Computes a PotatoHead's status from the Deployments the host observed.

pub use guest_kit::observed::ObservedChild;
use guest_kit::observed::{deployment_ready, ready_replicas};

use crate::children::part_object_name;
use crate::spec::{Condition, PartStatus, PotatoHeadSpec, PotatoHeadStatus};

/// The status for a validated spec. `observed_children` are the parent's owned objects as the
/// host saw them; only Deployments are read.
pub fn status(
    parent: &str,
    spec: &PotatoHeadSpec,
    observed_children: &[ObservedChild],
) -> PotatoHeadStatus {
    let parts: Vec<PartStatus> = spec
        .parts
        .iter()
        .map(|part| {
            let name = part_object_name(parent, part.name);
            let desired_replicas = part.replicas;
            let deployment = observed_children
                .iter()
                .find(|c| c.kind == "Deployment" && c.metadata.name == name);
            let ready_replicas = deployment.map_or(0, ready_replicas);
            PartStatus {
                name: part.name,
                ready: deployment.is_some_and(|d| deployment_ready(d, i64::from(desired_replicas))),
                ready_replicas: ready_replicas as i32,
                replicas: desired_replicas,
            }
        })
        .collect();

    let ready = parts.iter().filter(|p| p.ready).count();
    let total = parts.len();
    let not_ready: Vec<&str> = parts
        .iter()
        .filter(|p| !p.ready)
        .map(|p| p.name.as_str())
        .collect();
    let condition = if not_ready.is_empty() {
        Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "AllPartsReady".into(),
            message: format!("{ready}/{total} parts ready"),
            observed_generation: None,
            last_transition_time: None,
        }
    } else {
        Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: "PartsNotReady".into(),
            message: format!(
                "{ready}/{total} parts ready; waiting for {}",
                not_ready.join(", ")
            ),
            observed_generation: None,
            last_transition_time: None,
        }
    };
    PotatoHeadStatus {
        observed_generation: None,
        summary: Some(format!("{ready}/{total}")),
        parts: Some(parts),
        conditions: vec![condition],
        reconciler: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::parts::Part;
    use crate::spec::PartSpec;

    fn spec(parts: &[(Part, i32)]) -> PotatoHeadSpec {
        PotatoHeadSpec {
            config_ref: None,
            tag: "1".into(),
            parts: parts
                .iter()
                .map(|(name, replicas)| PartSpec {
                    name: *name,
                    image: None,
                    replicas: *replicas,
                    env: vec![],
                    service_type: None,
                    port: None,
                })
                .collect(),
        }
    }

    fn deployment(name: &str, replicas: i64, ready: i64) -> ObservedChild {
        serde_json::from_value(json!({
            "kind": "Deployment",
            "metadata": { "name": name, "generation": 2, "uid": "ignored" },
            "spec": { "replicas": replicas, "template": { "spec": {} } },
            "status": { "observedGeneration": 2, "readyReplicas": ready },
        }))
        .unwrap()
    }

    #[test]
    fn counts_ready_parts_in_the_summary() {
        let spec = spec(&[(Part::Entry, 1), (Part::Hat, 2), (Part::LeftArm, 1)]);
        let observed = vec![deployment("demo-entry", 1, 1), deployment("demo-hat", 2, 1)];
        let status = status("demo", &spec, &observed);
        assert_eq!(status.summary.as_deref(), Some("1/3"));
        assert_eq!(
            status
                .parts
                .unwrap()
                .iter()
                .map(|p| (p.name, p.ready, p.ready_replicas))
                .collect::<Vec<_>>(),
            vec![
                (Part::Entry, true, 1),
                (Part::Hat, false, 1),
                (Part::LeftArm, false, 0)
            ]
        );
        let ready = &status.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "PartsNotReady")
        );
        assert!(ready.message.contains("hat, left-arm"), "{}", ready.message);
    }

    #[test]
    fn all_parts_ready_makes_the_condition_true() {
        let spec = spec(&[(Part::Entry, 1)]);
        let status = status("demo", &spec, &[deployment("demo-entry", 1, 1)]);
        assert_eq!(status.summary.as_deref(), Some("1/1"));
        assert_eq!(status.conditions[0].status, "True");
    }

    #[test]
    fn a_deployment_not_yet_at_the_desired_replicas_is_not_ready() {
        let spec = spec(&[(Part::Entry, 3)]);
        assert!(
            !status("demo", &spec, &[deployment("demo-entry", 1, 1)])
                .parts
                .unwrap()[0]
                .ready
        );
    }

    #[test]
    fn a_child_with_null_spec_and_status_still_parses() {
        let child: ObservedChild = serde_json::from_value(json!({
            "kind": "Deployment", "metadata": { "name": "demo-entry" }, "spec": null, "status": null
        }))
        .unwrap();
        let spec = spec(&[(Part::Entry, 1)]);
        let part = &status("demo", &spec, &[child]).parts.unwrap()[0];
        assert_eq!((part.ready, part.ready_replicas), (false, 0));
    }

    #[test]
    fn a_deployment_whose_latest_spec_is_unseen_is_not_ready() {
        let spec = spec(&[(Part::Entry, 1)]);
        let mut stale = deployment("demo-entry", 1, 1);
        stale.status.as_mut().unwrap().observed_generation = Some(1);
        assert!(!status("demo", &spec, &[stale]).parts.unwrap()[0].ready);
    }
}
