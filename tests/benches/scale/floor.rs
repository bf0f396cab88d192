//! The floor: the host's writes and nothing else, issued by a minimal client with the host's
//! concurrency (32 parents, 8 children per parent at a time), so the API server's own limit is
//! measured in the same run as the host. Each floor runs once before the host's phase and once
//! after it, in namespaces of their own: the API server slows as it holds more objects, and a
//! floor measured only before the host would be measured on a lighter server.

use std::collections::BTreeMap;

use e2e::potatohead_api;
use futures::StreamExt;
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};

use crate::{CHILD_CONCURRENCY, FIELD_MANAGER, PARENT_CONCURRENCY};

/// First convergence: create each parent, then apply its children (`templates`, rendered for
/// `ph-template` in `ns-template` with UID `uid-template`).
pub async fn create(client: &Client, namespace: &str, names: &[String], templates: &[String]) {
    let parents = potatohead_api(client, namespace);
    futures::stream::iter(names)
        .map(|name| {
            let parents = parents.clone();
            async move {
                let created = parents
                    .create(
                        &PostParams::default(),
                        &crate::bench_parent(namespace, name),
                    )
                    .await
                    .unwrap();
                let uid = created.metadata.uid.unwrap();
                apply_children(client, namespace, name, &uid, templates).await;
            }
        })
        .buffer_unordered(PARENT_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// A rolling change: patch each parent's tag, then apply the children that change with it.
pub async fn roll(
    client: &Client,
    namespace: &str,
    uids: &BTreeMap<String, String>,
    tag: &str,
    templates: &[String],
) {
    let parents = potatohead_api(client, namespace);
    futures::stream::iter(uids)
        .map(|(name, uid)| {
            let parents = parents.clone();
            async move {
                let patch = serde_json::json!({ "spec": { "tag": tag } });
                parents
                    .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
                apply_children(client, namespace, name, uid, templates).await;
            }
        })
        .buffer_unordered(PARENT_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// Server-side applies the templates for one parent, 8 at a time.
async fn apply_children(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: &str,
    templates: &[String],
) {
    futures::stream::iter(templates)
        .map(|text| {
            let object: DynamicObject = serde_json::from_str(
                &text
                    .replace("ph-template", name)
                    .replace("ns-template", namespace)
                    .replace("uid-template", uid),
            )
            .unwrap();
            let kind = object.types.as_ref().unwrap().kind.clone();
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource(&kind));
            async move {
                api.patch(
                    &object.metadata.name.clone().unwrap(),
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await
                .unwrap();
            }
        })
        .buffer_unordered(CHILD_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// The API resource of one of the PotatoHead's child kinds.
fn resource(kind: &str) -> ApiResource {
    let (gvk, plural) = match kind {
        "Deployment" => (
            GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        ),
        "Service" => (GroupVersionKind::gvk("", "v1", "Service"), "services"),
        "ConfigMap" => (GroupVersionKind::gvk("", "v1", "ConfigMap"), "configmaps"),
        other => panic!("the PotatoHead has no {other} children"),
    };
    ApiResource::from_gvk_with_plural(&gvk, plural)
}
