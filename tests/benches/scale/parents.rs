//! The benches' PotatoHeads: the sample made fit for a thousand of them, created and changed
//! 32 at a time (the host's default `--concurrency`).

use futures::{StreamExt, TryStreamExt};
use kube::Client;
use kube::api::{Patch, PatchParams, PostParams};

use e2e::{potatohead_api, sample_potatohead};

const PARENT_CONCURRENCY: usize = 32;

/// The bench's PotatoHead: the committed sample with the entry part's Service as a ClusterIP.
/// The default, a LoadBalancer, takes a node port, and 1 000 parents (plus the floors' own)
/// exhaust the cluster's node-port range (2 768 ports) long before the bench ends.
pub fn bench_parent(namespace: &str, name: &str) -> kube::api::DynamicObject {
    let mut parent = sample_potatohead(namespace, name);
    let parts = parent.data["spec"]["parts"]
        .as_array_mut()
        .expect("the sample lists its parts");
    for part in parts.iter_mut().filter(|p| p["name"] == "entry") {
        part["serviceType"] = "ClusterIP".into();
    }
    parent
}

pub async fn create_parents(client: &Client, namespace: &str, names: &[String]) {
    let api = potatohead_api(client, namespace);
    futures::stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &bench_parent(namespace, name))
                    .await
            }
        })
        .buffer_unordered(PARENT_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}

/// Sets `spec.tag` on every named PotatoHead, 32 at a time.
pub async fn set_tags(client: &Client, namespace: &str, names: &[String], tag: &str) {
    let api = potatohead_api(client, namespace);
    futures::stream::iter(names)
        .map(|name| {
            let api = api.clone();
            let patch = serde_json::json!({ "spec": { "tag": tag } });
            async move {
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
            }
        })
        .buffer_unordered(PARENT_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}
