//! End to end: `deploy/namespaced` as a user applies it (kubectl 1.20's kustomize, then the API
//! server), and the host run exactly like its Deployment, authenticated as its ServiceAccount.
//! The operator serves both shipped guests (PotatoHead and the seed's PodTatoHead) from its
//! ConfigMap of guests, and every rule of every Role is needed: removing any one makes it fail to
//! manage one of the two APIs.
//!
//! Own test binary, so its own control plane: these operators watch whole namespaces.

use std::time::{Duration, Instant};

use e2e::deploy::{self, kind_of};
use e2e::operator::{manages_the_podtatohead_sample, manages_the_sample};
use e2e::paths::{podtatohead_guest, potatohead_guest};
use e2e::{ControlPlane, HostProcess, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::DynamicObject;

/// One copy of the rendered overlay in `namespace`, with rule `rule` of Role `role` removed.
struct Variant {
    namespace: String,
    removed: Option<(String, usize)>,
}

/// The Roles of the overlay: (name, number of rules).
fn roles(objects: &[DynamicObject]) -> Vec<(String, usize)> {
    objects
        .iter()
        .filter(|o| kind_of(o) == "Role")
        .map(|o| {
            let rules = o.data["rules"].as_array().map_or(0, Vec::len);
            (o.metadata.name.clone().unwrap(), rules)
        })
        .collect()
}

/// Applies the variant's copy of `objects` and starts the host as its pod would run.
async fn deploy_variant(
    plane: &ControlPlane,
    client: &kube::Client,
    objects: &[DynamicObject],
    variant: &Variant,
) -> HostProcess {
    let mut objects = objects.to_vec();
    deploy::relocate(&mut objects, &variant.namespace);
    if let Some((role, rule)) = &variant.removed {
        let role = objects
            .iter_mut()
            .find(|o| kind_of(o) == "Role" && o.metadata.name.as_ref() == Some(role))
            .unwrap();
        role.data["rules"].as_array_mut().unwrap().remove(*rule);
    }
    deploy::apply(client, &objects, false).await.unwrap();
    let deployment: Deployment = serde_json::from_value(
        serde_json::to_value(objects.iter().find(|o| kind_of(o) == "Deployment").unwrap()).unwrap(),
    )
    .unwrap();
    let kubeconfig =
        deploy::service_account_kubeconfig(plane, client, &variant.namespace, "wasm-reconciler")
            .await
            .unwrap();
    deploy::publish_guest(
        &plane.kubeconfig,
        &variant.namespace,
        &[potatohead_guest().into(), podtatohead_guest().into()],
    )
    .unwrap();
    deploy::start_like_pod(
        plane,
        client,
        &kubeconfig,
        &deployment,
        "wasm-reconciler-7d4b9-x2x9q",
    )
    .await
    .unwrap()
    .host
}

#[tokio::test(flavor = "multi_thread")]
async fn the_namespaced_operator_works_as_its_service_account_and_needs_every_rule() {
    let plane = e2e::shared_plane().await;
    let client = plane.client().await;
    let objects = deploy::kustomize("namespaced").unwrap();
    let mut variants = vec![Variant {
        namespace: format!("ns-full-{}", std::process::id()),
        removed: None,
    }];
    for (role, rules) in roles(&objects) {
        for rule in 0..rules {
            variants.push(Variant {
                namespace: format!("ns-{}-{role}-{rule}", std::process::id()),
                removed: Some((role.clone(), rule)),
            });
        }
    }
    assert!(
        variants.len() >= 8,
        "expected the reconciler and leader-election Roles"
    );

    // All copies side by side: one operator per namespace.
    let mut hosts = Vec::new();
    for variant in &variants {
        hosts.push(deploy_variant(plane, &client, &objects, variant).await);
    }
    let outcomes = futures::future::join_all(variants.iter().map(|variant| {
        // The full copy has time to spare; the others show they cannot manage in a time the
        // full copy needs only a fraction of.
        let deadline = Instant::now()
            + if variant.removed.is_none() {
                Duration::from_secs(90)
            } else {
                Duration::from_secs(30)
            };
        let client = client.clone();
        async move {
            let (potatohead, podtatohead) = futures::join!(
                manages_the_sample(&client, &variant.namespace, deadline),
                manages_the_podtatohead_sample(&client, &variant.namespace, deadline)
            );
            potatohead.and(podtatohead)
        }
    }))
    .await;
    for ((variant, outcome), host) in variants.iter().zip(&outcomes).zip(&hosts) {
        match (&variant.removed, outcome) {
            (None, Ok(())) => {}
            (None, Err(error)) => {
                panic!("the operator as deployed failed: {error}\n{}", host.log())
            }
            (Some(_), Err(_)) => {}
            (Some((role, rule)), Ok(())) => {
                panic!("rule {rule} of Role {role} is not needed: the operator managed without it")
            }
        }
    }

    // Without the Deployments rule the child caches cannot list: alive, but not ready. Granting
    // the rule again, the host recovers by itself: caches sync, it becomes ready and converges.
    let (index, variant) = variants
        .iter()
        .enumerate()
        .find(|(_, v)| {
            v.removed.as_ref().is_some_and(|(role, rule)| {
                let role = objects
                    .iter()
                    .find(|o| kind_of(o) == "Role" && o.metadata.name.as_ref() == Some(role))
                    .unwrap();
                role.data["rules"][*rule]["resources"][0] == "deployments"
            })
        })
        .expect("a variant without the Deployments rule");
    let host = &hosts[index];
    assert_eq!(host.http_get("/healthz").await.0, 200);
    let (status, body) = host.http_get("/readyz").await;
    assert_eq!(status, 503, "ready without synced caches: {body}");
    let mut restored = objects.clone();
    deploy::relocate(&mut restored, &variant.namespace);
    deploy::apply(&client, &restored, false).await.unwrap();
    eventually(
        Duration::from_secs(90),
        "ready once the rule is back",
        || async {
            match host.http_get("/readyz").await {
                (200, _) => Ok(()),
                (status, body) => Err(format!("{status} {body}")),
            }
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    manages_the_sample(&client, &variant.namespace, deadline)
        .await
        .and(manages_the_podtatohead_sample(&client, &variant.namespace, deadline).await)
        .unwrap_or_else(|e| panic!("after the rule came back: {e}\n{}", host.log()));
}
