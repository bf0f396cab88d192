//! End to end: a guest's configuration (contract 0.2), against a real API server. One `.wasm`
//! with `config` in its `NAME.yaml` decides with it; a change of `config` alone is a hot swap of
//! the guest (no restart of its reconciler), and a configuration the guest refuses leaves the
//! running one serving.

use std::collections::BTreeMap;
use std::path::Path;

use e2e::folder::{add_guest, write_file};
use e2e::paths::potatohead_guest;
use e2e::{CONVERGE, HostProcess, Scenario, by_name, eventually, image_of, potatohead_api};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::PostParams;

/// Waits until the sample's six Deployments all pull from `registry`.
async fn images_from(client: &Client, namespace: &str, registry: &str) {
    eventually(
        CONVERGE,
        &format!("all 6 Deployments pull from {registry}"),
        || async {
            let deployments: BTreeMap<String, Deployment> = by_name(client, namespace).await;
            let images: Vec<String> = deployments.values().map(image_of).collect();
            let prefix = format!("{registry}/");
            if images.len() == 6 && images.iter().all(|image| image.starts_with(&prefix)) {
                Ok(())
            } else {
                Err(format!("images: {images:?}"))
            }
        },
    )
    .await;
}

fn configure(folder: &Path, registry: &str) {
    write_file(
        folder,
        "potatohead.yaml",
        &format!("# the default guest's configuration\nconfig:\n  registry: {registry}\n"),
    );
}

fn starts(host: &HostProcess) -> usize {
    host.log()
        .matches("starting the guest's reconciler")
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_decides_with_its_configuration_and_a_new_one_is_hot_swapped_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path();
    add_guest(folder, "potatohead.wasm", &potatohead_guest());
    configure(folder, "mirror-a.example.com/podtato");
    let scenario = Scenario::serving_folder("guest-config", folder, &[]).await;
    let (client, namespace) = (&scenario.client, scenario.namespace.as_str());
    potatohead_api(client, namespace)
        .create(
            &PostParams::default(),
            &e2e::sample_potatohead(namespace, "demo"),
        )
        .await
        .unwrap();
    images_from(client, namespace, "mirror-a.example.com/podtato").await;
    let host = &scenario.host;
    assert!(
        host.log().contains("config=43 bytes of JSON, sha256:"),
        "the start names the configuration by size and digest:\n{}",
        host.log()
    );
    assert!(
        !host.log().contains("mirror-a.example.com"),
        "a configuration's content is never logged:\n{}",
        host.log()
    );
    // The guest may read ConfigMaps, but no PotatoHead here names one: none is watched or held.
    assert!(
        !host.log().contains("watching a related kind"),
        "{}",
        host.log()
    );

    // A new configuration: a hot swap of the guest, every parent reconciled with it.
    configure(folder, "mirror-b.example.com/podtato");
    images_from(client, namespace, "mirror-b.example.com/podtato").await;
    // The hot swap's own check may have read the new file before the folder's supervisor said
    // so; either way the supervisor notices it within its check of the folder.
    eventually(
        CONVERGE,
        "the supervisor passes the change to the hot swap",
        || async {
            let log = host.log();
            if log.contains("guest configuration changed") && log.contains("guest swapped") {
                Ok(())
            } else {
                Err("not yet in the log".to_owned())
            }
        },
    )
    .await;
    assert_eq!(
        starts(host),
        1,
        "no restart of the reconciler:\n{}",
        host.log()
    );

    // A configuration the guest refuses: logged with the guest's own reason, counted, and the
    // running configuration keeps serving.
    configure(folder, "https://mirror-c.example.com");
    eventually(CONVERGE, "the new configuration is refused", || async {
        let refused = host
            .counter("reconciler_guest_reloads_total{guest=\"potatohead\",result=\"refused\"}")
            .await;
        if refused >= 1.0 {
            Ok(())
        } else {
            Err(format!("refused reloads: {refused}"))
        }
    })
    .await;
    assert!(
        host.log()
            .contains("refused its configuration: config.registry:"),
        "{}",
        host.log()
    );
    images_from(client, namespace, "mirror-b.example.com/podtato").await;
    assert_eq!(starts(host), 1, "{}", host.log());

    // Another setting than `config` is a restart with the new settings, as before.
    write_file(
        folder,
        "potatohead.yaml",
        "config:\n  registry: mirror-d.example.com/podtato\ntimeout: 1s\n",
    );
    images_from(client, namespace, "mirror-d.example.com/podtato").await;
    assert_eq!(starts(host), 2, "{}", host.log());
}
