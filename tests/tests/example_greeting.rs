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

/// The Greeting CRD, a namespace, a host running `guest` on it with `flags`, and the committed
/// sample created there.
async fn greeting_with_sample(
    guest: &std::path::Path,
    prefix: &str,
    flags: &[&str],
) -> (kube::Client, String, HostProcess, Api<DynamicObject>) {
    let plane = e2e::shared_plane().await;
    plane
        .install_crd(&workspace_root().join("examples/greeting-js/crd.yaml"))
        .await
        .unwrap();
    let client = plane.client().await;
    let namespace = TestNamespace::create(&client, prefix).await.name;
    let args = [&["--namespace", namespace.as_str()][..], flags].concat();
    let host = HostProcess::start(plane, guest, &args);
    let api = greetings(&client, &namespace);
    let mut sample: DynamicObject = serde_saphyr::from_str(
        &std::fs::read_to_string(workspace_root().join("examples/greeting-js/sample.yaml"))
            .unwrap(),
    )
    .unwrap();
    sample.metadata.namespace = Some(namespace.clone());
    api.create(&PostParams::default(), &sample).await.unwrap();
    (client, namespace, host, api)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_javascript_guest_greets_prunes_and_rejects_an_invalid_spec() {
    let (client, namespace, host, api) =
        greeting_with_sample(&greeting_guest(), "greeting", &[]).await;

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

/// recipient -> (message, signature) of the ConfigMaps the host manages in `namespace`.
async fn signed(client: &kube::Client, namespace: &str) -> Vec<(String, String, Option<String>)> {
    let mut found: Vec<_> = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=wasm-reconciler"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|cm| {
            let data = cm.data?;
            Some((
                data.get("recipient")?.clone(),
                data.get("message")?.clone(),
                data.get("signature").cloned(),
            ))
        })
        .collect();
    found.sort();
    found
}

/// The same Greeting in JavaScript against contract 0.2 (`guest-0.2.js`): its configuration
/// (`--guest-config`), related objects chosen by a label selector, and its own Event, through the
/// same host as the Rust guests.
#[tokio::test(flavor = "multi_thread")]
async fn the_javascript_guest_of_contract_0_2_takes_a_configuration_reads_by_selector_and_warns() {
    let guest = workspace_root().join("target/examples/greeting_js_0_2.wasm");
    assert!(
        guest.exists(),
        "{} is missing: run `make example-guests`",
        guest.display()
    );
    let (client, namespace, host, api) = greeting_with_sample(
        &guest,
        "greeting-0-2",
        &["--guest-config", r#"{"punctuation":"?"}"#],
    )
    .await;

    let unsigned = vec![
        ("alice".to_string(), "Hello, alice?".to_string(), None),
        ("bob".to_string(), "Hello, bob?".to_string(), None),
    ];
    eventually(
        Duration::from_secs(60),
        "unsigned greetings, with the configured mark",
        || async {
            let found = signed(&client, &namespace).await;
            if found == unsigned {
                Ok(())
            } else {
                Err(format!("{found:?}"))
            }
        },
    )
    .await;
    // The guest's own Event while nothing signs.
    let warned = eventually(
        Duration::from_secs(30),
        "the guest's NoSignature Event",
        || e2e::events_about(&client, &namespace, "hello", "NoSignature"),
    )
    .await;
    assert_eq!(warned[0].type_.as_deref(), Some("Warning"), "{warned:?}");

    // A ConfigMap the selector matches signs every greeting, without any change to the Greeting.
    let signature: ConfigMap = serde_json::from_value(json!({
        "metadata": {
            "name": "team-signature",
            "labels": { "examples.wasm-reconciler.io/greeting-signature": "true" },
        },
        "data": { "signature": "-- the team" },
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &signature)
        .await
        .unwrap();
    eventually(Duration::from_secs(60), "signed greetings", || async {
        let found = signed(&client, &namespace).await;
        let all_signed = found.len() == 2
            && found
                .iter()
                .all(|(_, _, s)| s.as_deref() == Some("-- the team"));
        if all_signed {
            Ok(())
        } else {
            Err(format!("{found:?}"))
        }
    })
    .await;
    let status = api.get("hello").await.unwrap().data["status"]["reconciler"].clone();
    assert_eq!(status["contract"], "0.2.0", "{status}");
    assert!(host.log().contains("contract=\"0.2.0\""), "{}", host.log());
}
