//! Reading the observed children the host hands a guest (JSON text), and when a Deployment counts
//! as ready.

use serde::Deserialize;

/// What a status reads of an observed child. Parsing into this skips every other field without
/// building it: a JSON tree of each whole child (managed fields, pod template…) cost more than the
/// rest of a reconcile together.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ObservedChild {
    pub kind: String,
    pub metadata: ObservedMetadata,
    /// `None` also when the field is JSON `null`.
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

/// Parses the observed children the host sent. Children the host sent are objects the API
/// server returned; one that fails to parse would be a host bug, and skipping it only makes its
/// part look not ready.
pub fn parse_observed(children: &[String]) -> Vec<ObservedChild> {
    children
        .iter()
        .filter_map(|c| serde_json::from_str(c).ok())
        .collect()
}

/// The observed Deployment named `name`, if there is one.
pub fn deployment<'a>(observed: &'a [ObservedChild], name: &str) -> Option<&'a ObservedChild> {
    observed
        .iter()
        .find(|c| c.kind == "Deployment" && c.metadata.name == name)
}

/// A Deployment is ready when it runs the replica count we want, the Deployment controller has
/// seen its latest spec (when it reports that), and enough replicas are ready.
pub fn deployment_ready(deployment: &ObservedChild, desired_replicas: i64) -> bool {
    let spec_replicas = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let seen_latest = deployment
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .is_none_or(|seen| seen >= generation);
    spec_replicas == desired_replicas
        && seen_latest
        && ready_replicas(deployment) >= desired_replicas
}

/// The ready replicas a Deployment reports (0 when it reports none).
pub fn ready_replicas(deployment: &ObservedChild) -> i64 {
    deployment
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(text: &str) -> ObservedChild {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn a_deployment_is_ready_with_its_replicas_ready_at_its_latest_generation() {
        let ready = observed(
            r#"{"kind":"Deployment","metadata":{"name":"d","generation":2},"spec":{"replicas":2},"status":{"observedGeneration":2,"readyReplicas":2}}"#,
        );
        assert!(deployment_ready(&ready, 2));
        assert!(!deployment_ready(&ready, 3), "another replica count wanted");
        let stale = observed(
            r#"{"kind":"Deployment","metadata":{"name":"d","generation":3},"spec":{"replicas":2},"status":{"observedGeneration":2,"readyReplicas":2}}"#,
        );
        assert!(!deployment_ready(&stale, 2), "spec not seen yet");
        let parsed = parse_observed(&[
            r#"{"kind":"Service","metadata":{"name":"d"}}"#.into(),
            "not json".into(),
            r#"{"kind":"Deployment","metadata":{"name":"d"},"status":null}"#.into(),
        ]);
        assert_eq!(parsed.len(), 2);
        assert_eq!(ready_replicas(deployment(&parsed, "d").unwrap()), 0);
    }
}
