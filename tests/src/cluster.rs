//! Small helpers for talking to the test cluster: namespaces, the PotatoHead API, and waiting
//! for a condition to hold.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde_json::json;

/// A namespace made for one test, with a unique name.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    /// Creates `<prefix>-<pid>-<n>`.
    pub async fn create(client: &kube::Client, prefix: &str) -> TestNamespace {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        let namespace: Namespace =
            serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("namespace created");
        TestNamespace { name }
    }
}

/// The PotatoHead resource, for dynamic clients.
pub fn potatohead_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("podtato.example.com", "v1alpha1", "PotatoHead"),
        "potatoheads",
    )
}

/// An API for PotatoHeads in one namespace.
pub fn potatohead_api(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &potatohead_resource())
}

/// The committed sample PotatoHead (`deploy/samples/potatohead.yaml`), named `name`, placed in
/// `namespace`.
pub fn sample_potatohead(namespace: &str, name: &str) -> DynamicObject {
    committed_sample("potatohead.yaml", namespace, name)
}

/// Creates the committed sample PotatoHead as `name` in `namespace` (panics when the API server
/// refuses it).
pub async fn create_sample_potatohead(client: &kube::Client, namespace: &str, name: &str) {
    potatohead_api(client, namespace)
        .create(
            &kube::api::PostParams::default(),
            &sample_potatohead(namespace, name),
        )
        .await
        .unwrap_or_else(|error| panic!("creating PotatoHead {namespace}/{name}: {error}"));
}

/// An API for the seed operator's own `crd.demo.com/v1alpha1` PodTatoHeads in one namespace.
pub fn podtatohead_api(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("crd.demo.com", "v1alpha1", "PodTatoHead"),
        "podtatoheads",
    );
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// The committed sample PodTatoHead (`deploy/samples/podtatohead.yaml`, the talk's), named
/// `name`, placed in `namespace`.
pub fn sample_podtatohead(namespace: &str, name: &str) -> DynamicObject {
    committed_sample("podtatohead.yaml", namespace, name)
}

/// `deploy/samples/<file>`, named `name`, placed in `namespace`.
fn committed_sample(file: &str, namespace: &str, name: &str) -> DynamicObject {
    let path = crate::paths::workspace_root()
        .join("deploy/samples")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut object: DynamicObject = serde_saphyr::from_str(&text).expect("sample parses");
    object.metadata.namespace = Some(namespace.to_string());
    object.metadata.name = Some(name.to_string());
    object
}

/// A parent's `Ready` condition (`Null` when it has none).
pub fn ready_condition(object: &DynamicObject) -> serde_json::Value {
    object.data["status"]["conditions"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["type"] == "Ready").cloned())
        .unwrap_or(serde_json::Value::Null)
}

/// Waits up to `timeout` until `name`'s `Ready` condition has `reason`, and returns the
/// condition.
pub async fn ready_reason(
    api: &Api<DynamicObject>,
    name: &str,
    reason: &str,
    timeout: Duration,
) -> serde_json::Value {
    eventually(timeout, &format!("{name} reports {reason}"), || async {
        let condition = ready_condition(&api.get(name).await.unwrap());
        if condition["reason"] == reason {
            Ok(condition)
        } else {
            Err(format!("{condition}"))
        }
    })
    .await
}

/// Every object of kind `K` in `namespace`, by name.
pub async fn by_name<K>(client: &kube::Client, namespace: &str) -> BTreeMap<String, K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("objects list")
        .items
        .into_iter()
        .map(|object| (object.name_any(), object))
        .collect()
}

/// The image of a Deployment's first container.
pub fn image_of(deployment: &Deployment) -> String {
    deployment
        .spec
        .as_ref()
        .and_then(|spec| spec.template.spec.as_ref())
        .and_then(|pod| pod.containers.first())
        .and_then(|container| container.image.clone())
        .unwrap_or_default()
}

/// Polls `check` every 200 ms until it returns `Ok`, or panics with its last error after
/// `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => {
                panic!("{what}: still not true after {timeout:?}: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The Events in `namespace` with `reason` about the object named `regarding`; an error while
/// there is none (so it can be waited for with [`eventually`]).
pub async fn events_about(
    client: &kube::Client,
    namespace: &str,
    regarding: &str,
    reason: &str,
) -> Result<Vec<k8s_openapi::api::events::v1::Event>, String> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), namespace);
    let found: Vec<_> = events
        .list(&kube::api::ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(regarding)
        })
        .collect();
    if found.is_empty() {
        Err(format!("no {reason} Event about {regarding}"))
    } else {
        Ok(found)
    }
}
