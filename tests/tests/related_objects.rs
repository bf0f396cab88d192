//! End to end: related objects (contract 0.2), against a real API server. The default guest
//! reads the ConfigMap a PotatoHead's `spec.configRef` names; its data becomes every part's
//! environment. Editing the ConfigMap rolls exactly the Deployments of the parents that read it;
//! creating a missing one lets its reader converge; deleting it changes nothing.

use std::collections::BTreeMap;

use e2e::paths::potatohead_guest;
use e2e::{CONVERGE, Scenario, by_name, eventually, potatohead_api, ready_reason};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;

fn config_map(name: &str, greeting: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("GREETING".to_string(), greeting.to_string()),
            // Not a variable name (a leading digit): left out, not a failure.
            ("9lives".to_string(), "x".to_string()),
        ])),
        ..ConfigMap::default()
    }
}

async fn create_potatohead(client: &Client, namespace: &str, name: &str, config_ref: Option<&str>) {
    let mut spec = json!({ "parts": [{ "name": "hat" }, { "name": "left-arm" }] });
    if let Some(reference) = config_ref {
        spec["configRef"] = json!({ "name": reference });
    }
    let object = serde_json::from_value(json!({
        "apiVersion": "podtato.example.com/v1alpha1",
        "kind": "PotatoHead",
        "metadata": { "name": name, "namespace": namespace },
        "spec": spec,
    }))
    .unwrap();
    potatohead_api(client, namespace)
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

/// `GREETING` of each of `parent`'s Deployments (`None`: the Deployment has no such variable).
async fn greetings(client: &Client, namespace: &str, parent: &str) -> Vec<Option<String>> {
    let deployments: BTreeMap<String, Deployment> = by_name(client, namespace).await;
    deployments
        .iter()
        .filter(|(name, _)| name.starts_with(&format!("{parent}-")))
        .map(|(_, deployment)| {
            let container = &deployment
                .spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers[0];
            container
                .env
                .iter()
                .flatten()
                .find(|var| var.name == "GREETING")
                .and_then(|var| var.value.clone())
        })
        .collect()
}

async fn wait_greeting(client: &Client, namespace: &str, parent: &str, expected: Option<&str>) {
    eventually(
        CONVERGE,
        &format!("{parent}'s 2 Deployments have GREETING={expected:?}"),
        || async {
            let found = greetings(client, namespace, parent).await;
            if found.len() == 2 && found.iter().all(|g| g.as_deref() == expected) {
                Ok(())
            } else {
                Err(format!("{found:?}"))
            }
        },
    )
    .await;
}

/// Reconciles of `parent` the host has logged (the guest's "desired N children" line, which every
/// reconcile that reaches the guest writes).
fn reconciles_of(log: &str, namespace: &str, parent: &str) -> usize {
    let marker = format!("parent={namespace}/{parent}");
    log.lines()
        .filter(|line| line.contains("desired ") && line.contains(&marker))
        .count()
}

/// The guest's own Event (contract 0.2): the ConfigMap key it left out, published on the parent
/// by the host, once however often the guest returns it, and shown by `kubectl describe`.
async fn guest_event_is_published(scenario: &Scenario, parent: &str) {
    let found = eventually(CONVERGE, "the guest's ConfigKeySkipped Event", || {
        e2e::events_about(
            &scenario.client,
            &scenario.namespace,
            parent,
            "ConfigKeySkipped",
        )
    })
    .await;
    assert_eq!(
        found.len(),
        1,
        "one Event, counted into its series: {found:?}"
    );
    assert_eq!(found[0].type_.as_deref(), Some("Warning"));
    let note = found[0].note.clone().unwrap_or_default();
    assert!(
        note.contains("ConfigMap shared: 1 of its keys") && note.contains("9lives"),
        "{note}"
    );
    let describe = std::process::Command::new(e2e::deploy::kubectl())
        .arg("--kubeconfig")
        .arg(&scenario.plane.kubeconfig)
        .args(["describe", "potatohead", parent, "-n", &scenario.namespace])
        .output()
        .expect("kubectl runs");
    let text = String::from_utf8_lossy(&describe.stdout);
    assert!(
        text.contains("ConfigKeySkipped") && text.contains("9lives"),
        "kubectl describe shows the guest's Event:\n{text}"
    );
}

/// Waits until `parent` has not been reconciled for two seconds (its own status write echoes
/// back once), and returns its reconciles so far.
async fn settled(scenario: &Scenario, namespace: &str, parent: &str) -> usize {
    let mut last = reconciles_of(&scenario.host.log(), namespace, parent);
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let now = reconciles_of(&scenario.host.log(), namespace, parent);
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_parent_reads_its_config_map_and_a_change_of_it_rolls_exactly_its_readers() {
    let scenario = Scenario::start("related", &potatohead_guest(), &[]).await;
    let (client, namespace) = (&scenario.client, scenario.namespace.as_str());
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    maps.create(&PostParams::default(), &config_map("shared", "hello"))
        .await
        .unwrap();
    create_potatohead(client, namespace, "reads", Some("shared")).await;
    create_potatohead(client, namespace, "plain", None).await;
    create_potatohead(client, namespace, "waits", Some("later")).await;

    wait_greeting(client, namespace, "reads", Some("hello")).await;
    wait_greeting(client, namespace, "plain", None).await;
    guest_event_is_published(&scenario, "reads").await;
    // A ConfigMap that does not exist yet: the reader is told, and nothing is created for it.
    let parents = potatohead_api(client, namespace);
    let waiting = ready_reason(&parents, "waits", "GuestFailed", CONVERGE).await;
    assert!(
        waiting["message"]
            .as_str()
            .unwrap()
            .contains("spec.configRef: the ConfigMap \"later\" does not exist"),
        "{waiting}"
    );
    assert!(greetings(client, namespace, "waits").await.is_empty());

    // Editing the ConfigMap rolls its reader's Deployments, and reconciles no other parent.
    let plain_before = settled(&scenario, namespace, "plain").await;
    maps.patch(
        "shared",
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "GREETING": "bonjour" } })),
    )
    .await
    .unwrap();
    wait_greeting(client, namespace, "reads", Some("bonjour")).await;
    assert_eq!(
        reconciles_of(&scenario.host.log(), namespace, "plain"),
        plain_before,
        "a parent that does not read the ConfigMap is not reconciled for it:\n{}",
        scenario.host.log()
    );

    // Creating the missing ConfigMap lets its reader converge at once (not at its next retry).
    maps.create(&PostParams::default(), &config_map("later", "hi"))
        .await
        .unwrap();
    wait_greeting(client, namespace, "waits", Some("hi")).await;

    // Deleting a ConfigMap changes nothing of what its reader made; the reader says why.
    maps.delete("shared", &DeleteParams::default())
        .await
        .unwrap();
    let gone = ready_reason(&parents, "reads", "GuestFailed", CONVERGE).await;
    assert!(
        gone["message"]
            .as_str()
            .unwrap()
            .contains("\"shared\" does not exist"),
        "{gone}"
    );
    wait_greeting(client, namespace, "reads", Some("bonjour")).await;
    assert!(
        !scenario.host.log().contains("bonjour"),
        "related objects are never logged"
    );
    // One watch of ConfigMaps as related objects, started by the first parent that read one.
    assert_eq!(
        scenario
            .host
            .log()
            .matches("watching a related kind: a parent reads it")
            .count(),
        1,
        "{}",
        scenario.host.log()
    );
}
