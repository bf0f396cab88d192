//! End to end: a cluster-scoped parent (the Tenant of `examples/tenant`), against a real API
//! server with kube-controller-manager. A Tenant gets a Namespace, a ResourceQuota and a
//! RoleBinding inside it, from a ConfigMap of defaults in another namespace; editing the
//! defaults updates the quota; a Tenant named like the host's own namespace is refused; deleting
//! the Tenant lets the garbage collector remove all of it, and the host does not recreate it.
//! The host runs as a ServiceAccount with exactly the ClusterRoles of `deploy/rbac/cluster` and
//! `examples/tenant/rbac.yaml`.

use std::time::{Duration, Instant};

use e2e::paths::workspace_root;
use e2e::{CONVERGE, DedicatedPlane, HostProcess, eventually, ready_reason};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ResourceQuota};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use local_control_plane::Options;
use serde_json::json;

const CHILD_KINDS: &str = "v1/Namespace,v1/ResourceQuota,rbac.authorization.k8s.io/v1/RoleBinding";

fn tenant_guest() -> std::path::PathBuf {
    let path = workspace_root().join("target/wasm32-wasip2/release/tenant_guest.wasm");
    assert!(
        path.exists(),
        "{} is missing: run `make example-guests`",
        path.display()
    );
    path
}

fn tenants(client: &kube::Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("examples.wasm-reconciler.io", "v1alpha1", "Tenant"),
        "tenants",
    );
    Api::all_with(client.clone(), &resource)
}

/// The objects of a committed YAML file of the workspace.
fn objects(path: &str) -> Vec<DynamicObject> {
    let text = std::fs::read_to_string(workspace_root().join(path)).expect(path);
    let documents: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&text).unwrap();
    documents
        .into_iter()
        .filter(|document| !document.is_null())
        .map(|document| serde_json::from_value(document).unwrap())
        .collect()
}

/// The host's namespace and ServiceAccount, bound to the shipped ClusterRole and the Tenant's.
const HOST_NAMESPACE: &str = "tenant-operator";

async fn host_account(plane: &DedicatedPlane, client: &kube::Client) -> std::path::PathBuf {
    let mut rbac = objects("deploy/rbac/cluster/role.yaml");
    rbac.extend(objects("examples/tenant/rbac.yaml"));
    let mut account: Vec<DynamicObject> = serde_json::from_value(json!([
        { "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": HOST_NAMESPACE } },
        { "apiVersion": "v1", "kind": "ServiceAccount",
          "metadata": { "name": "host", "namespace": HOST_NAMESPACE } },
    ]))
    .unwrap();
    for role in ["wasm-reconciler", "wasm-reconciler-tenant"] {
        assert!(
            rbac.iter()
                .any(|o| o.metadata.name.as_deref() == Some(role))
        );
        account.push(
            serde_json::from_value(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": { "name": format!("tenant-host-{role}") },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
                "subjects": [{ "kind": "ServiceAccount", "name": "host", "namespace": HOST_NAMESPACE }],
            }))
            .unwrap(),
        );
    }
    account.extend(rbac);
    e2e::deploy::apply(client, &account, false).await.unwrap();
    e2e::deploy::service_account_kubeconfig(plane, client, HOST_NAMESPACE, "host")
        .await
        .unwrap()
}

/// Waits until the host exits and returns its log.
async fn refused_at_start(host: &mut HostProcess) -> String {
    eventually(
        Duration::from_secs(60),
        "the host refuses and exits",
        || {
            let running = host.is_running();
            async move {
                if running {
                    Err("still running".to_string())
                } else {
                    Ok(())
                }
            }
        },
    )
    .await;
    host.log()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_owns_a_namespace_and_what_is_in_it_until_it_is_deleted() {
    let plane = DedicatedPlane::start(Options {
        controller_manager: true,
    })
    .await;
    plane
        .install_crd(&workspace_root().join("examples/tenant/crd.yaml"))
        .await
        .unwrap();
    let client = plane.client().await;

    // A cluster-scoped parent needs a host that watches every namespace, and its cluster-scoped
    // child kinds named by the admin.
    let mut confined = HostProcess::start(
        &plane,
        &tenant_guest(),
        &[
            "--namespace",
            "default",
            "--allowed-child-kind",
            CHILD_KINDS,
        ],
    );
    let log = refused_at_start(&mut confined).await;
    assert!(
        log.contains("is cluster-scoped and the host watches only namespace"),
        "{log}"
    );
    let mut unnamed = HostProcess::start(&plane, &tenant_guest(), &[]);
    let log = refused_at_start(&mut unnamed).await;
    assert!(
        log.contains("declares child kind Namespace.v1, which --allowed-child-kind does not allow (allowed: any namespaced kind)"),
        "{log}"
    );

    let kubeconfig = host_account(&plane, &client).await;
    let args = [
        "run",
        "--guest",
        tenant_guest().to_str().unwrap(),
        "--allowed-child-kind",
        CHILD_KINDS,
    ]
    .map(String::from);
    let env = [("POD_NAMESPACE".to_string(), HOST_NAMESPACE.to_string())];
    let host = HostProcess::spawn(&plane, &kubeconfig, &args, &env);
    e2e::deploy::apply(&client, &objects("examples/tenant/sample.yaml"), false)
        .await
        .unwrap();
    let quotas = |ns: &str| Api::<ResourceQuota>::namespaced(client.clone(), ns);
    let hard = |quota: &ResourceQuota| {
        let hard = quota
            .spec
            .as_ref()
            .and_then(|s| s.hard.clone())
            .unwrap_or_default();
        hard.into_iter().map(|(k, v)| (k, v.0)).collect::<Vec<_>>()
    };
    eventually(
        CONVERGE,
        "team-a's Namespace, quota and binding",
        || async {
            let namespace = Api::<Namespace>::all(client.clone())
                .get_opt("team-a")
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no Namespace team-a")?;
            let owner = namespace.metadata.owner_references.unwrap_or_default();
            if owner.first().map(|o| o.kind.as_str()) != Some("Tenant") {
                return Err(format!("the Namespace's owners: {owner:?}"));
            }
            let quota = quotas("team-a")
                .get_opt("tenant-quota")
                .await
                .map_err(|e| e.to_string())?;
            let quota = quota.ok_or("no ResourceQuota")?;
            let binding = Api::<RoleBinding>::namespaced(client.clone(), "team-a")
                .get_opt("tenant-admins")
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no RoleBinding")?;
            let subjects: Vec<String> = binding
                .subjects
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.name)
                .collect();
            let expected = [
                ("pods".to_string(), "50".to_string()),
                ("requests.cpu".into(), "4".into()),
            ];
            if hard(&quota) == expected && subjects == ["alice"] && binding.role_ref.name == "admin"
            {
                Ok(())
            } else {
                Err(format!("quota {:?}, admins {subjects:?}", hard(&quota)))
            }
        },
    )
    .await;
    let ready = ready_reason(&tenants(&client), "team-a", "Reconciled", CONVERGE).await;
    assert_eq!(ready["status"], "True", "{ready}");
    let status = tenants(&client).get("team-a").await.unwrap().data["status"].clone();
    assert_eq!(
        status["defaults"], "tenant-system/tenant-defaults",
        "{status}"
    );

    // The defaults are a related object: editing them updates every tenant's quota.
    Api::<ConfigMap>::namespaced(client.clone(), "tenant-system")
        .patch(
            "tenant-defaults",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "quota.requests.cpu": "8" } })),
        )
        .await
        .unwrap();
    eventually(CONVERGE, "the quota follows the defaults", || async {
        let quota = quotas("team-a")
            .get("tenant-quota")
            .await
            .map_err(|e| e.to_string())?;
        let expected = [
            ("pods".to_string(), "50".to_string()),
            ("requests.cpu".into(), "8".into()),
        ];
        if hard(&quota) == expected {
            Ok(())
        } else {
            Err(format!("{:?}", hard(&quota)))
        }
    })
    .await;

    // No admins any more: the RoleBinding in the tenant's namespace is pruned.
    tenants(&client)
        .patch(
            "team-a",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "admins": [] } })),
        )
        .await
        .unwrap();
    eventually(CONVERGE, "the RoleBinding pruned", || async {
        match Api::<RoleBinding>::namespaced(client.clone(), "team-a")
            .get_opt("tenant-admins")
            .await
        {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // A tenant named like the host's own namespace is refused, naming the flag: nothing of it is
    // written there (Kubernetes' own namespaces are refused the same way).
    let intruder = serde_json::from_value(json!({
        "apiVersion": "examples.wasm-reconciler.io/v1alpha1",
        "kind": "Tenant",
        "metadata": { "name": HOST_NAMESPACE },
        "spec": { "admins": ["mallory"] },
    }))
    .unwrap();
    e2e::deploy::apply(&client, &[intruder], false)
        .await
        .unwrap();
    let refused = ready_reason(
        &tenants(&client),
        HOST_NAMESPACE,
        "PolicyViolation",
        CONVERGE,
    )
    .await;
    let message = refused["message"].as_str().unwrap_or_default();
    let flag = format!("--allow-protected-namespace={HOST_NAMESPACE}");
    assert!(message.contains(&flag), "{refused}");
    let bindings = Api::<RoleBinding>::namespaced(client.clone(), HOST_NAMESPACE);
    assert!(bindings.get_opt("tenant-admins").await.unwrap().is_none());
    let quota_there = quotas(HOST_NAMESPACE)
        .get_opt("tenant-quota")
        .await
        .unwrap();
    assert!(quota_there.is_none());

    // A tenant whose Namespace already exists and is nobody's (the defaults' own) is refused:
    // the host takes over nothing, cluster-scoped or not.
    let squatter = serde_json::from_value(json!({
        "apiVersion": "examples.wasm-reconciler.io/v1alpha1",
        "kind": "Tenant",
        "metadata": { "name": "tenant-system" },
        "spec": {},
    }))
    .unwrap();
    e2e::deploy::apply(&client, &[squatter], false)
        .await
        .unwrap();
    let refused = ready_reason(
        &tenants(&client),
        "tenant-system",
        "PolicyViolation",
        CONVERGE,
    )
    .await;
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("does not take over"), "{refused}");
    let defaults_namespace = Api::<Namespace>::all(client.clone())
        .get("tenant-system")
        .await
        .unwrap();
    assert!(defaults_namespace.metadata.owner_references.is_none());

    // Deleting the Tenant: the garbage collector removes its Namespace (and the namespace
    // controller what is in it); the host does not put anything back.
    tenants(&client)
        .delete("team-a", &DeleteParams::default())
        .await
        .unwrap();
    let namespaces = Api::<Namespace>::all(client.clone());
    eventually(
        Duration::from_secs(120),
        "team-a's Namespace collected",
        || async {
            match namespaces.get_opt("team-a").await {
                Ok(None) => Ok(()),
                Ok(Some(namespace)) => Err(format!(
                    "phase {:?}",
                    namespace.status.and_then(|s| s.phase)
                )),
                Err(error) => Err(error.to_string()),
            }
        },
    )
    .await;
    let quiet_until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < quiet_until {
        assert!(
            namespaces.get_opt("team-a").await.unwrap().is_none(),
            "the host recreated team-a"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = host.log();
    // Everything it did, it was allowed to: the shipped rules and the example's suffice.
    assert!(
        !log.contains("panicked") && !log.contains("forbidden"),
        "{log}"
    );
}
