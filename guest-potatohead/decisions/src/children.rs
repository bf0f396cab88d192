//! Renders the desired children of a PotatoHead: per part a Deployment and a Service, plus the
//! service-discovery ConfigMap that the entry part reads to find the other parts.
//!
//! Objects carry only the fields this operator means to own: server-side apply then leaves every
//! other field (defaults, other managers' edits) alone.

use serde_json::{Value, json};

use crate::config::Config;

/// Variables every part's container gets (from `spec.configRef`'s ConfigMap), by name.
pub type SharedEnv = std::collections::BTreeMap<String, String>;
use crate::parts::{CONTAINER_PORT, Part};
use crate::spec::{PartSpec, PotatoHeadSpec, ServiceType};

/// Where the entry part reads its service-discovery file; podtato-head's entry server honours
/// `SERVICES_CONFIG_FILE_PATH`.
const SERVICES_CONFIG_DIR: &str = "/config";
const SERVICES_CONFIG_FILE: &str = "servicesConfig.yaml";
/// Pod-template annotation carrying a digest of the discovery file, so the entry pods roll when
/// the set of parts changes (a mounted ConfigMap is not re-read by a running entry server).
const DISCOVERY_DIGEST_ANNOTATION: &str = "podtato.example.com/service-discovery-digest";

/// Name of a part's Deployment and Service.
pub fn part_object_name(parent: &str, part: Part) -> String {
    format!("{parent}-{}", part.as_str())
}

/// Name of the service-discovery ConfigMap.
pub fn discovery_config_map_name(parent: &str) -> String {
    format!("{parent}-service-discovery")
}

/// Every desired child for a validated spec: Deployments and Services in the order of the spec's
/// parts, then the ConfigMap when the entry part is present.
pub fn desired_children(
    parent: &str,
    spec: &PotatoHeadSpec,
    config: &Config,
    shared_env: &SharedEnv,
) -> Vec<Value> {
    let discovery = spec
        .parts
        .iter()
        .any(|p| p.name == Part::Entry)
        .then(|| services_config(parent, spec));
    let mut children = Vec::with_capacity(spec.parts.len() * 2 + 1);
    for part in &spec.parts {
        children.push(deployment(
            parent,
            spec,
            (config, shared_env),
            part,
            discovery.as_deref(),
        ));
        children.push(service(parent, part));
    }
    if let Some(file) = discovery {
        children.push(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": discovery_config_map_name(parent),
                "labels": labels(parent, Part::Entry),
            },
            "data": { SERVICES_CONFIG_FILE: file },
        }));
    }
    children
}

/// The discovery file: every listed part except entry, mapped to its Service URL. Sorted, so the
/// content (and its digest) only changes when the parts or their ports do.
fn services_config(parent: &str, spec: &PotatoHeadSpec) -> String {
    let mut parts: Vec<&PartSpec> = spec
        .parts
        .iter()
        .filter(|p| p.name != Part::Entry)
        .collect();
    parts.sort_by_key(|p| p.name);
    parts
        .iter()
        .map(|p| {
            format!(
                "{}: \"http://{}:{}\"\n",
                p.name.as_str(),
                part_object_name(parent, p.name),
                service_port(p)
            )
        })
        .collect()
}

fn service_port(part: &PartSpec) -> i32 {
    part.port
        .unwrap_or_else(|| part.name.default_service_port())
}

fn image(spec: &PotatoHeadSpec, config: &Config, part: &PartSpec) -> String {
    part.image
        .clone()
        .unwrap_or_else(|| format!("{}/{}:{}", config.registry(), part.name.as_str(), spec.tag))
}

/// Labels on every child of a part; the first two also select the part's pods.
fn labels(parent: &str, part: Part) -> Value {
    json!({
        "app.kubernetes.io/name": "podtato-head",
        "app.kubernetes.io/instance": parent,
        "app.kubernetes.io/component": part.as_str(),
    })
}

fn selector(parent: &str, part: Part) -> Value {
    json!({
        "app.kubernetes.io/instance": parent,
        "app.kubernetes.io/component": part.as_str(),
    })
}

fn deployment(
    parent: &str,
    spec: &PotatoHeadSpec,
    (config, shared_env): (&Config, &SharedEnv),
    part: &PartSpec,
    discovery: Option<&str>,
) -> Value {
    let mut env = vec![json!({ "name": "PODTATO_PORT", "value": CONTAINER_PORT.to_string() })];
    let mut container = json!({
        "name": "server",
        "image": image(spec, config, part),
        "ports": [{ "name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP" }],
    });
    if part.name.serves_root_page() {
        let probe = json!({ "httpGet": { "path": "/", "port": CONTAINER_PORT } });
        container["readinessProbe"] = probe.clone();
        container["livenessProbe"] = probe;
    }
    let mut pod_spec = json!({});
    let mut template_metadata = json!({ "labels": labels(parent, part.name) });

    if part.name == Part::Entry
        && let Some(file) = discovery
    {
        env.push(json!({
            "name": "SERVICES_CONFIG_FILE_PATH",
            "value": format!("{SERVICES_CONFIG_DIR}/{SERVICES_CONFIG_FILE}"),
        }));
        container["volumeMounts"] = json!([{ "name": "service-discovery", "mountPath": SERVICES_CONFIG_DIR, "readOnly": true }]);
        pod_spec["volumes"] = json!([{
            "name": "service-discovery",
            "configMap": { "name": discovery_config_map_name(parent) },
        }]);
        template_metadata["annotations"] =
            json!({ DISCOVERY_DIGEST_ANNOTATION: format!("{:016x}", fnv1a(file.as_bytes())) });
    }
    // The ConfigMap's variables first, sorted; a part's own variable of the same name replaces
    // it rather than following it (a duplicate name would be ambiguous to read).
    env.extend(
        shared_env
            .iter()
            .filter(|(name, _)| !part.env.iter().any(|own| &own.name == *name))
            .map(|(name, value)| json!({ "name": name, "value": value })),
    );
    env.extend(
        part.env
            .iter()
            .map(|v| json!({ "name": v.name, "value": v.value })),
    );
    container["env"] = Value::Array(env);
    pod_spec["containers"] = json!([container]);

    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": part_object_name(parent, part.name),
            "labels": labels(parent, part.name),
        },
        "spec": {
            "replicas": part.replicas,
            "selector": { "matchLabels": selector(parent, part.name) },
            "template": { "metadata": template_metadata, "spec": pod_spec },
        },
    })
}

fn service(parent: &str, part: &PartSpec) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": part_object_name(parent, part.name),
            "labels": labels(parent, part.name),
        },
        "spec": {
            "type": part
                .service_type
                .unwrap_or_else(|| ServiceType::default_for(part.name))
                .as_str(),
            "selector": selector(parent, part.name),
            // `protocol` is explicit: server-side apply on Kubernetes 1.20 rejects ports without
            // it (they are a list keyed by port and protocol).
            "ports": [{
                "name": "http",
                "port": service_port(part),
                "targetPort": CONTAINER_PORT,
                "protocol": "TCP",
            }],
        },
    })
}

/// 64-bit FNV-1a: a small, stable content digest (no crypto needed, and no extra dependency in
/// the guest).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{EnvVar, ServiceType};

    fn part(name: Part) -> PartSpec {
        PartSpec {
            name,
            image: None,
            replicas: 1,
            env: vec![],
            service_type: None,
            port: None,
        }
    }

    fn all_parts() -> PotatoHeadSpec {
        PotatoHeadSpec {
            config_ref: None,
            tag: "0.3.0".into(),
            parts: Part::ALL.iter().map(|p| part(*p)).collect(),
        }
    }

    fn find<'a>(children: &'a [Value], kind: &str, name: &str) -> &'a Value {
        children
            .iter()
            .find(|c| c["kind"] == kind && c["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name}"))
    }

    #[test]
    fn all_six_parts_give_six_deployments_six_services_and_the_config_map() {
        let children =
            desired_children("demo", &all_parts(), &Config::default(), &SharedEnv::new());
        assert_eq!(children.len(), 13);
        for kind in ["Deployment", "Service"] {
            assert_eq!(
                children.iter().filter(|c| c["kind"] == kind).count(),
                6,
                "{kind}"
            );
        }
        find(&children, "ConfigMap", "demo-service-discovery");
    }

    #[test]
    fn images_follow_the_tag_unless_a_part_overrides_them() {
        let mut spec = all_parts();
        spec.tag = "v9".into();
        spec.parts[1].image = Some("registry.local/hat:custom".into());
        let children = desired_children("demo", &spec, &Config::default(), &SharedEnv::new());
        let image = |name: &str| {
            find(&children, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["image"].clone()
        };
        assert_eq!(image("demo-entry"), "ghcr.io/podtato-head/entry:v9");
        assert_eq!(image("demo-hat"), "registry.local/hat:custom");
        assert_eq!(image("demo-right-leg"), "ghcr.io/podtato-head/right-leg:v9");
        let mirror = Config {
            registry: Some("mirror.local/podtato".into()),
        };
        let children = desired_children("demo", &spec, &mirror, &SharedEnv::new());
        let image = |name: &str| {
            find(&children, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["image"].clone()
        };
        assert_eq!(image("demo-entry"), "mirror.local/podtato/entry:v9");
        assert_eq!(image("demo-hat"), "registry.local/hat:custom");
    }

    #[test]
    fn services_use_podtato_ports_and_target_the_container_port() {
        let children =
            desired_children("demo", &all_parts(), &Config::default(), &SharedEnv::new());
        for p in Part::ALL {
            let svc = find(&children, "Service", &part_object_name("demo", p));
            let port = &svc["spec"]["ports"][0];
            assert_eq!(port["port"], p.default_service_port());
            assert_eq!(port["targetPort"], CONTAINER_PORT);
            assert_eq!(port["protocol"], "TCP");
        }
    }

    #[test]
    fn the_entry_service_is_a_load_balancer_and_the_others_cluster_ip_unless_set() {
        let mut spec = all_parts();
        let children = desired_children("demo", &spec, &Config::default(), &SharedEnv::new());
        for p in Part::ALL {
            let svc = find(&children, "Service", &part_object_name("demo", p));
            let expected = if p == Part::Entry {
                "LoadBalancer"
            } else {
                "ClusterIP"
            };
            assert_eq!(svc["spec"]["type"], expected, "{p:?}");
        }
        spec.parts[0].service_type = Some(ServiceType::ClusterIP);
        let children = desired_children("demo", &spec, &Config::default(), &SharedEnv::new());
        assert_eq!(
            find(&children, "Service", "demo-entry")["spec"]["type"],
            "ClusterIP"
        );
    }

    #[test]
    fn only_the_entry_container_is_probed_on_its_root_page() {
        let children =
            desired_children("demo", &all_parts(), &Config::default(), &SharedEnv::new());
        for p in Part::ALL {
            let dep = find(&children, "Deployment", &part_object_name("demo", p));
            let container = &dep["spec"]["template"]["spec"]["containers"][0];
            for probe in ["readinessProbe", "livenessProbe"] {
                if p == Part::Entry {
                    assert_eq!(
                        container[probe],
                        json!({ "httpGet": { "path": "/", "port": 9000 } }),
                        "{probe}"
                    );
                } else {
                    assert!(container.get(probe).is_none(), "{p:?} {probe}");
                }
            }
        }
    }

    // Attack: a user who may create PotatoHeads but not read Secrets asks for
    // `env[].valueFrom.secretKeyRef` (the confused deputy of the original operator-sdk demo).
    // This guest's env is `name` and `value` only: a variable without a value is refused, and a
    // `valueFrom` beside a value never reaches the Deployment.
    #[test]
    fn an_env_var_from_a_secret_never_reaches_a_deployment() {
        let secret = json!({ "secretKeyRef": { "name": "db", "key": "password" } });
        let only_from: Result<EnvVar, _> =
            serde_json::from_value(json!({ "name": "X", "valueFrom": secret }));
        assert!(
            only_from
                .unwrap_err()
                .to_string()
                .contains("missing field `value`")
        );
        let both: EnvVar =
            serde_json::from_value(json!({ "name": "X", "value": "v", "valueFrom": secret }))
                .unwrap();
        let mut spec = all_parts();
        spec.parts[0].env = vec![both];
        let children = desired_children("demo", &spec, &Config::default(), &SharedEnv::new());
        assert!(
            !serde_json::to_string(&children)
                .unwrap()
                .contains("secretKeyRef"),
            "a Secret reference reached a child"
        );
    }

    #[test]
    fn part_settings_reach_their_objects() {
        let mut spec = all_parts();
        spec.parts[2] = PartSpec {
            replicas: 3,
            env: vec![EnvVar {
                name: "COLOR".into(),
                value: "red".into(),
            }],
            service_type: Some(ServiceType::NodePort),
            port: Some(8080),
            ..part(Part::LeftArm)
        };
        let children = desired_children("demo", &spec, &Config::default(), &SharedEnv::new());
        let dep = find(&children, "Deployment", "demo-left-arm");
        assert_eq!(dep["spec"]["replicas"], 3);
        let env = &dep["spec"]["template"]["spec"]["containers"][0]["env"];
        assert!(
            env.as_array()
                .unwrap()
                .contains(&json!({"name": "COLOR", "value": "red"}))
        );
        let svc = find(&children, "Service", "demo-left-arm");
        assert_eq!(svc["spec"]["type"], "NodePort");
        assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
        assert_eq!(
            find(&children, "Deployment", "demo-hat")["spec"]["replicas"],
            1
        );
    }

    #[test]
    fn entry_mounts_the_discovery_file_listing_the_other_parts() {
        let mut spec = all_parts();
        spec.parts[1].port = Some(7001);
        let children = desired_children("demo", &spec, &Config::default(), &SharedEnv::new());
        let file = find(&children, "ConfigMap", "demo-service-discovery")["data"]
            [SERVICES_CONFIG_FILE]
            .as_str()
            .unwrap()
            .to_string();
        assert!(file.contains("hat: \"http://demo-hat:7001\"\n"), "{file}");
        assert!(
            file.contains("right-arm: \"http://demo-right-arm:9005\"\n"),
            "{file}"
        );
        assert!(!file.contains("entry"), "{file}");
        let pod = &find(&children, "Deployment", "demo-entry")["spec"]["template"]["spec"];
        assert_eq!(
            pod["volumes"][0]["configMap"]["name"],
            "demo-service-discovery"
        );
        assert_eq!(
            pod["containers"][0]["volumeMounts"][0]["mountPath"],
            "/config"
        );
        let env = pod["containers"][0]["env"].as_array().unwrap();
        assert!(env.contains(
            &json!({"name": "SERVICES_CONFIG_FILE_PATH", "value": "/config/servicesConfig.yaml"})
        ));
    }

    #[test]
    fn changing_the_parts_changes_the_entry_pod_template() {
        let annotation = |spec: &PotatoHeadSpec| {
            let children = desired_children("demo", spec, &Config::default(), &SharedEnv::new());
            find(&children, "Deployment", "demo-entry")["spec"]["template"]["metadata"]["annotations"]
                [DISCOVERY_DIGEST_ANNOTATION]
                .clone()
        };
        let all = all_parts();
        let mut fewer = all_parts();
        fewer.parts.pop();
        assert_ne!(annotation(&all), annotation(&fewer));
        assert_eq!(annotation(&all), annotation(&all_parts()));
    }

    #[test]
    fn the_shared_variables_reach_every_part_and_a_parts_own_wins() {
        let mut spec = all_parts();
        spec.parts[1].env = vec![EnvVar {
            name: "COLOUR".into(),
            value: "own".into(),
        }];
        let shared: SharedEnv = [
            ("COLOUR".to_string(), "shared".to_string()),
            ("GREETING".to_string(), "hi".to_string()),
        ]
        .into();
        let children = desired_children("demo", &spec, &Config::default(), &shared);
        let env = |name: &str| {
            find(&children, "Deployment", name)["spec"]["template"]["spec"]["containers"][0]["env"]
                .clone()
        };
        let entry = env("demo-entry").to_string();
        assert!(
            entry.contains(r#"{"name":"COLOUR","value":"shared"}"#),
            "{entry}"
        );
        assert!(
            entry.contains(r#"{"name":"GREETING","value":"hi"}"#),
            "{entry}"
        );
        let hat = env("demo-hat").to_string();
        assert!(hat.contains(r#"{"name":"COLOUR","value":"own"}"#), "{hat}");
        assert!(!hat.contains("shared"), "{hat}");
        assert!(hat.contains("GREETING"), "{hat}");
    }

    #[test]
    fn without_entry_there_is_no_config_map() {
        let spec = PotatoHeadSpec {
            config_ref: None,
            tag: "1".into(),
            parts: vec![part(Part::Hat)],
        };
        let children = desired_children("demo", &spec, &Config::default(), &SharedEnv::new());
        assert_eq!(children.len(), 2);
        assert!(children.iter().all(|c| c["kind"] != "ConfigMap"));
    }
}
