//! Checks a PodTatoHead before anything is rendered. Every message starts with the path of the
//! offending field, then says what is expected. Where the original operator went wrong quietly
//! (an empty image became the main part's image, a missing `replicaCount` scaled every part to 0)
//! this guest says so or picks the sensible default.

use crate::parts::{PARTS, Part};
use crate::spec::{PartSpec, PodTatoHeadSpec};

/// Service types a part may use.
pub const SERVICE_TYPES: [&str; 3] = ["ClusterIP", "NodePort", "LoadBalancer"];
/// Object names are `podtato-<name>`; a Service's name is a DNS label of at most 63 characters.
const NAME_PREFIX: &str = "podtato-";
const DNS_LABEL_MAX: usize = 63;

/// A reason the spec cannot be reconciled, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSpec(pub String);

fn invalid(path: impl std::fmt::Display, what: impl std::fmt::Display) -> InvalidSpec {
    InvalidSpec(format!("{path}: {what}"))
}

/// Checks the whole spec.
pub fn validate_spec(spec: &PodTatoHeadSpec) -> Result<(), InvalidSpec> {
    if let Some(replicas) = spec.replica_count
        && replicas < 0
    {
        return Err(invalid(
            "spec.replicaCount",
            format!("{replicas} is negative"),
        ));
    }
    for (index, env) in spec.env.iter().enumerate() {
        if env.name.is_empty() {
            return Err(invalid(format!("spec.env[{index}].name"), "empty"));
        }
        validate_env_source(index, env.value_from.as_ref())?;
    }
    let mut names: Vec<(&str, Part)> = Vec::new();
    for part in PARTS {
        let Some(spec) = part.of(spec) else { continue };
        validate_part(part, spec)?;
        if let Some((_, other)) = names.iter().find(|(name, _)| *name == spec.name()) {
            return Err(invalid(
                format!("spec.{}.name", part.field()),
                format!(
                    "{:?} is also spec.{}.name; each part needs its own name, since its \
                     objects are named podtato-<name>",
                    spec.name(),
                    other.field()
                ),
            ));
        }
        names.push((spec.name(), part));
    }
    Ok(())
}

fn validate_part(part: Part, spec: &PartSpec) -> Result<(), InvalidSpec> {
    let path = |field: &str| format!("spec.{}.{field}", part.field());
    if spec.image().trim().is_empty() {
        return Err(invalid(
            path("image"),
            "empty; every part needs its own container image",
        ));
    }
    validate_name(&path("name"), spec.name())?;
    if let Some(port) = spec.port
        && !(1..=65535).contains(&port)
    {
        return Err(invalid(
            path("port"),
            format!("{port} is not a port (1-65535)"),
        ));
    }
    if let Some(service_type) = &spec.service_type
        && !SERVICE_TYPES.contains(&service_type.as_str())
    {
        return Err(invalid(
            path("serviceType"),
            format!(
                "{service_type:?} is not one of {}",
                SERVICE_TYPES.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Whether this build lets `valueFrom.secretKeyRef` through (the `secret-env` feature).
const SECRET_ENV_ALLOWED: bool = cfg!(feature = "secret-env");

/// Refuses an environment variable read from a Secret, unless this build of the guest allows it.
/// The operator's service account may read Secrets a user of the PodTatoHead API may not; with
/// an image the user chooses, a `secretKeyRef` would hand any Secret of the namespace to that
/// user's container (a confused deputy). An admin who wants it builds the guest with the feature
/// on, which the guest's identity then says (see `lib.rs`).
fn validate_env_source(
    index: usize,
    source: Option<&serde_json::Value>,
) -> Result<(), InvalidSpec> {
    if SECRET_ENV_ALLOWED {
        return Ok(());
    }
    if source.is_some_and(|source| source.get("secretKeyRef").is_some()) {
        return Err(invalid(
            format!("spec.env[{index}].valueFrom.secretKeyRef"),
            "refused: a PodTatoHead may not read Secrets through the operator (whoever may \
             create one could read every Secret of its namespace with an image of their own); \
             give the value itself or a configMapKeyRef, or ask the admin for a build of this \
             guest with `--features secret-env`",
        ));
    }
    Ok(())
}

/// A part's name becomes `podtato-<name>`, a Service name: a DNS-1035 label.
fn validate_name(path: &str, name: &str) -> Result<(), InvalidSpec> {
    if name.is_empty() {
        return Err(invalid(
            path,
            "empty; the part's objects are named podtato-<name>",
        ));
    }
    let max = DNS_LABEL_MAX - NAME_PREFIX.len();
    if name.len() > max {
        return Err(invalid(
            path,
            format!(
                "{name:?} is {} characters; at most {max} are allowed",
                name.len()
            ),
        ));
    }
    let valid = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid || name.ends_with('-') {
        return Err(invalid(
            path,
            format!(
                "{name:?} must be lowercase letters, digits and '-', ending with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// The objects of the part named `name`.
pub fn object_name(name: &str) -> String {
    format!("{NAME_PREFIX}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(name: &str, image: &str) -> PartSpec {
        PartSpec {
            image: Some(image.into()),
            name: Some(name.into()),
            ..PartSpec::default()
        }
    }

    fn error(spec: PodTatoHeadSpec) -> String {
        validate_spec(&spec).unwrap_err().0
    }

    #[test]
    fn an_empty_image_names_the_field() {
        let spec = PodTatoHeadSpec {
            main: Some(part("main", "ghcr.io/podtato-head/podtato-main:v0.1.1")),
            left_arm: Some(part("left-arm", "")),
            ..PodTatoHeadSpec::default()
        };
        assert!(error(spec).starts_with("spec.leftArm.image: empty"));
    }

    #[test]
    fn names_ports_service_types_and_replicas_are_checked() {
        let with = |main: PartSpec| PodTatoHeadSpec {
            main: Some(main),
            ..PodTatoHeadSpec::default()
        };
        assert!(error(with(part("", "i"))).starts_with("spec.main.name: empty"));
        assert!(error(with(part("Main", "i"))).starts_with("spec.main.name: \"Main\""));
        assert!(error(with(part(&"a".repeat(56), "i"))).contains("at most 55"));
        let mut port = part("main", "i");
        port.port = Some(0);
        assert!(error(with(port)).starts_with("spec.main.port: 0 is not a port"));
        let mut service = part("main", "i");
        service.service_type = Some("ExternalName".into());
        assert!(error(with(service)).starts_with("spec.main.serviceType"));
        let negative = PodTatoHeadSpec {
            replica_count: Some(-1),
            ..PodTatoHeadSpec::default()
        };
        assert!(error(negative).starts_with("spec.replicaCount: -1 is negative"));
    }

    // Attack: a user who may create PodTatoHeads but not read Secrets reads one through the
    // operator's Deployment (`env[].valueFrom.secretKeyRef`, with an image of their own).
    #[test]
    #[cfg(not(feature = "secret-env"))]
    fn an_env_var_from_a_secret_is_refused_naming_the_field() {
        let spec = |source: serde_json::Value| PodTatoHeadSpec {
            main: Some(part("main", "i")),
            env: vec![
                crate::spec::EnvVar {
                    name: "OK".into(),
                    value: Some("plain".into()),
                    value_from: None,
                },
                crate::spec::EnvVar {
                    name: "X".into(),
                    value: None,
                    value_from: Some(source),
                },
            ],
            ..PodTatoHeadSpec::default()
        };
        let message = error(spec(serde_json::json!({
            "secretKeyRef": { "name": "db", "key": "password" }
        })));
        assert!(
            message.starts_with("spec.env[1].valueFrom.secretKeyRef: refused")
                && message.contains("--features secret-env"),
            "{message}"
        );
        for allowed in [
            serde_json::json!({ "configMapKeyRef": { "name": "c", "key": "k" } }),
            serde_json::json!({ "fieldRef": { "fieldPath": "metadata.name" } }),
        ] {
            assert!(validate_spec(&spec(allowed.clone())).is_ok(), "{allowed}");
        }
    }

    #[test]
    fn two_parts_with_one_name_are_refused() {
        let spec = PodTatoHeadSpec {
            main: Some(part("head", "a")),
            hats: Some(part("head", "b")),
            ..PodTatoHeadSpec::default()
        };
        let message = error(spec);
        assert!(
            message.starts_with("spec.hats.name: \"head\" is also spec.main.name"),
            "{message}"
        );
    }
}
