//! The PodTatoHead reconcile decision as a plain function over JSON text, so it runs and is
//! tested natively; `lib.rs` only adapts it to the WIT interface.

use serde::Deserialize;
use serde_json::Value;

use crate::children::desired_children;
use crate::spec::PodTatoHeadSpec;
use guest_kit::observed::parse_observed;

use crate::status::{status, to_value};
use crate::validate::validate_spec;

/// What the guest wants, before conversion to the WIT record.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub children: Vec<Value>,
    pub status: Value,
}

/// Why no decision could be made: the spec is wrong; the message starts with the field's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSpec(pub String);

#[derive(Deserialize)]
struct PodTatoHead {
    #[serde(default)]
    spec: Option<PodTatoHeadSpec>,
}

/// Decides the children and status of one PodTatoHead.
///
/// # Errors
/// [`InvalidSpec`] when the object does not parse as a PodTatoHead or breaks a rule of
/// [`crate::validate`].
pub fn reconcile(
    parent_json: &str,
    observed_children: &[String],
    finalizing: bool,
) -> Result<Desired, InvalidSpec> {
    let mut deserializer = serde_json::Deserializer::from_str(parent_json);
    let parent: PodTatoHead = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let inner = e.inner().to_string();
        // serde_json appends "at line L column C" of the host's JSON text: noise to a user.
        let reason = inner
            .rsplit_once(" at line ")
            .map_or(inner.as_str(), |(reason, _)| reason);
        InvalidSpec(format!("{}: {reason}", e.path()))
    })?;
    // The original operator's resources may carry no spec at all: nothing to run.
    let spec = parent.spec.unwrap_or_default();
    validate_spec(&spec).map_err(|e| InvalidSpec(e.0))?;
    let observed = parse_observed(observed_children);
    Ok(Desired {
        // A parent being deleted keeps its children until garbage collection removes them.
        children: if finalizing {
            Vec::new()
        } else {
            desired_children(&spec)
        },
        status: to_value(&status(&spec, &observed)),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The talk's sample, shaped as the original operator's users wrote it.
    fn talk_sample() -> Value {
        json!({
            "replicaCount": 1,
            "version": "v0.1.1",
            "main": { "name": "main", "image": "ghcr.io/podtato-head/podtato-main:v0.1.1", "port": 9000, "serviceType": "LoadBalancer" },
            "hats": { "name": "hats", "image": "ghcr.io/podtato-head/podtato-hats:v0.1.1", "port": 9001, "serviceType": "ClusterIP" },
            "leftLeg": { "name": "left-leg", "image": "ghcr.io/podtato-head/podtato-left-leg:v0.1.1", "port": 9002, "serviceType": "ClusterIP" },
            "leftArm": { "name": "left-arm", "image": "ghcr.io/podtato-head/podtato-left-arm:v0.1.1", "port": 9003, "serviceType": "ClusterIP" },
        })
    }

    fn parent(spec: Value) -> String {
        json!({
            "apiVersion": "crd.demo.com/v1alpha1", "kind": "PodTatoHead",
            "metadata": { "name": "podtatohead-sample", "namespace": "default" },
            "spec": spec,
        })
        .to_string()
    }

    fn by_name<'a>(desired: &'a Desired, kind: &str, name: &str) -> &'a Value {
        desired
            .children
            .iter()
            .find(|c| c["kind"] == kind && c["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    #[test]
    fn each_part_gets_a_deployment_and_a_service_as_the_original_made_them() {
        let desired = reconcile(&parent(talk_sample()), &[], false).unwrap();
        assert_eq!(desired.children.len(), 8);
        let main = by_name(&desired, "Deployment", "podtato-main");
        let labels = json!({ "app": "podtato-head", "name": "podtato-main" });
        assert_eq!(main["spec"]["selector"]["matchLabels"], labels);
        assert_eq!(main["spec"]["template"]["metadata"]["labels"], labels);
        assert_eq!(main["spec"]["replicas"], 1);
        let container = &main["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            container["image"],
            "ghcr.io/podtato-head/podtato-main:v0.1.1"
        );
        assert_eq!(container["ports"][0]["containerPort"], 9000);
        let service = by_name(&desired, "Service", "podtato-main");
        assert_eq!(service["spec"]["type"], "LoadBalancer");
        assert_eq!(service["spec"]["selector"], labels);
        assert_eq!(
            service["spec"]["ports"][0],
            json!({ "port": 9000, "targetPort": 9000, "protocol": "TCP" })
        );
        assert_eq!(
            by_name(&desired, "Service", "podtato-left-arm")["spec"]["type"],
            "ClusterIP"
        );
        assert_eq!(
            by_name(&desired, "Service", "podtato-hats")["spec"]["ports"][0]["port"],
            9001
        );
        assert_eq!(
            main["metadata"]["labels"]["app.kubernetes.io/version"],
            "v0.1.1"
        );
    }

    #[test]
    fn a_missing_replica_count_means_one_and_env_goes_on_every_part() {
        let mut spec = talk_sample();
        spec.as_object_mut().unwrap().remove("replicaCount");
        spec["env"] = json!([{ "name": "GREETING", "value": "hi" }, { "name": "POD", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }]);
        let desired = reconcile(&parent(spec), &[], false).unwrap();
        for deployment in desired
            .children
            .iter()
            .filter(|c| c["kind"] == "Deployment")
        {
            assert_eq!(deployment["spec"]["replicas"], 1);
            let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
            assert_eq!(env[0], json!({ "name": "GREETING", "value": "hi" }));
            assert_eq!(
                env[1]["valueFrom"]["fieldRef"]["fieldPath"],
                "metadata.name"
            );
        }
    }

    #[test]
    fn every_part_present_is_managed_even_when_one_is_missing() {
        let mut spec = talk_sample();
        spec.as_object_mut().unwrap().remove("hats");
        spec["rightArm"] = json!({ "name": "right-arm", "image": "ghcr.io/podtato-head/podtato-right-arm:v0.1.1", "port": 9005 });
        let desired = reconcile(&parent(spec), &[], false).unwrap();
        by_name(&desired, "Deployment", "podtato-right-arm");
        by_name(&desired, "Service", "podtato-left-arm");
        assert_eq!(desired.children.len(), 8);
    }

    #[test]
    fn an_empty_image_is_an_invalid_spec_naming_the_field() {
        let mut spec = talk_sample();
        spec["leftArm"]["image"] = json!("");
        let InvalidSpec(message) = reconcile(&parent(spec), &[], false).unwrap_err();
        assert!(
            message.starts_with("spec.leftArm.image: empty"),
            "{message}"
        );
    }

    #[test]
    fn a_wrongly_typed_field_is_named_with_its_path() {
        let mut spec = talk_sample();
        spec["replicaCount"] = json!("two");
        let InvalidSpec(message) = reconcile(&parent(spec), &[], false).unwrap_err();
        assert!(
            message.starts_with("spec.replicaCount: invalid type"),
            "{message}"
        );
        assert!(!message.contains("line"), "{message}");
    }

    #[test]
    fn the_status_follows_the_observed_deployments() {
        let ready = json!({
            "kind": "Deployment",
            "metadata": { "name": "podtato-main", "generation": 2 },
            "spec": { "replicas": 1 },
            "status": { "observedGeneration": 2, "readyReplicas": 1 },
        })
        .to_string();
        let desired = reconcile(&parent(talk_sample()), &[ready], false).unwrap();
        assert_eq!(desired.status["summary"], "1/4");
        assert_eq!(desired.status["parts"][0]["ready"], true);
        let condition = &desired.status["conditions"][0];
        assert_eq!(condition["reason"], "PartsNotReady");
        assert!(
            condition["message"]
                .as_str()
                .unwrap()
                .ends_with("waiting for hats, leftLeg, leftArm")
        );
    }

    #[test]
    fn a_finalizing_parent_asks_for_no_children() {
        let desired = reconcile(&parent(talk_sample()), &[], true).unwrap();
        assert!(desired.children.is_empty());
    }
}
