//! The PotatoHead custom resource: spec and status types. With the `crd` feature these also
//! derive the CustomResourceDefinition in `deploy/crd/` (see `src/bin/crdgen.rs`).

use serde::{Deserialize, Serialize};

pub use guest_kit::status::{Condition, ReconcilerStamp};

use crate::parts::Part;

/// API group of the PotatoHead custom resource.
pub const GROUP: &str = "podtato.example.com";
/// API version of the PotatoHead custom resource.
pub const VERSION: &str = "v1alpha1";
/// Kind of the PotatoHead custom resource.
pub const KIND: &str = "PotatoHead";
/// Image tag used when the spec names none.
pub const DEFAULT_TAG: &str = "0.3.0";

/// Desired state of a podtato-head application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(kube::CustomResource, schemars::JsonSchema))]
#[cfg_attr(
    feature = "crd",
    kube(
        group = "podtato.example.com",
        version = "v1alpha1",
        kind = "PotatoHead",
        namespaced,
        doc = "A podtato-head demo application, reconciled by the potatohead guest.",
        status = "PotatoHeadStatus",
        shortname = "ph",
        printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.summary","description":"Ready parts / parts"}"#,
        printcolumn = r#"{"name":"Tag","type":"string","jsonPath":".spec.tag"}"#,
        printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
        printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PotatoHeadSpec {
    /// Image tag for every part that does not set its own image: `ghcr.io/podtato-head/<part>:<tag>`.
    #[serde(default = "default_tag")]
    #[cfg_attr(feature = "crd", schemars(length(min = 1, max = 128)))]
    pub tag: String,
    /// The parts to run. Each part becomes a Deployment and a Service named `<name>-<part>`.
    /// A part left out is not run (its objects are deleted).
    #[cfg_attr(
        feature = "crd",
        schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))
    )]
    pub parts: Vec<PartSpec>,
    /// A ConfigMap in the PotatoHead's namespace whose data becomes environment variables of
    /// every part (a part's own `env` wins; keys that are no variable name are left out).
    /// Editing the ConfigMap rolls the parts; until it exists, nothing is changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_ref: Option<ConfigRef>,
}

/// The ConfigMap a PotatoHead reads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
pub struct ConfigRef {
    /// The ConfigMap's name.
    #[cfg_attr(feature = "crd", schemars(length(min = 1, max = 253)))]
    pub name: String,
}

fn default_tag() -> String {
    DEFAULT_TAG.to_string()
}

fn default_replicas() -> i32 {
    1
}

/// One part of the application.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PartSpec {
    /// Which part: entry, hat, left-arm, right-arm, left-leg or right-leg.
    pub name: Part,
    /// Full image reference overriding `ghcr.io/podtato-head/<part>:<tag>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "crd", schemars(length(min = 1)))]
    pub image: Option<String>,
    /// Number of pods for this part.
    #[serde(default = "default_replicas")]
    #[cfg_attr(feature = "crd", schemars(range(min = 0)))]
    pub replicas: i32,
    /// Extra environment variables for the part's container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(
        feature = "crd",
        schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))
    )]
    pub env: Vec<EnvVar>,
    /// Type of the part's Service (default: LoadBalancer for the entry part, the app's front
    /// door, as podtato-head's own manifests have it; ClusterIP for the other parts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "crd", schemars(with = "ServiceType"))]
    pub service_type: Option<ServiceType>,
    /// Port of the part's Service (default: podtato-head's port for the part, 9000-9005).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "crd", schemars(range(min = 1, max = 65535)))]
    pub port: Option<i32>,
}

/// An environment variable for a part's container.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
pub struct EnvVar {
    /// Variable name: letters, digits, `_`, `-` and `.`, not starting with a digit.
    #[cfg_attr(
        feature = "crd",
        schemars(regex(pattern = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"))
    )]
    pub name: String,
    /// Variable value (may be empty).
    pub value: String,
}

/// Kubernetes Service types a part may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    /// The Service type of a part whose spec names none: the entry part is what users open, so
    /// it is a LoadBalancer (as in podtato-head's kubectl, helm and kustomize manifests and the
    /// original operator); the other parts are only called by the entry part.
    pub fn default_for(part: Part) -> Self {
        match part {
            Part::Entry => Self::LoadBalancer,
            _ => Self::ClusterIP,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// Observed state of a podtato-head application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PotatoHeadStatus {
    /// The spec generation this status describes (written by the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready parts over parts, e.g. `4/6`. Optional in the schema: the host may write a status
    /// (conditions only) before the guest ever computed one, e.g. for an invalid spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Readiness of each part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<PartStatus>>,
    /// Standard conditions; `Ready` is true when every part is ready and the last reconcile
    /// succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Which guest produced this status (written by the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciler: Option<ReconcilerStamp>,
}

/// Readiness of one part, from its observed Deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "crd", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct PartStatus {
    pub name: Part,
    pub ready: bool,
    pub ready_replicas: i32,
    pub replicas: i32,
}
