//! The Deployment and Service of each part, as the original operator made them: named
//! `podtato-<name>`, labelled and selected by `app: podtato-head` and `name: podtato-<name>`, the
//! container on port 9000, the Service's port the part's `port` with target port 9000.

use serde_json::{Map, Value, json};

use crate::parts::{PARTS, Part};
use crate::spec::{PartSpec, PodTatoHeadSpec};
use crate::validate::object_name;

/// The port every podtato-head container listens on.
pub const CONTAINER_PORT: i32 = 9000;

/// Every child of a validated spec: a Deployment and a Service per part present.
pub fn desired_children(spec: &PodTatoHeadSpec) -> Vec<Value> {
    PARTS
        .into_iter()
        .filter_map(|part| Some((part, part.of(spec)?)))
        .flat_map(|(part, part_spec)| [deployment(part_spec, spec), service(part, part_spec, spec)])
        .collect()
}

/// `app` and `name`, the labels the original operator selected on.
fn selector(name: &str) -> Value {
    json!({ "app": "podtato-head", "name": object_name(name) })
}

/// The selector labels, plus the version label when the spec has a version.
fn labels(name: &str, spec: &PodTatoHeadSpec) -> Value {
    let mut labels = selector(name);
    if let Some(version) = spec.version.as_deref().filter(|v| !v.is_empty()) {
        labels["app.kubernetes.io/version"] = json!(version);
    }
    labels
}

fn deployment(part: &PartSpec, spec: &PodTatoHeadSpec) -> Value {
    let mut container = Map::new();
    container.insert("name".into(), json!(part.name()));
    container.insert("image".into(), json!(part.image()));
    container.insert("imagePullPolicy".into(), json!("IfNotPresent"));
    container.insert(
        "ports".into(),
        json!([{ "containerPort": CONTAINER_PORT, "protocol": "TCP" }]),
    );
    if !spec.env.is_empty() {
        container.insert("env".into(), json!(spec.env));
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": object_name(part.name()), "labels": labels(part.name(), spec) },
        "spec": {
            "replicas": spec.replica_count.unwrap_or(1),
            "selector": { "matchLabels": selector(part.name()) },
            "template": {
                "metadata": { "labels": selector(part.name()) },
                "spec": { "containers": [container] },
            },
        },
    })
}

fn service(part: Part, part_spec: &PartSpec, spec: &PodTatoHeadSpec) -> Value {
    let service_type = part_spec
        .service_type
        .as_deref()
        .unwrap_or(part.default_service_type());
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": object_name(part_spec.name()), "labels": labels(part_spec.name(), spec) },
        "spec": {
            "type": service_type,
            "selector": selector(part_spec.name()),
            "ports": [{
                "port": part_spec.port.unwrap_or(CONTAINER_PORT),
                "targetPort": CONTAINER_PORT,
                "protocol": "TCP",
            }],
        },
    })
}
