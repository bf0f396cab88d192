//! End to end: the real `reconciler-host` binary running the real PotatoHead guest `.wasm`
//! against a real kube-apiserver and etcd. Each test runs its own host, limited to its own
//! namespace, against one control plane shared by the test process.

use std::collections::BTreeMap;
use std::time::Duration;

use e2e::paths::potatohead_guest;
use e2e::{
    CHILDREN_APPLIED, CONVERGE, HostProcess, Scenario, TestNamespace, by_name, eventually,
    image_of, potatohead_api, sample_potatohead,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const PARTS: [&str; 6] = [
    "entry",
    "hat",
    "left-arm",
    "right-arm",
    "left-leg",
    "right-leg",
];
const PORTS: [i32; 6] = [9000, 9001, 9003, 9005, 9002, 9004];

/// The committed sample, placed in `namespace`.
fn sample(namespace: &str) -> DynamicObject {
    sample_potatohead(namespace, "demo")
}

/// A fresh namespace with a host reconciling only it, and the sample applied.
async fn setup(prefix: &str) -> Scenario {
    let scenario = Scenario::start(prefix, &potatohead_guest(), &[]).await;
    potatohead_api(&scenario.client, &scenario.namespace)
        .create(&PostParams::default(), &sample(&scenario.namespace))
        .await
        .unwrap();
    scenario
}

async fn deployments(client: &Client, namespace: &str) -> BTreeMap<String, Deployment> {
    by_name(client, namespace).await
}

async fn services(client: &Client, namespace: &str) -> BTreeMap<String, Service> {
    by_name(client, namespace).await
}

/// Waits until all six parts have a Deployment and a Service, and returns the Deployments.
async fn converged(client: &Client, namespace: &str) -> BTreeMap<String, Deployment> {
    eventually(CONVERGE, "all 6 Deployments and Services exist", || async {
        let deployments = deployments(client, namespace).await;
        let services = services(client, namespace).await;
        if deployments.len() == 6 && services.len() == 6 {
            Ok(deployments)
        } else {
            Err(format!(
                "{} deployments, {} services",
                deployments.len(),
                services.len()
            ))
        }
    })
    .await
}

async fn potatohead(client: &Client, namespace: &str) -> DynamicObject {
    potatohead_api(client, namespace).get("demo").await.unwrap()
}

async fn patch_spec(client: &Client, namespace: &str, spec: Value) {
    potatohead_api(client, namespace)
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

fn ready_condition(potatohead: &DynamicObject) -> Option<Value> {
    potatohead.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
}

fn all_parts_with(overrides: &[(&str, Value)]) -> Value {
    let parts: Vec<Value> = PARTS
        .iter()
        .map(|part| {
            let mut spec = json!({ "name": part });
            for (name, extra) in overrides.iter().filter(|(name, _)| name == part) {
                let _ = name;
                for (k, v) in extra.as_object().unwrap() {
                    spec[k] = v.clone();
                }
            }
            spec
        })
        .collect();
    Value::Array(parts)
}

#[tokio::test(flavor = "multi_thread")]
async fn sample_creates_six_deployments_six_services_and_the_config_map_owned_by_the_potatohead() {
    let Scenario {
        client,
        namespace,
        host: _host,
        ..
    } = setup("create").await;
    let deployments = converged(&client, &namespace).await;
    let parent_uid = potatohead(&client, &namespace).await.uid().unwrap();
    let services = services(&client, &namespace).await;
    let config_map = eventually(CONVERGE, "service-discovery ConfigMap exists", || async {
        Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get("demo-service-discovery")
            .await
            .map_err(|e| e.to_string())
    })
    .await;

    let controller_uid =
        |owners: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>>| {
            owners
                .and_then(|o| o.iter().find(|r| r.controller == Some(true)))
                .map(|r| (r.kind.clone(), r.uid.clone()))
        };
    let expected_owner = Some(("PotatoHead".to_string(), parent_uid.clone()));
    for (part, port) in PARTS.iter().zip(PORTS) {
        let name = format!("demo-{part}");
        let deployment = &deployments[&name];
        assert_eq!(
            controller_uid(deployment.metadata.owner_references.as_ref()),
            expected_owner,
            "{name}"
        );
        assert_eq!(
            image_of(deployment),
            format!("ghcr.io/podtato-head/{part}:0.3.0")
        );
        let service = &services[&name];
        assert_eq!(
            controller_uid(service.metadata.owner_references.as_ref()),
            expected_owner,
            "{name}"
        );
        let service_port = &service.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(service_port.port, port, "{name}");
        assert_eq!(service_port.protocol.as_deref(), Some("TCP"));
    }
    assert_eq!(
        controller_uid(config_map.metadata.owner_references.as_ref()),
        expected_owner
    );
    let discovery = &config_map.data.unwrap()["servicesConfig.yaml"];
    assert!(
        discovery.contains("hat: \"http://demo-hat:9001\""),
        "{discovery}"
    );

    let status = eventually(CONVERGE, "status written", || async {
        let ph = potatohead(&client, &namespace).await;
        if ph.data["status"]["summary"] == "0/6" {
            Ok(ph)
        } else {
            Err(format!("{}", ph.data["status"]))
        }
    })
    .await;
    assert_eq!(
        status.data["status"]["observedGeneration"],
        json!(status.metadata.generation.unwrap())
    );
    let ready = ready_condition(&status).unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("False"), Some("PartsNotReady"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_the_tag_updates_every_image_and_replicas_update_only_that_deployment() {
    let Scenario {
        client,
        namespace,
        host,
        ..
    } = setup("manage").await;
    converged(&client, &namespace).await;
    let applied_before = host.counter(CHILDREN_APPLIED).await;

    patch_spec(&client, &namespace, json!({ "tag": "0.3.1" })).await;
    let retagged = eventually(CONVERGE, "every image uses tag 0.3.1", || async {
        let deployments = deployments(&client, &namespace).await;
        let stale: Vec<String> = deployments
            .values()
            .map(image_of)
            .filter(|i| !i.ends_with(":0.3.1"))
            .collect();
        if stale.is_empty() && deployments.len() == 6 {
            Ok(deployments)
        } else {
            Err(format!("stale: {stale:?}"))
        }
    })
    .await;
    // The reconciles triggered by the host's own writes (their watch events, the status) come
    // within milliseconds; none of them may apply again what was just applied.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        host.counter(CHILDREN_APPLIED).await - applied_before,
        6.0,
        "a new tag is 6 Deployment applies, each once"
    );

    patch_spec(
        &client,
        &namespace,
        json!({ "tag": "0.3.1", "parts": all_parts_with(&[("hat", json!({ "replicas": 3 }))]) }),
    )
    .await;
    let rescaled = eventually(CONVERGE, "hat has 3 replicas", || async {
        let deployments = deployments(&client, &namespace).await;
        let replicas = deployments["demo-hat"].spec.as_ref().unwrap().replicas;
        if replicas == Some(3) {
            Ok(deployments)
        } else {
            Err(format!("hat replicas {replicas:?}"))
        }
    })
    .await;
    for (name, before) in &retagged {
        if name != "demo-hat" {
            assert_eq!(
                rescaled[name].metadata.resource_version, before.metadata.resource_version,
                "{name} was rewritten although only the hat changed"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_children_come_back_and_edited_fields_are_reverted() {
    let Scenario {
        client,
        namespace,
        host: _host,
        ..
    } = setup("restore").await;
    let before = converged(&client, &namespace).await;
    let deployments_api = Api::<Deployment>::namespaced(client.clone(), &namespace);
    let services_api = Api::<Service>::namespaced(client.clone(), &namespace);

    deployments_api
        .delete("demo-hat", &DeleteParams::default())
        .await
        .unwrap();
    services_api
        .delete("demo-hat", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        CONVERGE,
        "hat Deployment and Service are recreated",
        || async {
            let deployment = deployments_api
                .get("demo-hat")
                .await
                .map_err(|e| e.to_string())?;
            services_api
                .get("demo-hat")
                .await
                .map_err(|e| e.to_string())?;
            if deployment.uid() != before["demo-hat"].uid() {
                Ok(())
            } else {
                Err("still the old object".into())
            }
        },
    )
    .await;

    // Another field manager takes the image of the entry Deployment.
    let edit = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "server", "image": "evil/entry:1" }] } } } });
    deployments_api
        .patch(
            "demo-entry",
            &PatchParams::default(),
            &Patch::Strategic(edit),
        )
        .await
        .unwrap();
    eventually(CONVERGE, "the edited image is reverted", || async {
        let image = image_of(
            &deployments_api
                .get("demo-entry")
                .await
                .map_err(|e| e.to_string())?,
        );
        if image == "ghcr.io/podtato-head/entry:0.3.0" {
            Ok(())
        } else {
            Err(image)
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_part_deletes_that_parts_children_and_nothing_else() {
    let Scenario {
        client,
        namespace,
        host: _host,
        ..
    } = setup("prune").await;
    let before = converged(&client, &namespace).await;
    let parts: Vec<Value> = PARTS
        .iter()
        .filter(|p| **p != "left-leg")
        .map(|p| json!({ "name": p }))
        .collect();
    patch_spec(&client, &namespace, json!({ "parts": parts })).await;

    let after = eventually(
        CONVERGE,
        "left-leg Deployment and Service are gone",
        || async {
            let deployments = deployments(&client, &namespace).await;
            let services = services(&client, &namespace).await;
            if !deployments.contains_key("demo-left-leg") && !services.contains_key("demo-left-leg")
            {
                Ok(deployments)
            } else {
                Err(format!(
                    "deployments {:?}",
                    deployments.keys().collect::<Vec<_>>()
                ))
            }
        },
    )
    .await;
    assert_eq!(after.len(), 5);
    for (name, deployment) in &after {
        assert_eq!(deployment.uid(), before[name].uid(), "{name} was replaced");
    }
    assert_eq!(services(&client, &namespace).await.len(), 5);
    let config_map = eventually(CONVERGE, "discovery no longer lists left-leg", || async {
        let cm = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get("demo-service-discovery")
            .await
            .map_err(|e| e.to_string())?;
        let file = cm
            .data
            .unwrap_or_default()
            .remove("servicesConfig.yaml")
            .unwrap_or_default();
        if file.contains("left-leg") {
            Err(file)
        } else {
            Ok(file)
        }
    })
    .await;
    assert!(config_map.contains("right-leg"), "{config_map}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_spec_leaves_children_untouched_and_shows_the_reason() {
    let Scenario {
        client,
        namespace,
        host: _host,
        ..
    } = setup("invalid").await;
    let before = converged(&client, &namespace).await;
    // The CRD schema cannot know that the guest sets PODTATO_PORT itself: only the guest rejects this.
    let invalid = all_parts_with(&[(
        "entry",
        json!({ "env": [{ "name": "PODTATO_PORT", "value": "1" }] }),
    )]);
    patch_spec(
        &client,
        &namespace,
        json!({ "tag": "9.9.9", "parts": invalid }),
    )
    .await;

    let ready = eventually(CONVERGE, "Ready=False with reason InvalidSpec", || async {
        let ph = potatohead(&client, &namespace).await;
        match ready_condition(&ph) {
            Some(c) if c["reason"] == "InvalidSpec" => Ok((c, ph.metadata.generation)),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let (condition, generation) = ready;
    assert_eq!(condition["status"], "False");
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("spec.parts[0].env[0].name"),
        "{condition}"
    );
    assert_eq!(condition["observedGeneration"], json!(generation.unwrap()));

    let after = deployments(&client, &namespace).await;
    assert_eq!(after.len(), 6);
    for (name, deployment) in &after {
        assert_eq!(
            deployment.metadata.resource_version, before[name].metadata.resource_version,
            "{name} changed"
        );
    }

    patch_spec(
        &client,
        &namespace,
        json!({ "tag": "9.9.9", "parts": all_parts_with(&[]) }),
    )
    .await;
    eventually(CONVERGE, "a fixed spec is reconciled", || async {
        let images: Vec<String> = deployments(&client, &namespace)
            .await
            .values()
            .map(image_of)
            .collect();
        let reason =
            ready_condition(&potatohead(&client, &namespace).await).map(|c| c["reason"].clone());
        if images.iter().all(|i| i.ends_with(":9.9.9")) && reason == Some(json!("PartsNotReady")) {
            Ok(())
        } else {
            Err(format!("{images:?} {reason:?}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_limited_to_namespace_a_ignores_potatoheads_in_namespace_b() {
    let plane = e2e::shared_plane().await;
    let client = plane.client().await;
    let a = TestNamespace::create(&client, "scope-a").await.name;
    let b = TestNamespace::create(&client, "scope-b").await.name;
    let _host = HostProcess::start(plane, &potatohead_guest(), &["--namespace", &a]);
    potatohead_api(&client, &b)
        .create(&PostParams::default(), &sample(&b))
        .await
        .unwrap();
    potatohead_api(&client, &a)
        .create(&PostParams::default(), &sample(&a))
        .await
        .unwrap();

    converged(&client, &a).await;
    // The host has had the time to reconcile b too, had it been watching it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(deployments(&client, &b).await.is_empty());
    assert!(services(&client, &b).await.is_empty());
    assert_eq!(potatohead(&client, &b).await.data.get("status"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reflects_readiness_when_deployments_become_ready() {
    let Scenario {
        client,
        namespace,
        host: _host,
        ..
    } = setup("ready").await;
    let deployments = converged(&client, &namespace).await;
    let api = Api::<Deployment>::namespaced(client.clone(), &namespace);
    let mark_ready = |name: String, generation: Option<i64>| {
        let api = api.clone();
        async move {
            let status = json!({ "status": { "observedGeneration": generation, "replicas": 1, "readyReplicas": 1, "availableReplicas": 1, "updatedReplicas": 1 } });
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                .await
                .unwrap();
        }
    };
    for part in &PARTS[..4] {
        let name = format!("demo-{part}");
        mark_ready(name.clone(), deployments[&name].metadata.generation).await;
    }
    eventually(CONVERGE, "status says 4/6", || async {
        let ph = potatohead(&client, &namespace).await;
        if ph.data["status"]["summary"] == "4/6" {
            Ok(())
        } else {
            Err(format!("{}", ph.data["status"]))
        }
    })
    .await;

    for part in &PARTS[4..] {
        let name = format!("demo-{part}");
        mark_ready(name.clone(), deployments[&name].metadata.generation).await;
    }
    let ready = eventually(CONVERGE, "status says 6/6 and Ready", || async {
        let ph = potatohead(&client, &namespace).await;
        match ready_condition(&ph) {
            Some(c) if ph.data["status"]["summary"] == "6/6" && c["status"] == "True" => Ok(c),
            other => Err(format!("{} {other:?}", ph.data["status"]["summary"])),
        }
    })
    .await;
    assert_eq!(ready["reason"], "AllPartsReady");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_potatohead_invalid_from_the_start_gets_the_reason_and_no_children() {
    let (plane, client, namespace) = e2e::scenario::namespace("invalid-first").await;
    let _host = HostProcess::start(plane, &potatohead_guest(), &["--namespace", &namespace]);
    let mut invalid = sample(&namespace);
    invalid.data["spec"]["parts"][0]["env"] =
        json!([{ "name": "SERVICES_CONFIG_FILE_PATH", "value": "/x" }]);
    potatohead_api(&client, &namespace)
        .create(&PostParams::default(), &invalid)
        .await
        .unwrap();

    // The first status ever written carries only what the host knows: the condition.
    let ready = eventually(CONVERGE, "Ready=False InvalidSpec", || async {
        match ready_condition(&potatohead(&client, &namespace).await) {
            Some(c) if c["reason"] == "InvalidSpec" => Ok(c),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("spec.parts[0].env[0].name"),
        "{ready}"
    );
    assert!(deployments(&client, &namespace).await.is_empty());
}
