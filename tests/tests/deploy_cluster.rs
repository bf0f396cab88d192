//! End to end: `deploy/default` applied with `kubectl apply -k` (kubectl 1.20), the guest
//! published with `hack/publish-guest.sh`, and the host run exactly like the Deployment's pod,
//! authenticated as its ServiceAccount with the ClusterRole: it manages PotatoHeads in any
//! namespace, and a newly published guest reaches it without a restart.
//!
//! Own test binary, so its own control plane: this operator watches every namespace.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::deploy::{self, kind_of};
use e2e::operator::{manages_the_podtatohead_sample, manages_the_sample};
use e2e::paths::{potatohead_guest, test_guest};
use e2e::{TestNamespace, eventually, potatohead_api};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;

const SYSTEM: &str = "wasm-reconciler-system";

#[test]
fn both_rbac_flavours_grant_the_same_rules() {
    let rules = |overlay: &str, kind: &str| {
        deploy::kustomize(overlay)
            .unwrap()
            .into_iter()
            .find(|o| kind_of(o) == kind && o.metadata.name.as_deref() == Some("wasm-reconciler"))
            .unwrap()
            .data["rules"]
            .clone()
    };
    assert_eq!(rules("default", "ClusterRole"), rules("namespaced", "Role"));
}

#[test]
fn the_metrics_service_selects_the_operator_pods_on_their_metrics_port() {
    for overlay in ["default", "namespaced"] {
        let objects = deploy::kustomize(overlay).unwrap();
        let find = |kind: &str, name: &str| {
            objects
                .iter()
                .find(|o| kind_of(o) == kind && o.metadata.name.as_deref() == Some(name))
                .unwrap_or_else(|| panic!("deploy/{overlay} has no {kind} {name}"))
        };
        let service = find("Service", "wasm-reconciler-metrics");
        let deployment = find("Deployment", "wasm-reconciler");
        assert_eq!(
            service.metadata.namespace, deployment.metadata.namespace,
            "{overlay}"
        );
        let pod_labels = deployment.data["spec"]["template"]["metadata"]["labels"]
            .as_object()
            .unwrap();
        let selector = service.data["spec"]["selector"].as_object().unwrap();
        assert!(!selector.is_empty());
        for (key, value) in selector {
            assert_eq!(
                pod_labels.get(key),
                Some(value),
                "{overlay}: selector {key}"
            );
        }
        let port = &service.data["spec"]["ports"][0];
        let container = &deployment.data["spec"]["template"]["spec"]["containers"][0];
        let target = container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == port["targetPort"])
            .unwrap_or_else(|| panic!("{overlay}: no container port named {}", port["targetPort"]));
        // The host serves /metrics on --metrics-bind-address, 0.0.0.0:8080 unless the args say
        // otherwise.
        let args = container["args"].to_string();
        assert!(!args.contains("metrics-bind-address"), "{overlay}: {args}");
        assert_eq!(target["containerPort"], 8080, "{overlay}");
        assert_eq!(port["port"], 8080, "{overlay}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_overlay_is_accepted_by_the_api_server() {
    let plane = e2e::shared_plane().await;
    let client = plane.client().await;
    let version = client.apiserver_version().await.unwrap();
    let minor: u32 = version.minor.trim_end_matches('+').parse().unwrap();
    for overlay in ["default", "namespaced", "oci-guest", "samples"] {
        let mut objects = deploy::kustomize(overlay).unwrap();
        assert!(!objects.is_empty(), "{overlay} renders nothing");
        if overlay == "oci-guest" && minor < 31 {
            // Image volumes exist from 1.31; an older server drops the unknown volume source
            // and rightly refuses a volume without one.
            eprintln!("skipping the dry run of deploy/oci-guest: the server is 1.{minor} (< 1.31)");
            continue;
        }
        // A server-side dry run needs the namespace to exist.
        deploy::relocate(&mut objects, &format!("dry-run-{overlay}"));
        let namespaces: Vec<_> = objects
            .iter()
            .filter(|o| kind_of(o) == "Namespace")
            .cloned()
            .collect();
        deploy::apply(&client, &namespaces, false).await.unwrap();
        if overlay == "samples" {
            // The samples' CRDs must be served for their dry run (the overlays above were dry
            // runs too).
            plane
                .install_crd(&e2e::paths::workspace_root().join("deploy/crd/podtatohead.yaml"))
                .await
                .unwrap();
            let namespace = TestNamespace::create(&client, "dry-run-sample").await.name;
            deploy::relocate(&mut objects, &namespace);
            for object in &mut objects {
                object.metadata.namespace = Some(namespace.clone());
            }
        }
        deploy::apply(&client, &objects, true)
            .await
            .unwrap_or_else(|e| panic!("deploy/{overlay}: {e:#}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cluster_scoped_operator_works_as_its_service_account_and_takes_a_published_guest() {
    let plane = e2e::shared_plane().await;
    let client = plane.client().await;

    // As a user would: apply -k, then publish the guests the Deployment mounts (`make
    // publish-guest`, the README's command: both shipped guests).
    let applied = Command::new(deploy::kubectl())
        .args(["apply", "-k"])
        .arg(e2e::paths::workspace_root().join("deploy/default"))
        .env("KUBECONFIG", &plane.kubeconfig)
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "kubectl apply -k deploy/default: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let published = Command::new("make")
        .arg("publish-guest")
        .current_dir(e2e::paths::workspace_root())
        .env("KUBECONFIG", &plane.kubeconfig)
        .env("KUBECTL", deploy::kubectl())
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "make publish-guest: {}",
        String::from_utf8_lossy(&published.stderr)
    );
    let published = Api::<ConfigMap>::namespaced(client.clone(), SYSTEM)
        .get("wasm-reconciler-guests")
        .await
        .unwrap();
    let keys = published.binary_data.unwrap();
    assert_eq!(
        keys.keys().collect::<Vec<_>>(),
        ["podtatohead.wasm", "potatohead.wasm"]
    );
    assert_eq!(
        keys["potatohead.wasm"].0,
        std::fs::read(potatohead_guest()).unwrap(),
        "the ConfigMap holds the guest byte for byte"
    );

    // A third guest would not fit beside them: refused before anything is written, saying why.
    let mut third = std::ffi::OsString::from("extra=");
    third.push(test_guest("potatohead_v2_guest"));
    let refused = deploy::publish_guest(&plane.kubeconfig, SYSTEM, &[third])
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("holds at most") && refused.contains("podtatohead.wasm"),
        "{refused}"
    );
    let bad_name = deploy::publish_guest(
        &plane.kubeconfig,
        SYSTEM,
        &[std::ffi::OsString::from("Bad_Name=x.wasm")],
    )
    .unwrap_err()
    .to_string();
    assert!(bad_name.contains("not a usable guest name"), "{bad_name}");
    // A shadow candidate's name is a usable one (this one does not fit either).
    let mut candidate = std::ffi::OsString::from("potatohead.candidate=");
    candidate.push(test_guest("potatohead_v2_guest"));
    let refused = deploy::publish_guest(&plane.kubeconfig, SYSTEM, &[candidate])
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("holds at most") && refused.contains("potatohead.candidate.wasm"),
        "{refused}"
    );
    assert_eq!(
        Api::<ConfigMap>::namespaced(client.clone(), SYSTEM)
            .get("wasm-reconciler-guests")
            .await
            .unwrap()
            .binary_data
            .unwrap()
            .len(),
        2
    );

    let deployment = Api::<Deployment>::namespaced(client.clone(), SYSTEM)
        .get("wasm-reconciler")
        .await
        .unwrap();
    let kubeconfig = deploy::service_account_kubeconfig(plane, &client, SYSTEM, "wasm-reconciler")
        .await
        .unwrap();
    let pod = deploy::start_like_pod(
        plane,
        &client,
        &kubeconfig,
        &deployment,
        "wasm-reconciler-5f7c6-q8w2z",
    )
    .await
    .unwrap();

    // Both APIs in two unrelated namespaces.
    let mut teams = Vec::new();
    for prefix in ["team-a", "team-b"] {
        let namespace = TestNamespace::create(&client, prefix).await.name;
        teams.push(namespace.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        manages_the_sample(&client, &namespace, deadline)
            .await
            .and(manages_the_podtatohead_sample(&client, &namespace, deadline).await)
            .unwrap_or_else(|e| panic!("{namespace}: {e}\n{}", pod.host.log()));
    }

    // A new guest, published and delivered to the mount: the running host switches to it.
    let namespace = TestNamespace::create(&client, "team-c").await.name;
    manages_the_sample(
        &client,
        &namespace,
        Instant::now() + Duration::from_secs(60),
    )
    .await
    .unwrap();
    let pid = pod.host.pid();
    let mut v2 = std::ffi::OsString::from("potatohead=");
    v2.push(test_guest("potatohead_v2_guest"));
    deploy::publish_guest(&plane.kubeconfig, SYSTEM, &[v2]).unwrap();
    pod.sync_volumes(&client).await.unwrap();
    e2e::reconciled_by(
        &potatohead_api(&client, &namespace),
        "demo",
        "potatohead-v2",
        e2e::CONVERGE,
    )
    .await;
    assert_eq!(pod.host.pid(), pid, "no restart");

    // A guest removed from the ConfigMap: its reconciler stops, its parents' children stay.
    deploy::publish_guest(
        &plane.kubeconfig,
        SYSTEM,
        &["--remove".into(), "podtatohead".into()],
    )
    .unwrap();
    let remaining = Api::<ConfigMap>::namespaced(client.clone(), SYSTEM)
        .get("wasm-reconciler-guests")
        .await
        .unwrap()
        .binary_data
        .unwrap();
    assert_eq!(remaining.keys().collect::<Vec<_>>(), ["potatohead.wasm"]);
    pod.sync_volumes(&client).await.unwrap();
    eventually(
        Duration::from_secs(30),
        "the removed guest's reconciler stopped",
        || async {
            match pod.host.http_get("/readyz").await {
                (200, body) if !body.contains("podtatohead") => Ok(()),
                (status, body) => Err(format!("{status}: {body}")),
            }
        },
    )
    .await;
    let deployments = e2e::by_name::<Deployment>(&client, &teams[0]).await;
    assert_eq!(
        deployments
            .keys()
            .filter(|name| name.starts_with("podtato-"))
            .count(),
        4,
        "the removed guest's children stay: {:?}",
        deployments.keys()
    );
    // The compile cache works inside the emptyDir the kubelet makes world-writable: the host
    // created its own private folder there, and compiled guests went into it.
    let log = pod.host.log();
    assert!(
        !log.contains("cannot use the compiled-guest cache folder"),
        "{log}"
    );
    assert!(
        log.contains("CompiledAndCached") || log.contains("origin=Cache"),
        "{log}"
    );
}
