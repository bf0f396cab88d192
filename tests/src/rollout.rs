//! What the rollout tests (shadow candidates, rollback) share: guests under another digest, the
//! digest of a guest file, and what the PotatoHeads of a namespace show of the guest deciding.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::{eventually, potatohead_api};

/// The label the `potatohead-v2` test guest puts on every child.
pub const VARIANT_LABEL: &str = "podtato.example.com/variant";
/// Each sample PotatoHead has six Deployments.
pub const DEPLOYMENTS_PER_PARENT: usize = 6;

/// `wasm` with a custom section appended: the same component, deciding the same, with another
/// digest (a custom section is allowed after any section of a component).
pub fn with_custom_section(wasm: &[u8], name: &str) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut payload = Vec::new();
    leb128(name.len(), &mut payload);
    payload.extend_from_slice(name.as_bytes());
    payload.extend_from_slice(b"the same decisions under another digest");
    let mut out = wasm.to_vec();
    out.push(0);
    leb128(payload.len(), &mut out);
    out.extend(payload);
    out
}

/// The digest of a guest file, as the host names it.
pub fn digest_of(path: &Path) -> String {
    use sha2::Digest;
    format!(
        "sha256:{:x}",
        sha2::Sha256::digest(std::fs::read(path).unwrap())
    )
}

/// The Events with `reason` in `namespace`.
pub async fn events(client: &Client, namespace: &str, reason: &str) -> Vec<Event> {
    Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|event| event.reason.as_deref() == Some(reason))
        .collect()
}

/// The Deployments that carry the v2 guest's label.
pub async fn v2_deployments(client: &Client, namespace: &str) -> usize {
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|d| d.labels().get(VARIANT_LABEL).is_some_and(|v| v == "v2"))
        .count()
}

/// Waits until the `parents` sample PotatoHeads of `namespace` have a status written by the
/// host and all their Deployments.
pub async fn every_parent_reconciled(client: &Client, namespace: &str, parents: usize) {
    let api = potatohead_api(client, namespace);
    let deployments = parents * DEPLOYMENTS_PER_PARENT;
    eventually(
        Duration::from_secs(120),
        "every PotatoHead is reconciled",
        || async {
            let list = api
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let done = list
                .items
                .iter()
                .filter(|p| p.data["status"]["reconciler"]["digest"].is_string())
                .count();
            let found = Api::<Deployment>::namespaced(client.clone(), namespace)
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .len();
            (done == parents && found == deployments)
                .then_some(())
                .ok_or(format!(
                    "{done}/{parents} reconciled, {found}/{deployments} Deployments"
                ))
        },
    )
    .await;
}
