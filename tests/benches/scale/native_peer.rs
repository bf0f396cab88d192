//! The peer a user would otherwise write: a plain kube-rs controller with the same decision
//! (`potatohead_decisions`, compiled natively), which applies every child and the status on every
//! reconcile. No caches of its own, no no-op detection; it watches its children only to be
//! triggered by them, as `Controller::owns` does.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const FIELD_MANAGER: &str = "native-peer";

struct Peer {
    client: Client,
    namespace: String,
    parent: ApiResource,
    children: Vec<ApiResource>,
}

#[derive(Debug, thiserror::Error)]
enum PeerError {
    #[error("invalid spec: {0:?}")]
    Spec(potatohead_decisions::reconcile::ReconcileError),
    #[error(transparent)]
    Api(#[from] kube::Error),
}

/// Runs the controller over the PotatoHeads of `namespace` until the future is dropped.
pub async fn run(
    client: Client,
    namespace: String,
    parent_concurrency: u16,
    child_concurrency: usize,
) {
    let kind = |group: &str, version: &str, kind: &str, plural: &str| {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
    };
    let peer = Arc::new(Peer {
        client: client.clone(),
        namespace: namespace.clone(),
        parent: kind(
            "podtato.example.com",
            "v1alpha1",
            "PotatoHead",
            "potatoheads",
        ),
        children: vec![
            kind("apps", "v1", "Deployment", "deployments"),
            kind("", "v1", "Service", "services"),
            kind("", "v1", "ConfigMap", "configmaps"),
        ],
    });
    let parents = Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &peer.parent);
    let mut controller =
        Controller::new_with(parents, watcher::Config::default(), peer.parent.clone());
    for resource in &peer.children {
        controller = controller.owns_with(
            Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, resource),
            resource.clone(),
            watcher::Config::default(),
        );
    }
    controller
        .with_config(controller::Config::default().concurrency(parent_concurrency))
        .run(
            move |parent, peer| reconcile(parent, peer, child_concurrency),
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            peer,
        )
        .for_each(|_| async {})
        .await;
}

async fn reconcile(
    parent: Arc<DynamicObject>,
    peer: Arc<Peer>,
    child_concurrency: usize,
) -> Result<Action, PeerError> {
    let text = serde_json::to_string(&*parent).expect("objects serialize");
    let desired =
        potatohead_decisions::reconcile::reconcile(&text, &[], false).map_err(PeerError::Spec)?;
    let owner = json!([{
        "apiVersion": peer.parent.api_version,
        "kind": peer.parent.kind,
        "name": parent.name_any(),
        "uid": parent.uid().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    let applied: Vec<DynamicObject> = futures::stream::iter(desired.children)
        .map(|mut child| {
            child["metadata"]["ownerReferences"] = owner.clone();
            let resource = peer
                .children
                .iter()
                .find(|r| child["kind"] == r.kind.as_str())
                .expect("a declared kind");
            let api: Api<DynamicObject> =
                Api::namespaced_with(peer.client.clone(), &peer.namespace, resource);
            let name = child["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            async move {
                api.patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&child),
                )
                .await
            }
        })
        .buffer_unordered(child_concurrency)
        .try_collect()
        .await?;
    // The status from the children as the applies returned them.
    let observed: Vec<String> = applied
        .iter()
        .map(|o| serde_json::to_string(o).expect("objects serialize"))
        .collect();
    let decided = potatohead_decisions::reconcile::reconcile(&text, &observed, false)
        .map_err(PeerError::Spec)?;
    let mut status = decided.status.unwrap_or_else(|| json!({}));
    status["observedGeneration"] = parent.metadata.generation.into();
    let parents: Api<DynamicObject> =
        Api::namespaced_with(peer.client.clone(), &peer.namespace, &peer.parent);
    let patch: Value = json!({
        "apiVersion": peer.parent.api_version,
        "kind": peer.parent.kind,
        "status": status,
    });
    parents
        .patch_status(
            &parent.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}
