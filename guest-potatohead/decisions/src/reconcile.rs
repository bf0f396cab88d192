//! The PotatoHead reconcile decision as a plain function over JSON text, so it runs and is tested
//! natively; `lib.rs` only adapts it to the WIT interface.

use serde::Deserialize;
use serde_json::Value;

use guest_kit::component::Event;

use crate::children::{SharedEnv, desired_children};
use crate::config::Config;
use crate::spec::PotatoHeadSpec;
use crate::status::{ObservedChild, status};
use crate::validate::{is_env_var_name, validate_name, validate_spec};

/// What the guest wants, before conversion to the WIT record.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub children: Vec<Value>,
    pub status: Option<Value>,
    pub requeue_after_ms: Option<u64>,
    /// Events for the host to publish on the parent.
    pub events: Vec<Event>,
}

impl Desired {
    /// The children and status as the JSON text the WIT interface carries. `serde_json::to_string`
    /// writes straight into a buffer; `Value`'s `Display` goes through `fmt` one piece at a time,
    /// which cost a fifth of the whole call in WebAssembly (indirect calls are dearer there).
    pub fn to_text(&self) -> (Vec<String>, Option<String>) {
        let text = |value: &Value| serde_json::to_string(value).expect("JSON values serialize");
        (
            self.children.iter().map(text).collect(),
            self.status.as_ref().map(text),
        )
    }
}

/// Why no decision could be made, before conversion to the WIT variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileError {
    /// The parent's spec (or name) is wrong; the message starts with the field's path.
    InvalidSpec(String),
    /// Something the spec names is not there yet (the `spec.configRef` ConfigMap): retried,
    /// and nothing changes meanwhile.
    Missing(String),
}

/// The key under which the `spec.configRef` ConfigMap is asked for and given back.
pub const CONFIG_MAP_KEY: &str = "config";

/// The name of the ConfigMap the PotatoHead reads (`spec.configRef`), if any.
///
/// # Errors
/// [`ReconcileError::InvalidSpec`] when the object does not parse as a PotatoHead.
pub fn config_ref(parent_json: &str) -> Result<Option<String>, ReconcileError> {
    let parent = parse_parent(parent_json)?;
    Ok(parent.spec.and_then(|spec| spec.config_ref).map(|r| r.name))
}

/// The parts of a PotatoHead object this guest reads.
#[derive(Deserialize)]
struct PotatoHead {
    metadata: Metadata,
    spec: Option<PotatoHeadSpec>,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
}

/// Decides the children and status of one PotatoHead, with the default configuration.
///
/// # Errors
/// [`ReconcileError::InvalidSpec`] when the object does not parse as a PotatoHead or breaks a rule
/// of [`crate::validate`]; the message names the field.
pub fn reconcile(
    parent_json: &str,
    observed_children: &[String],
    finalizing: bool,
) -> Result<Desired, ReconcileError> {
    reconcile_configured(
        parent_json,
        observed_children,
        finalizing,
        &Config::default(),
        None,
    )
}

/// [`reconcile`] with the guest's configuration and, when the spec names one, the ConfigMap the
/// host read for it (`config_map`: the objects of [`CONFIG_MAP_KEY`], `None` when not given).
///
/// # Errors
/// As [`reconcile`]; [`ReconcileError::Missing`] while `spec.configRef`'s ConfigMap does not
/// exist.
pub fn reconcile_configured(
    parent_json: &str,
    observed_children: &[String],
    finalizing: bool,
    config: &Config,
    config_map: Option<&[String]>,
) -> Result<Desired, ReconcileError> {
    let parent = parse_parent(parent_json)?;
    let spec = parent.spec.ok_or_else(|| {
        ReconcileError::InvalidSpec("spec: missing; a PotatoHead needs spec.parts".into())
    })?;
    validate_name(&parent.metadata.name).map_err(|e| ReconcileError::InvalidSpec(e.0))?;
    validate_spec(&spec).map_err(|e| ReconcileError::InvalidSpec(e.0))?;
    let (shared_env, events) = match &spec.config_ref {
        None => (SharedEnv::new(), Vec::new()),
        Some(reference) => shared_env(&reference.name, config_map)?,
    };

    // Children the host sent are objects the API server returned; one that fails to parse would
    // be a host bug, and ignoring it only makes its part look not ready.
    let observed: Vec<ObservedChild> = observed_children
        .iter()
        .filter_map(|c| serde_json::from_str(c).ok())
        .collect();
    let status = status(&parent.metadata.name, &spec, &observed);
    // A parent being deleted keeps its children until garbage collection removes them; asking
    // for none makes that intent explicit (the host applies nothing for it anyway).
    let children = if finalizing {
        Vec::new()
    } else {
        desired_children(&parent.metadata.name, &spec, config, &shared_env)
    };
    Ok(Desired {
        children,
        status: Some(serde_json::to_value(status).expect("status serializes")),
        requeue_after_ms: None,
        events,
    })
}

/// The variables of the ConfigMap `name` among `config_map`: its `data` entries whose key is
/// a variable name, and a Warning Event naming the keys left out, if any (the same on every
/// reconcile, so the host counts it into one series rather than repeating it).
fn shared_env(
    name: &str,
    config_map: Option<&[String]>,
) -> Result<(SharedEnv, Vec<Event>), ReconcileError> {
    #[derive(Deserialize)]
    struct ConfigMap {
        #[serde(default)]
        data: SharedEnv,
    }
    let found = config_map
        .unwrap_or_default()
        .iter()
        .find_map(|text| serde_json::from_str::<ConfigMap>(text).ok());
    match found {
        Some(map) => {
            let (env, skipped): (SharedEnv, SharedEnv) = map
                .data
                .into_iter()
                .partition(|(key, _)| is_env_var_name(key));
            let events = if skipped.is_empty() {
                Vec::new()
            } else {
                let keys: Vec<&str> = skipped.keys().map(String::as_str).take(10).collect();
                vec![Event::warning(
                    "ConfigKeySkipped",
                    format!(
                        "ConfigMap {name}: {} of its keys are no environment variable names \
                         (letters, digits, '_', '-', '.', not starting with a digit) and were \
                         left out: {}",
                        skipped.len(),
                        keys.join(", ")
                    ),
                )]
            };
            Ok((env, events))
        }
        None => Err(ReconcileError::Missing(format!(
            "spec.configRef: the ConfigMap {name:?} does not exist in the PotatoHead's \
             namespace; nothing is changed until it does"
        ))),
    }
}

fn parse_parent(parent_json: &str) -> Result<PotatoHead, ReconcileError> {
    let mut deserializer = serde_json::Deserializer::from_str(parent_json);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        // serde_json appends "at line L column C" of the host's JSON text: noise to a user.
        let inner = e.inner().to_string();
        let reason = inner
            .rsplit_once(" at line ")
            .map_or(inner.as_str(), |(reason, _)| reason);
        ReconcileError::InvalidSpec(format!("{path}: {reason}"))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample(spec: Value) -> String {
        json!({
            "apiVersion": "podtato.example.com/v1alpha1",
            "kind": "PotatoHead",
            "metadata": { "name": "demo", "namespace": "default", "uid": "u1", "generation": 1 },
            "spec": spec,
        })
        .to_string()
    }

    fn invalid_message(spec: Value) -> String {
        match reconcile(&sample(spec), &[], false) {
            Err(ReconcileError::InvalidSpec(msg)) => msg,
            other => panic!("expected invalid spec, got {other:?}"),
        }
    }

    #[test]
    fn sample_spec_yields_thirteen_children_and_a_status() {
        let spec = json!({ "tag": "0.3.0", "parts": [
            {"name": "entry"}, {"name": "hat"}, {"name": "left-arm"},
            {"name": "right-arm"}, {"name": "left-leg"}, {"name": "right-leg"}
        ]});
        let desired = reconcile(&sample(spec), &[], false).unwrap();
        assert_eq!(desired.children.len(), 13);
        assert_eq!(desired.status.unwrap()["summary"], "0/6");
    }

    #[test]
    fn a_config_ref_is_asked_for_and_its_data_becomes_every_parts_env() {
        let parent = sample(json!({ "parts": [{"name": "hat"}], "configRef": {"name": "shared"} }));
        assert_eq!(config_ref(&parent).unwrap().as_deref(), Some("shared"));
        let missing =
            reconcile_configured(&parent, &[], false, &Config::default(), Some(&[])).unwrap_err();
        assert!(
            matches!(&missing, ReconcileError::Missing(m) if m.contains("\"shared\" does not exist")),
            "{missing:?}"
        );
        let map = json!({ "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "shared" },
            "data": { "GREETING": "hello", "not a name": "x" } })
        .to_string();
        let desired =
            reconcile_configured(&parent, &[], false, &Config::default(), Some(&[map])).unwrap();
        let env =
            desired.children[0]["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
        assert!(
            env.contains(r#"{"name":"GREETING","value":"hello"}"#),
            "{env}"
        );
        assert_eq!(desired.events.len(), 1);
        assert_eq!(desired.events[0].reason, "ConfigKeySkipped");
        assert!(
            desired.events[0].message.contains("left out: not a name"),
            "{:?}",
            desired.events
        );
        assert!(!env.contains("not a name"), "{env}");
        let plain = sample(json!({ "parts": [{"name": "hat"}] }));
        assert_eq!(config_ref(&plain).unwrap(), None);
    }

    #[test]
    fn tag_defaults_when_left_out() {
        let desired =
            reconcile(&sample(json!({ "parts": [{"name": "hat"}] })), &[], false).unwrap();
        let image = &desired.children[0]["spec"]["template"]["spec"]["containers"][0]["image"];
        assert_eq!(image, "ghcr.io/podtato-head/hat:0.3.0");
    }

    #[test]
    fn an_unknown_part_is_named_with_its_path() {
        let msg = invalid_message(json!({ "parts": [{"name": "hat"}, {"name": "nose"}] }));
        assert!(
            msg.starts_with("spec.parts[1].name: unknown variant `nose`"),
            "{msg}"
        );
    }

    #[test]
    fn a_wrongly_typed_field_is_named_with_its_path() {
        let msg = invalid_message(json!({ "parts": [{"name": "hat", "replicas": "three"}] }));
        assert!(
            msg.starts_with("spec.parts[0].replicas: invalid type"),
            "{msg}"
        );
        assert!(!msg.contains("line"), "{msg}");
    }

    #[test]
    fn a_missing_spec_or_parts_is_invalid() {
        let no_spec = json!({ "kind": "PotatoHead", "metadata": { "name": "demo" } }).to_string();
        assert!(
            matches!(reconcile(&no_spec, &[], false), Err(ReconcileError::InvalidSpec(m)) if m.starts_with("spec:"))
        );
        let msg = invalid_message(json!({ "tag": "1" }));
        assert!(msg.starts_with("spec: missing field `parts`"), "{msg}");
    }

    #[test]
    fn validation_errors_come_back_as_invalid_spec() {
        let msg = invalid_message(json!({ "parts": [{"name": "hat", "replicas": -2}] }));
        assert!(
            msg.starts_with("spec.parts[0].replicas: -2 is negative"),
            "{msg}"
        );
    }

    #[test]
    fn observed_deployments_feed_the_status() {
        let spec = json!({ "parts": [{"name": "hat"}] });
        let hat = json!({
            "kind": "Deployment",
            "metadata": { "name": "demo-hat", "generation": 1 },
            "spec": { "replicas": 1 },
            "status": { "observedGeneration": 1, "readyReplicas": 1 },
        })
        .to_string();
        let desired = reconcile(&sample(spec), &[hat], false).unwrap();
        let status = desired.status.unwrap();
        assert_eq!(status["summary"], "1/1");
        assert_eq!(status["parts"][0]["ready"], true);
    }

    #[test]
    fn a_finalizing_parent_asks_for_no_children() {
        let desired = reconcile(&sample(json!({ "parts": [{"name": "hat"}] })), &[], true).unwrap();
        assert!(desired.children.is_empty());
        assert!(desired.status.is_some());
    }
}
