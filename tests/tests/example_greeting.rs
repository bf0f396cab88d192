//! End to end: the JavaScript guest of `examples/greeting-js` (QuickJS, componentize-qjs),
//! reconciling its own custom resource through the same host binary as the Rust guest: the host
//! is generic and language-neutral.

use std::time::Duration;

use e2e::paths::workspace_root;
use e2e::{HostProcess, TestNamespace, eventually};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::json;

fn greeting_guest() -> std::path::PathBuf {
    let path = workspace_root().join("target/examples/greeting_js.wasm");
    assert!(
        path.exists(),
        "{} is missing: run `make example-guests`",
        path.display()
    );
    path
}

fn greetings(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("examples.wasm-reconciler.io", "v1alpha1", "Greeting"),
        "greetings",
    );
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// recipient -> message of the ConfigMaps the host manages in `namespace`.
async fn delivered(client: &kube::Client, namespace: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=wasm-reconciler"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|cm| {
            let data = cm.data?;
            Some((data.get("recipient")?.clone(), data.get("message")?.clone()))
        })
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn the_javascript_guest_greets_prunes_and_rejects_an_invalid_spec() {
    let plane = e2e::shared_plane().await;
    plane
        .install_crd(&workspace_root().join("examples/greeting-js/crd.yaml"))
        .await
        .unwrap();
    let client = plane.client().await;
    let namespace = TestNamespace::create(&client, "greeting").await.name;
    let host = HostProcess::start(plane, &greeting_guest(), &["--namespace", &namespace]);
    let api = greetings(&client, &namespace);
    let mut sample: DynamicObject = serde_saphyr::from_str(
        &std::fs::read_to_string(workspace_root().join("examples/greeting-js/sample.yaml"))
            .unwrap(),
    )
    .unwrap();
    sample.metadata.namespace = Some(namespace.clone());
    api.create(&PostParams::default(), &sample).await.unwrap();

    let both = vec![
        ("alice".to_string(), "Hello, alice!".to_string()),
        ("bob".to_string(), "Hello, bob!".to_string()),
    ];
    eventually(
        Duration::from_secs(60),
        "a ConfigMap per recipient",
        || async {
            let found = delivered(&client, &namespace).await;
            if found == both {
                Ok(())
            } else {
                Err(format!("{found:?}"))
            }
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "status from guest and host",
        || async {
            let status = api.get("hello").await.unwrap().data["status"].clone();
            let ready = status["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned());
            // `delivered` counts observed children, so it reaches 2 on the reconcile after creation.
            if status["recipients"] == 2
                && status["delivered"] == 2
                && status["reconciler"]["name"] == "greeting-js"
                && ready.is_some_and(|r| r["status"] == "True")
            {
                Ok(())
            } else {
                Err(status.to_string())
            }
        },
    )
    .await;

    // A recipient removed: its ConfigMap is pruned, the other one stays.
    api.patch(
        "hello",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "recipients": ["alice"] } })),
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(30),
        "bob's ConfigMap pruned",
        || async {
            let found = delivered(&client, &namespace).await;
            if found == both[..1] {
                Ok(())
            } else {
                Err(format!("{found:?}"))
            }
        },
    )
    .await;

    // The guest's own validation (which the CRD schema cannot express): reported, nothing touched.
    api.patch(
        "hello",
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": { "recipients": ["alice", "alice"] } })),
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(30),
        "InvalidSpec with the guest's reason",
        || async {
            let status = api.get("hello").await.unwrap().data["status"].clone();
            let ready = status["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
                .unwrap_or_default();
            if ready["reason"] == "InvalidSpec"
                && ready["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("spec.recipients[1]: alice is listed twice"))
            {
                Ok(())
            } else {
                Err(ready.to_string())
            }
        },
    )
    .await;
    assert_eq!(delivered(&client, &namespace).await, both[..1]);
    assert!(
        host.log().contains("greeting-js"),
        "the host names the guest"
    );
}
