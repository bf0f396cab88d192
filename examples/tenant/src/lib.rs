//! The Tenant guest: a cluster-scoped platform API. For each Tenant, a Namespace of its name, a
//! RoleBinding of its admins to the admin role in it, and a ResourceQuota in it; the role and the
//! quota come from a cluster-wide ConfigMap of defaults (a related object), which the Tenant's
//! `spec.quota` may override key by key.
//!
//! The decisions are plain functions with native unit tests; at the bottom, `guest-kit` names
//! them to the contract (`Reconciler` and one `export_guest!` call).

use guest_kit::component::{
    Desired, Event, Manifest, Observed, ReconcileError, Reconciler, Requirement, kind,
};
use serde_json::{Map, Value, json};

/// The ConfigMap of defaults every Tenant reads.
pub const DEFAULTS_NAME: &str = "tenant-defaults";
/// Where it lives unless the guest's configuration says otherwise (`defaultsNamespace`).
pub const DEFAULTS_NAMESPACE: &str = "tenant-system";
/// The requirement's key.
const DEFAULTS_KEY: &str = "defaults";
/// The role bound when the defaults name none.
const DEFAULT_ADMIN_ROLE: &str = "admin";

/// The guest's configuration: `{"defaultsNamespace": "…"}`, or none.
///
/// # Errors
/// What is wrong with it, naming the field.
pub fn defaults_namespace(config: &str) -> Result<String, String> {
    let config: Value = serde_json::from_str(config).map_err(|e| format!("not JSON: {e}"))?;
    match &config {
        Value::Null => Ok(DEFAULTS_NAMESPACE.into()),
        Value::Object(fields) => {
            if let Some(unknown) = fields.keys().find(|k| *k != "defaultsNamespace") {
                return Err(format!(
                    "config.{unknown}: unknown field (the only one is defaultsNamespace)"
                ));
            }
            match fields.get("defaultsNamespace") {
                None => Ok(DEFAULTS_NAMESPACE.into()),
                Some(Value::String(ns)) if is_dns_label(ns) => Ok(ns.clone()),
                Some(other) => Err(format!(
                    "config.defaultsNamespace: {other} is not a namespace name"
                )),
            }
        }
        other => Err(format!("must be an object, not {other}")),
    }
}

/// What the guest wants for one Tenant.
#[derive(Debug, PartialEq)]
pub struct Decision {
    pub children: Vec<Value>,
    pub status: Value,
    /// Set when the defaults ConfigMap is missing (the built-in defaults were used).
    pub warning: Option<String>,
}

/// Decides the children and status of `tenant`, given the defaults ConfigMap (`None`: looked,
/// not found) read from `defaults_at`.
///
/// # Errors
/// The reason the spec is invalid, naming the field.
pub fn decide(
    tenant: &Value,
    defaults: Option<&Value>,
    defaults_at: &str,
) -> Result<Decision, String> {
    let name = tenant["metadata"]["name"].as_str().unwrap_or_default();
    if !is_dns_label(name) {
        return Err(format!(
            "metadata.name: {name:?} must be a DNS label (it names the tenant's namespace)"
        ));
    }
    let spec = &tenant["spec"];
    let mut admins: Vec<&str> = Vec::new();
    for (i, admin) in spec["admins"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let admin = admin
            .as_str()
            .filter(|a| !a.trim().is_empty())
            .ok_or_else(|| format!("spec.admins[{i}]: must be a user name"))?;
        if admins.contains(&admin) {
            return Err(format!("spec.admins[{i}]: {admin} is listed twice"));
        }
        admins.push(admin);
    }
    let data = defaults.map(|cm| &cm["data"]);
    let admin_role = data
        .and_then(|d| d["adminRole"].as_str())
        .unwrap_or(DEFAULT_ADMIN_ROLE);
    let mut hard = Map::new();
    if let Some(Value::Object(entries)) = data {
        for (key, value) in entries {
            if let (Some(resource), Some(value)) = (key.strip_prefix("quota."), value.as_str()) {
                hard.insert(resource.into(), json!(value));
            }
        }
    } else {
        hard.insert("pods".into(), json!("10"));
    }
    if let Some(overrides) = spec["quota"].as_object() {
        for (resource, value) in overrides {
            let value = value
                .as_str()
                .ok_or_else(|| format!("spec.quota.{resource}: must be a quantity string"))?;
            hard.insert(resource.clone(), json!(value));
        }
    }
    let labels = json!({ "examples.wasm-reconciler.io/tenant": name });
    let mut children = vec![
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": name, "labels": labels },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": { "name": "tenant-quota", "namespace": name, "labels": labels },
            "spec": { "hard": hard },
        }),
    ];
    if !admins.is_empty() {
        children.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": { "name": "tenant-admins", "namespace": name, "labels": labels },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": admin_role,
            },
            "subjects": admins.iter().map(|admin| json!({
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "User",
                "name": admin,
            })).collect::<Vec<_>>(),
        }));
    }
    let source = format!("{defaults_at}/{DEFAULTS_NAME}");
    let warning = defaults.is_none().then(|| {
        format!("the ConfigMap {source} of tenant defaults does not exist; built-in defaults used")
    });
    Ok(Decision {
        children,
        status: json!({
            "namespace": name,
            "admins": admins.len(),
            "defaults": if defaults.is_some() { source } else { "built-in".into() },
        }),
        warning,
    })
}

fn is_dns_label(text: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    text.len() <= 63
        && edge(text.chars().next())
        && edge(text.chars().last())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The guest: [`decide`] over the contract's types.
pub struct Tenant;

impl Reconciler for Tenant {
    fn describe() -> Manifest {
        Manifest::new(
            "tenant",
            env!("CARGO_PKG_VERSION"),
            kind("examples.wasm-reconciler.io", "v1alpha1", "Tenant"),
        )
        .with_children([
            kind("", "v1", "Namespace"),
            kind("", "v1", "ResourceQuota"),
            kind("rbac.authorization.k8s.io", "v1", "RoleBinding"),
        ])
        .with_related([kind("", "v1", "ConfigMap")])
    }

    fn configure(config: &str) -> Result<(), String> {
        defaults_namespace(config).map(drop)
    }

    fn requirements(_parent: &str, config: &str) -> Result<Vec<Requirement>, ReconcileError> {
        let namespace = defaults_namespace(config).map_err(ReconcileError::Transient)?;
        let mut defaults = Requirement::names(
            DEFAULTS_KEY,
            kind("", "v1", "ConfigMap"),
            [DEFAULTS_NAME.to_string()],
        );
        // A cluster-scoped parent names the namespace of what it reads by name.
        defaults.namespace = Some(namespace);
        Ok(vec![defaults])
    }

    fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
        let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or_default();
        let defaults_at =
            defaults_namespace(&observed.config).map_err(ReconcileError::Transient)?;
        let defaults = observed
            .related(DEFAULTS_KEY)
            .and_then(|objects| objects.first())
            .map(|text| parse(text));
        let decision = decide(&parse(&observed.parent), defaults.as_ref(), &defaults_at)
            .map_err(ReconcileError::InvalidSpec)?;
        Ok(Desired {
            children: decision.children.iter().map(Value::to_string).collect(),
            status: Some(decision.status.to_string()),
            requeue_after_ms: None,
            events: decision
                .warning
                .map(|message| Event::warning("DefaultsMissing", message))
                .into_iter()
                .collect(),
        })
    }
}

guest_kit::export_guest!(Tenant);

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(spec: Value) -> Value {
        json!({ "metadata": { "name": "team-a" }, "spec": spec })
    }

    fn defaults() -> Value {
        json!({ "data": { "adminRole": "edit", "quota.pods": "20", "quota.requests.cpu": "4" } })
    }

    #[test]
    fn a_namespace_a_quota_and_a_binding_from_the_defaults() {
        let spec = json!({ "admins": ["alice"], "quota": { "pods": "50" } });
        let decision = decide(&tenant(spec), Some(&defaults()), "tenant-system").unwrap();
        let [namespace, quota, binding] = &decision.children[..] else {
            panic!("three children: {:?}", decision.children);
        };
        assert_eq!(namespace["metadata"]["name"], "team-a");
        assert!(namespace["metadata"].get("namespace").is_none());
        assert_eq!(quota["metadata"]["namespace"], "team-a");
        assert_eq!(
            quota["spec"]["hard"],
            json!({ "pods": "50", "requests.cpu": "4" })
        );
        assert_eq!(binding["roleRef"]["name"], "edit");
        assert_eq!(binding["subjects"][0]["name"], "alice");
        assert_eq!(decision.status["defaults"], "tenant-system/tenant-defaults");
        assert_eq!(decision.warning, None);
    }

    #[test]
    fn without_defaults_or_admins_built_in_defaults_and_no_binding() {
        let decision = decide(&tenant(json!({})), None, "tenant-system").unwrap();
        assert_eq!(decision.children.len(), 2, "no admins, no RoleBinding");
        assert_eq!(
            decision.children[1]["spec"]["hard"],
            json!({ "pods": "10" })
        );
        assert_eq!(decision.status["defaults"], "built-in");
        assert!(decision.warning.unwrap().contains("does not exist"));
    }

    #[test]
    fn invalid_specs_and_configurations_name_the_field() {
        let reason = |spec| decide(&tenant(spec), None, "x").unwrap_err();
        assert_eq!(
            reason(json!({ "admins": ["a", "a"] })),
            "spec.admins[1]: a is listed twice"
        );
        assert!(reason(json!({ "quota": { "pods": 5 } })).starts_with("spec.quota.pods"));
        let upper = json!({ "metadata": { "name": "Team" }, "spec": {} });
        assert!(
            decide(&upper, None, "x")
                .unwrap_err()
                .starts_with("metadata.name")
        );
        assert_eq!(defaults_namespace("null").unwrap(), DEFAULTS_NAMESPACE);
        assert_eq!(
            defaults_namespace(r#"{"defaultsNamespace":"platform"}"#).unwrap(),
            "platform"
        );
        assert!(
            defaults_namespace(r#"{"namespace":"x"}"#)
                .unwrap_err()
                .starts_with("config.namespace")
        );
    }
}
