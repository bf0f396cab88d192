//! The manifests under `deploy/` as a user applies them: rendered by kubectl's kustomize,
//! applied to the API server, and the host run the way the rendered Deployment runs it, as its
//! ServiceAccount (so a missing RBAC rule fails the test, as it would fail the pod).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::pinned_kind;

use crate::host::HostProcess;
use crate::paths::workspace_root;
use local_control_plane::ControlPlane;

/// kubectl 1.20 from `hack/kubectl.sh` (cached; `$KUBECTL` overrides).
pub fn kubectl() -> PathBuf {
    static KUBECTL: OnceLock<PathBuf> = OnceLock::new();
    KUBECTL
        .get_or_init(|| {
            let script = workspace_root().join("hack/kubectl.sh");
            let output = Command::new(&script)
                .stderr(Stdio::inherit())
                .output()
                .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
            assert!(output.status.success(), "{} failed", script.display());
            let stdout = String::from_utf8(output.stdout).expect("utf-8 path");
            PathBuf::from(stdout.lines().last().expect("a path").trim())
        })
        .clone()
}

/// `kubectl kustomize deploy/<overlay>`, parsed.
pub fn kustomize(overlay: &str) -> anyhow::Result<Vec<DynamicObject>> {
    let dir = workspace_root().join("deploy").join(overlay);
    let output = Command::new(kubectl())
        .arg("kustomize")
        .arg(&dir)
        .output()
        .context("running kubectl kustomize")?;
    if !output.status.success() {
        bail!(
            "kubectl kustomize {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8(output.stdout)?;
    let documents: Vec<serde_json::Value> = serde_saphyr::from_str_multiple(&text)?;
    let mut objects = Vec::new();
    for value in documents.into_iter().filter(|v| !v.is_null()) {
        objects.push(serde_json::from_value(value)?);
    }
    Ok(objects)
}

/// The kind of a rendered object.
pub fn kind_of(object: &DynamicObject) -> &str {
    object.types.as_ref().map_or("", |t| t.kind.as_str())
}

/// Moves rendered objects from the namespace they name to `namespace`: the Namespace object
/// itself, every namespaced object, and ServiceAccount subjects of bindings (what kustomize's
/// `namespace:` does), so several copies can run side by side in one cluster.
pub fn relocate(objects: &mut [DynamicObject], namespace: &str) {
    for object in objects {
        if kind_of(object) == "Namespace" {
            object.metadata.name = Some(namespace.to_string());
        } else if object.metadata.namespace.is_some() {
            object.metadata.namespace = Some(namespace.to_string());
        }
        if let Some(subjects) = object
            .data
            .get_mut("subjects")
            .and_then(|s| s.as_array_mut())
        {
            for subject in subjects {
                subject["namespace"] = namespace.into();
            }
        }
    }
}

/// Applies `objects` with server-side apply as the administrator, Namespaces and CRDs first;
/// `dry_run`: only validated by the API server.
pub async fn apply(
    client: &kube::Client,
    objects: &[DynamicObject],
    dry_run: bool,
) -> anyhow::Result<()> {
    let first = |o: &&DynamicObject| matches!(kind_of(o), "Namespace" | "CustomResourceDefinition");
    let ordered = objects
        .iter()
        .filter(first)
        .chain(objects.iter().filter(|o| !first(o)));
    let mut params = PatchParams::apply("e2e-deploy").force();
    params.dry_run = dry_run;
    for object in ordered {
        let types = object
            .types
            .as_ref()
            .context("object without apiVersion/kind")?;
        let (group, version) = match types.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", types.api_version.as_str()),
        };
        let gvk = GroupVersionKind::gvk(group, version, &types.kind);
        let (resource, capabilities) = pinned_kind(client, &gvk).await?;
        let api: Api<DynamicObject> = match (&object.metadata.namespace, capabilities.scope) {
            (Some(ns), kube::discovery::Scope::Namespaced) => {
                Api::namespaced_with(client.clone(), ns, &resource)
            }
            _ => Api::all_with(client.clone(), &resource),
        };
        let name = object
            .metadata
            .name
            .clone()
            .context("object without a name")?;
        api.patch(&name, &params, &Patch::Apply(object))
            .await
            .with_context(|| format!("applying {} {name}", types.kind))?;
    }
    Ok(())
}

/// A kubeconfig that authenticates as ServiceAccount `namespace/name`, with a token from the
/// TokenRequest API (what a pod's projected service-account token is).
pub async fn service_account_kubeconfig(
    plane: &ControlPlane,
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> anyhow::Result<PathBuf> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let token = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .with_context(|| format!("requesting a token for ServiceAccount {namespace}/{name}"))?
        .status
        .context("TokenRequest without status")?
        .token;
    let mut kubeconfig = kube::config::Kubeconfig::read_from(&plane.kubeconfig)?;
    for auth in &mut kubeconfig.auth_infos {
        auth.auth_info = Some(kube::config::AuthInfo {
            token: Some(token.clone().into()),
            ..kube::config::AuthInfo::default()
        });
    }
    let path = plane.dir.join(format!("kubeconfig-{namespace}-{name}"));
    std::fs::write(&path, serde_saphyr::to_string(&kubeconfig)?)?;
    Ok(path)
}

/// `hack/publish-guest.sh ARGS…` into `namespace`, as the user of `kubeconfig`, with kubectl
/// 1.20: guest files (`GUEST.wasm` or `NAME=GUEST.wasm`), or `--remove NAME…`.
pub fn publish_guest(
    kubeconfig: &Path,
    namespace: &str,
    args: &[std::ffi::OsString],
) -> anyhow::Result<()> {
    let script = workspace_root().join("hack/publish-guest.sh");
    let output = Command::new(&script)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("KUBECTL", kubectl())
        .env("NAMESPACE", namespace)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "publish-guest {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The host running like the Deployment's pod, and the local folders standing in for its
/// ConfigMap volumes.
pub struct PodLike {
    pub host: HostProcess,
    namespace: String,
    /// (local folder, ConfigMap name)
    config_maps: Vec<(PathBuf, String)>,
}

impl PodLike {
    /// Does what the kubelet does when a mounted ConfigMap changed: writes its keys into a new
    /// timestamped folder and swaps the `..data` symlink to it.
    pub async fn sync_volumes(&self, client: &kube::Client) -> anyhow::Result<()> {
        for (dir, name) in &self.config_maps {
            project_config_map(client, &self.namespace, name, dir).await?;
        }
        Ok(())
    }
}

/// Writes ConfigMap `namespace/name` into `dir` in the kubelet's layout:
/// `key -> ..data/key`, `..data -> ..<timestamp>/`.
async fn project_config_map(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    dir: &Path,
) -> anyhow::Result<()> {
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .with_context(|| format!("reading ConfigMap {namespace}/{name}"))?;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let version = format!(
        "..2026_11_24_00_00_00.{:09}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let payload = dir.join(&version);
    std::fs::create_dir_all(&payload)?;
    let mut keys = Vec::new();
    for (key, value) in config_map.binary_data.iter().flatten() {
        std::fs::write(payload.join(key), &value.0)?;
        keys.push(key.clone());
    }
    for (key, value) in config_map.data.iter().flatten() {
        std::fs::write(payload.join(key), value)?;
        keys.push(key.clone());
    }
    let staged = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&staged);
    std::os::unix::fs::symlink(&version, &staged)?;
    std::fs::rename(&staged, dir.join("..data"))?;
    // Keys the ConfigMap no longer has: their links go, as the kubelet removes them.
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !keys.contains(&name) {
            std::fs::remove_file(dir.join(&name))?;
        }
    }
    for key in keys {
        let link = dir.join(&key);
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("..data/{key}"), link)?;
        }
    }
    Ok(())
}

/// Runs `reconciler-host` configured exactly like the manager container of `deployment`: its
/// args and env (downward-API fields filled in as the kubelet would), its volumes as local
/// folders at the paths the args name (ConfigMaps projected from the API server by `client`,
/// in the kubelet's layout; emptyDirs empty), authenticated by `kubeconfig`.
pub async fn start_like_pod(
    plane: &ControlPlane,
    client: &kube::Client,
    kubeconfig: &Path,
    deployment: &Deployment,
    pod_name: &str,
) -> anyhow::Result<PodLike> {
    let namespace = deployment
        .metadata
        .namespace
        .clone()
        .context("Deployment without a namespace")?;
    let pod = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .context("Deployment without a pod template")?;
    let container = pod
        .containers
        .iter()
        .find(|c| c.name == "manager")
        .context("no manager container")?;
    let root = plane.dir.join(format!("pod-{namespace}-{pod_name}"));
    let mut mounts = BTreeMap::new();
    let mut config_maps = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .with_context(|| format!("no volume {}", mount.name))?;
        let local = root.join(&mount.name);
        std::fs::create_dir_all(&local)?;
        if let Some(source) = &volume.config_map {
            project_config_map(client, &namespace, &source.name, &local).await?;
            config_maps.push((local.clone(), source.name.clone()));
        } else if volume.empty_dir.is_some() {
            // As the kubelet makes emptyDirs: writable by anyone in the pod.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o777))?;
        } else {
            bail!(
                "volume {} is neither a ConfigMap nor an emptyDir",
                volume.name
            );
        }
        mounts.insert(mount.mount_path.clone(), local);
    }
    // A path under a mount, alone or as a flag's `=value`, becomes the same path locally.
    let localize_path = |value: &str| {
        for (mount_path, local) in &mounts {
            if let Some(rest) = value.strip_prefix(mount_path.as_str())
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return format!("{}{rest}", local.display());
            }
        }
        value.to_string()
    };
    let localize = |arg: &str| match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => format!("{flag}={}", localize_path(value)),
        _ => localize_path(arg),
    };
    let args: Vec<String> = container
        .args
        .iter()
        .flatten()
        .map(|a| localize(a))
        .collect();
    let mut env = Vec::new();
    for var in container.env.iter().flatten() {
        let value = match (
            &var.value,
            var.value_from.as_ref().and_then(|f| f.field_ref.as_ref()),
        ) {
            (Some(value), _) => localize(value),
            (None, Some(field)) => match field.field_path.as_str() {
                "metadata.name" => pod_name.to_string(),
                "metadata.namespace" => namespace.clone(),
                other => bail!("env {} from unsupported field {other}", var.name),
            },
            _ => bail!("env {} has neither a value nor a field reference", var.name),
        };
        env.push((var.name.clone(), value));
    }
    Ok(PodLike {
        host: HostProcess::spawn(plane, kubeconfig, &args, &env),
        namespace,
        config_maps,
    })
}
