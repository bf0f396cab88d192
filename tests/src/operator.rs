//! What a deployed operator must manage with its two guests, as one scenario per API that fails
//! when any permission it relies on is missing: for PotatoHead (the default guest) create the
//! sample's children, write its status, publish an Event, and prune a removed part's children;
//! for PodTatoHead (the seed operator's API) create the talk's children and write its status.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::cluster::{podtatohead_api, potatohead_api, sample_podtatohead, sample_potatohead};

const SELECTOR: &str = "app.kubernetes.io/managed-by=wasm-reconciler";

/// Polls `check` until it succeeds or `deadline` passes (then its last error, prefixed by `what`).
async fn until<F, Fut>(deadline: Instant, what: &str, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    loop {
        match check().await {
            Ok(()) => return Ok(()),
            Err(last) if Instant::now() > deadline => return Err(format!("{what}: {last}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// How many objects of kind `K` the host manages in `namespace` for parents of `owner_kind`.
async fn count<K>(client: &kube::Client, namespace: &str, owner_kind: &str) -> Result<usize, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(SELECTOR))
        .await
        .map(|list| {
            list.items
                .iter()
                .filter(|o| {
                    o.meta()
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|r| r.kind == owner_kind)
                })
                .count()
        })
        .map_err(|e| e.to_string())
}

/// Waits until `parent`'s `Ready` condition is about its current generation.
async fn until_status_current(
    api: &Api<kube::api::DynamicObject>,
    parent: &str,
    deadline: Instant,
) -> Result<(), String> {
    until(
        deadline,
        "status with a current Ready condition",
        || async {
            let object = api.get(parent).await.map_err(|e| e.to_string())?;
            let generation = object.metadata.generation;
            let ready = object.data["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned());
            match ready {
                Some(ready) if ready["observedGeneration"].as_i64() == generation => Ok(()),
                other => Err(format!(
                    "Ready condition {other:?} at generation {generation:?}"
                )),
            }
        },
    )
    .await
}

/// Creates the talk's PodTatoHead `talk` in `namespace` (as the administrator) and checks, each
/// step by `deadline`, that the operator reconciling that namespace makes its 4 Deployments and 4
/// Services and writes its status.
pub async fn manages_the_podtatohead_sample(
    client: &kube::Client,
    namespace: &str,
    deadline: Instant,
) -> Result<(), String> {
    let podtatoheads = podtatohead_api(client, namespace);
    if podtatoheads
        .get_opt("talk")
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        podtatoheads
            .create(
                &PostParams::default(),
                &sample_podtatohead(namespace, "talk"),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    until(
        deadline,
        "PodTatoHead: 4 Deployments, 4 Services",
        || async {
            let found = (
                count::<Deployment>(client, namespace, "PodTatoHead").await?,
                count::<Service>(client, namespace, "PodTatoHead").await?,
            );
            if found == (4, 4) {
                Ok(())
            } else {
                Err(format!("found {found:?}"))
            }
        },
    )
    .await?;
    until_status_current(&podtatoheads, "talk", deadline)
        .await
        .map_err(|e| format!("PodTatoHead: {e}"))
}

/// Creates the sample `demo` in `namespace` (as the administrator) and checks, each step by
/// `deadline`, that the operator reconciling that namespace manages it fully.
pub async fn manages_the_sample(
    client: &kube::Client,
    namespace: &str,
    deadline: Instant,
) -> Result<(), String> {
    let potatoheads = potatohead_api(client, namespace);
    if potatoheads
        .get_opt("demo")
        .await
        .map_err(|e| e.to_string())?
        .is_none()
    {
        potatoheads
            .create(
                &PostParams::default(),
                &sample_potatohead(namespace, "demo"),
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    until(
        deadline,
        "6 Deployments, 6 Services, 1 ConfigMap",
        || async {
            let found = (
                count::<Deployment>(client, namespace, "PotatoHead").await?,
                count::<Service>(client, namespace, "PotatoHead").await?,
                count::<ConfigMap>(client, namespace, "PotatoHead").await?,
            );
            if found == (6, 6, 1) {
                Ok(())
            } else {
                Err(format!("found {found:?}"))
            }
        },
    )
    .await?;
    until_status_current(&potatoheads, "demo", deadline).await?;
    let events = Api::<Event>::namespaced(client.clone(), namespace);
    until(deadline, "a ChildrenCreated Event", || async {
        let list = events
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        if list
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("ChildrenCreated"))
        {
            Ok(())
        } else {
            Err("none".into())
        }
    })
    .await?;
    let without_right_leg = json!({ "spec": { "parts": [
        { "name": "entry" }, { "name": "hat" }, { "name": "left-arm" },
        { "name": "right-arm" }, { "name": "left-leg" }
    ] } });
    potatoheads
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(without_right_leg),
        )
        .await
        .map_err(|e| e.to_string())?;
    until(deadline, "the removed part's children pruned", || async {
        let found = (
            count::<Deployment>(client, namespace, "PotatoHead").await?,
            count::<Service>(client, namespace, "PotatoHead").await?,
        );
        if found == (5, 5) {
            Ok(())
        } else {
            Err(format!("found {found:?}"))
        }
    })
    .await
}
