//! The PodTatoHead custom resource of the operator this project re-implements (the operator-sdk
//! demo of the KCD Sri Lanka 2022 talk): `crd.demo.com/v1alpha1`, one field per part. A resource
//! written for the original operator applies unchanged. With the `crd` feature these types also
//! derive the CustomResourceDefinition in `deploy/crd/podtatohead.yaml`.

pub use guest_kit::status::{Condition, ReconcilerStamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// API group of the PodTatoHead custom resource.
pub const GROUP: &str = "crd.demo.com";
/// API version of the PodTatoHead custom resource.
pub const VERSION: &str = "v1alpha1";
/// Kind of the PodTatoHead custom resource.
pub const KIND: &str = "PodTatoHead";

/// Desired state of a podtato-head application, one field per part.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(kube::CustomResource, schemars::JsonSchema))]
#[cfg_attr(
    feature = "crd",
    kube(
        group = "crd.demo.com",
        version = "v1alpha1",
        kind = "PodTatoHead",
        namespaced,
        doc = "The podtato-head application of the seed operator's API, reconciled by the podtatohead guest.",
        status = "PodTatoHeadStatus",
        shortname = "pth",
        printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.summary","description":"Ready parts / parts"}"#,
        printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicaCount"}"#,
        printcolumn = r#"{"name":"Main","type":"string","jsonPath":".spec.main.image","priority":1}"#,
        printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PodTatoHeadSpec {
    /// Pods per part (default 1; the original operator scaled every part to 0 when it was left
    /// out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "crd", schemars(range(min = 0)))]
    pub replica_count: Option<i32>,
    /// The application's version: the `app.kubernetes.io/version` label of every object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Environment variables of every part's container (Kubernetes `EnvVar`s: `name` with
    /// `value` or `valueFrom`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// The main part: its Service is the application's front door (a LoadBalancer by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main: Option<PartSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hats: Option<PartSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_leg: Option<PartSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_arm: Option<PartSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_leg: Option<PartSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_arm: Option<PartSpec>,
    /// Accepted for compatibility with the original operator's API, which never read it: objects
    /// are named after each part's `name` and live in the resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Accepted for compatibility with the original operator's API, which never read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Accepted for compatibility with the original operator's API, which never read it; each
    /// part has its own `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

/// One part: a Deployment and a Service named `podtato-<name>`. `image` and `name` are optional in
/// the schema only so that a resource missing one is admitted and told what is wrong in its
/// status, as the original operator's resources were admitted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PartSpec {
    /// The container image (required: a part without one is refused with a condition naming the
    /// field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Names the part's objects: `podtato-<name>` (required; lowercase letters, digits and `-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port of the part's Service (default 9000, the container's port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "crd", schemars(range(min = 1, max = 65535)))]
    pub port: Option<i32>,
    /// Type of the part's Service: ClusterIP, NodePort or LoadBalancer (default: LoadBalancer for
    /// the main part, ClusterIP for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
}

impl PartSpec {
    /// The image, `""` when missing (refused by validation).
    pub fn image(&self) -> &str {
        self.image.as_deref().unwrap_or_default()
    }

    /// The name, `""` when missing (refused by validation).
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }
}

/// A container environment variable, passed to every part as written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A Kubernetes `EnvVarSource` (secret, config map, field or resource reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "crd", schemars(schema_with = "any_object"))]
    pub value_from: Option<Value>,
}

/// What the guest reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PodTatoHeadStatus {
    /// Ready parts / parts, e.g. `3/4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Each part's readiness.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartStatus>,
    /// Standard conditions; `Ready` is true when every part is ready and the last reconcile
    /// succeeded (the host adds transition times and generations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Written by the host: the generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Written by the host: which guest decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciler: Option<ReconcilerStamp>,
}

/// One part's readiness.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PartStatus {
    /// The spec field: main, hats, leftLeg, leftArm, rightLeg or rightArm.
    pub part: String,
    /// The part's objects: `podtato-<name>`.
    pub name: String,
    pub ready: bool,
    pub ready_replicas: i64,
    pub replicas: i64,
}

#[cfg(feature = "crd")]
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}
