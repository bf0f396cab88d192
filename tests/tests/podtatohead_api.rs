//! End to end: the seed operator's own API, `crd.demo.com/v1alpha1` `PodTatoHead`, served by the
//! real host running the real `guest-podtatohead` `.wasm` against a real kube-apiserver and etcd.
//! A resource shaped like the talk's sample is applied unchanged and gets what the original
//! operator made (a Deployment and a Service `podtato-<name>` per part, labels `app` and `name`,
//! container port 9000, Service port the part's `port`), managed against drift, minus the
//! original's bugs: an empty image is an invalid spec naming the field, and a second resource
//! wanting the same names gets a condition instead of the first's objects.

use std::collections::BTreeMap;

use e2e::paths::{podtatohead_guest, workspace_root};
use e2e::{CONVERGE, Scenario, by_name, eventually, image_of, podtatohead_api, sample_podtatohead};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

/// A namespace with a host serving PodTatoHeads in it.
async fn setup(prefix: &str) -> Scenario {
    e2e::shared_plane()
        .await
        .install_crd(&workspace_root().join("deploy/crd/podtatohead.yaml"))
        .await
        .unwrap();
    Scenario::start(prefix, &podtatohead_guest(), &[]).await
}

/// Waits until `name`'s `Ready` condition has `reason`, and returns the condition.
async fn ready_reason(api: &Api<DynamicObject>, name: &str, reason: &str) -> Value {
    e2e::ready_reason(api, name, reason, CONVERGE).await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_talks_resource_applied_unchanged_gets_the_originals_objects_and_they_are_managed() {
    // `_host` is bound, not `..`-ed: the host runs until the test ends.
    let Scenario {
        client,
        namespace,
        host: _host,
        ..
    } = setup("podtato-api").await;
    podtatohead_api(&client, &namespace)
        .create(
            &PostParams::default(),
            &sample_podtatohead(&namespace, "podtatohead-sample"),
        )
        .await
        .unwrap();
    let names = [
        "podtato-main",
        "podtato-hats",
        "podtato-left-leg",
        "podtato-left-arm",
    ];
    let deployments = eventually(CONVERGE, "4 Deployments and 4 Services", || async {
        let deployments = by_name::<Deployment>(&client, &namespace).await;
        let services = by_name::<Service>(&client, &namespace).await;
        match (deployments.len(), services.len()) {
            (4, 4) => Ok(deployments),
            (d, s) => Err(format!("{d} Deployments, {s} Services")),
        }
    })
    .await;
    let services = by_name::<Service>(&client, &namespace).await;
    for (name, port) in names.iter().zip([9000, 9001, 9002, 9003]) {
        let deployment = &deployments[*name];
        let labels = BTreeMap::from([
            ("app".to_string(), "podtato-head".to_string()),
            ("name".to_string(), name.to_string()),
        ]);
        let spec = deployment.spec.as_ref().unwrap();
        assert_eq!(spec.selector.match_labels.as_ref(), Some(&labels), "{name}");
        assert_eq!(spec.replicas, Some(1), "{name}");
        let container = &spec.template.spec.as_ref().unwrap().containers[0];
        assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 9000);
        let service = services[*name].spec.as_ref().unwrap();
        assert_eq!(service.selector.as_ref(), Some(&labels), "{name}");
        let service_port = &service.ports.as_ref().unwrap()[0];
        assert_eq!(service_port.port, port, "{name}");
        assert_eq!(service_port.protocol.as_deref(), Some("TCP"));
        let expected_type = if *name == "podtato-main" {
            "LoadBalancer"
        } else {
            "ClusterIP"
        };
        assert_eq!(service.type_.as_deref(), Some(expected_type), "{name}");
        let owner = &deployment.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("PodTatoHead", "podtatohead-sample")
        );
    }
    assert!(image_of(&deployments["podtato-main"]).ends_with("podtato-main:v0.1.1"));
    eventually(CONVERGE, "status written", || async {
        let object = podtatohead_api(&client, &namespace)
            .get("podtatohead-sample")
            .await
            .unwrap();
        match object.data["status"]["summary"].as_str() {
            Some("0/4") => Ok(()),
            other => Err(format!("summary {other:?}")),
        }
    })
    .await;

    // Drift: someone changes an image and the replicas; the host puts both back.
    let deployments_api = Api::<Deployment>::namespaced(client.clone(), &namespace);
    deployments_api
        .patch(
            "podtato-hats",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "podtato-hats" },
                "spec": { "replicas": 3, "template": { "spec": { "containers": [
                    { "name": "hats", "image": "evil:1" }
                ] } } },
            })),
        )
        .await
        .unwrap();
    eventually(CONVERGE, "drift corrected", || async {
        let hats = deployments_api.get("podtato-hats").await.unwrap();
        let image = image_of(&hats);
        let replicas = hats.spec.as_ref().and_then(|s| s.replicas);
        if image.ends_with("podtato-hats:v0.1.1") && replicas == Some(1) {
            Ok(())
        } else {
            Err(format!("image {image}, replicas {replicas:?}"))
        }
    })
    .await;

    // A deleted child comes back, as a new object.
    let old_uid = services["podtato-left-arm"].uid();
    Api::<Service>::namespaced(client.clone(), &namespace)
        .delete("podtato-left-arm", &DeleteParams::default())
        .await
        .unwrap();
    eventually(CONVERGE, "deleted Service recreated", || async {
        let service = Api::<Service>::namespaced(client.clone(), &namespace)
            .get_opt("podtato-left-arm")
            .await
            .unwrap();
        match service {
            Some(service) if service.uid() != old_uid => Ok(()),
            _ => Err("not recreated yet".into()),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_image_is_an_invalid_spec_and_a_second_resource_cannot_take_the_firsts_objects() {
    // `_host` is bound, not `..`-ed: the host runs until the test ends.
    let Scenario {
        client,
        namespace,
        host: _host,
        ..
    } = setup("podtato-bad").await;
    let api = podtatohead_api(&client, &namespace);
    let mut empty_image = sample_podtatohead(&namespace, "no-image");
    empty_image.data["spec"]["leftArm"]["image"] = json!("");
    // Its own names, so that only the image is wrong.
    for (part, name) in [
        ("main", "m1"),
        ("hats", "h1"),
        ("leftLeg", "ll1"),
        ("leftArm", "la1"),
    ] {
        empty_image.data["spec"][part]["name"] = json!(name);
    }
    api.create(&PostParams::default(), &empty_image)
        .await
        .unwrap();
    let condition = ready_reason(&api, "no-image", "InvalidSpec").await;
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("spec.leftArm.image: empty"),
        "{condition}"
    );
    assert!(
        by_name::<Deployment>(&client, &namespace).await.is_empty(),
        "nothing was applied"
    );

    // Two resources with the talk's part names in one namespace: the second is told, and the
    // first keeps its objects.
    api.create(
        &PostParams::default(),
        &sample_podtatohead(&namespace, "first"),
    )
    .await
    .unwrap();
    eventually(CONVERGE, "the first's objects", || async {
        match by_name::<Deployment>(&client, &namespace).await.len() {
            4 => Ok(()),
            n => Err(format!("{n} Deployments")),
        }
    })
    .await;
    api.create(
        &PostParams::default(),
        &sample_podtatohead(&namespace, "second"),
    )
    .await
    .unwrap();
    let condition = ready_reason(&api, "second", "PolicyViolation").await;
    assert!(
        condition["message"]
            .as_str()
            .unwrap()
            .contains("PodTatoHead \"first\""),
        "{condition}"
    );
    for (name, deployment) in by_name::<Deployment>(&client, &namespace).await {
        let owner = &deployment.metadata.owner_references.unwrap()[0];
        assert_eq!(owner.name, "first", "{name} changed hands");
    }
}
