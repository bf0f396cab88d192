//! The memory baseline: the host's own watches and caches, without wasmtime. Runs as a process
//! of its own (the scale bench starts itself with `--cache-baseline NAMESPACE`) so its resident
//! memory can be read beside the host's: the parent watch and store the host's controller keeps,
//! and `ChildCaches` (the child caches and the unmanaged-name index) from the host's library,
//! as the host configures them. It prints `synced` once everything has listed, then waits to be
//! killed.

use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, GroupVersionKind};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use reconciler_host::cluster::kinds;
use reconciler_host::cluster::{ChildCaches, WatchScope};

pub async fn run(namespace: String) {
    let client = kube::Client::try_default()
        .await
        .expect("KUBECONFIG usable");
    let parent = kinds::resolve(
        &client,
        &GroupVersionKind::gvk("podtato.example.com", "v1alpha1", "PotatoHead"),
    )
    .await
    .expect("PotatoHead served");
    let mut children = Vec::new();
    for (group, version, kind) in [
        ("apps", "v1", "Deployment"),
        ("", "v1", "Service"),
        ("", "v1", "ConfigMap"),
    ] {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        children.push(std::sync::Arc::new(
            kinds::resolve(&client, &gvk).await.expect("kind served"),
        ));
    }

    // The parents, as the controller's reflector keeps them.
    let writer = reflector::store::Writer::<DynamicObject>::new(parent.resource.clone());
    let store = writer.as_reader();
    let parents =
        Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, &parent.resource);
    tokio::spawn(
        watcher(parents, watcher::Config::default())
            .default_backoff()
            .reflect(writer)
            .for_each(|_| async {}),
    );

    // The child caches; their reconcile triggers go nowhere.
    let (triggers, mut requests) = futures::channel::mpsc::unbounded();
    tokio::spawn(async move { while requests.next().await.is_some() {} });
    let owned = ChildCaches::new(WatchScope {
        client,
        namespace: Some(namespace),
        managed_by: "wasm-reconciler".into(),
    });
    owned.serve_parent_kind(&parent, triggers);
    while owned
        .watch_kinds("baseline", &children, Duration::from_secs(60))
        .await
        .is_err()
    {}
    store.wait_until_ready().await.expect("parents listed");
    println!("synced");
    std::future::pending::<()>().await;
}
