//! Checks a PotatoHead before anything is rendered. Every message starts with the path of the
//! offending field so a user can find it, then says what is expected.
//!
//! The CRD schema rejects most of these already; the guest checks again because it also runs
//! offline (`reconciler-host render`) and on clusters whose CRD is older than the guest.

use std::collections::HashSet;

use crate::spec::{PartSpec, PotatoHeadSpec};

/// Environment variables the guest sets itself; a user value would clash with them.
pub const RESERVED_ENV: [&str; 2] = ["PODTATO_PORT", "SERVICES_CONFIG_FILE_PATH"];

/// Longest child-name suffix (`-service-discovery`); object names must stay within a DNS label (63 characters).
const LONGEST_SUFFIX: usize = "-service-discovery".len();
const DNS_LABEL_MAX: usize = 63;

/// A reason the spec cannot be reconciled, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSpec(pub String);

impl std::fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn invalid(path: impl std::fmt::Display, what: impl std::fmt::Display) -> InvalidSpec {
    InvalidSpec(format!("{path}: {what}"))
}

/// Checks the parent's name: children are named `<name>-<part>` and Services need DNS-1035 labels.
pub fn validate_name(name: &str) -> Result<(), InvalidSpec> {
    if name.len() + LONGEST_SUFFIX > DNS_LABEL_MAX {
        return Err(invalid(
            "metadata.name",
            format!(
                "{name:?} is {} characters; at most {} are allowed so that child names \
                 like <name>-service-discovery fit in 63 characters",
                name.len(),
                DNS_LABEL_MAX - LONGEST_SUFFIX
            ),
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(invalid(
            "metadata.name",
            format!(
                "{name:?} must start with a lowercase letter, because Services are named after it"
            ),
        ));
    }
    // A PotatoHead name may hold dots (it is a DNS subdomain), a Service name may not (a DNS
    // label): without this check such a parent got its Deployments but no Services.
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(invalid(
            "metadata.name",
            format!(
                "{name:?} may only hold lowercase letters, digits and '-', because Services are \
                 named after it (a dot is valid in a PotatoHead name but not in a Service name)"
            ),
        ));
    }
    Ok(())
}

/// Checks the whole spec.
pub fn validate_spec(spec: &PotatoHeadSpec) -> Result<(), InvalidSpec> {
    validate_tag("spec.tag", &spec.tag)?;
    let mut seen = HashSet::new();
    for (i, part) in spec.parts.iter().enumerate() {
        let path = format!("spec.parts[{i}]");
        if !seen.insert(part.name) {
            return Err(invalid(
                format!("{path}.name"),
                format!(
                    "part {:?} is listed twice; list each part at most once",
                    part.name.as_str()
                ),
            ));
        }
        validate_part(&path, part)?;
    }
    Ok(())
}

fn validate_part(path: &str, part: &PartSpec) -> Result<(), InvalidSpec> {
    if let Some(image) = &part.image {
        if image.trim().is_empty() {
            return Err(invalid(
                format!("{path}.image"),
                "must not be empty; leave it out to use ghcr.io/podtato-head/<part>:<tag>",
            ));
        }
        if image.chars().any(char::is_whitespace) {
            return Err(invalid(
                format!("{path}.image"),
                format!("{image:?} contains whitespace"),
            ));
        }
    }
    if part.replicas < 0 {
        return Err(invalid(
            format!("{path}.replicas"),
            format!("{} is negative; use 0 or more", part.replicas),
        ));
    }
    if let Some(port) = part.port
        && !(1..=65535).contains(&port)
    {
        return Err(invalid(
            format!("{path}.port"),
            format!("{port} is not a valid port; use 1 to 65535"),
        ));
    }
    let mut names = HashSet::new();
    for (j, var) in part.env.iter().enumerate() {
        let var_path = format!("{path}.env[{j}].name");
        if !is_env_var_name(&var.name) {
            return Err(invalid(
                var_path,
                format!(
                    "{:?} is not a valid environment variable name (letters, digits, '_', '-', '.', \
                     not starting with a digit)",
                    var.name
                ),
            ));
        }
        if RESERVED_ENV.contains(&var.name.as_str()) {
            return Err(invalid(
                var_path,
                format!("{} is set by the operator itself", var.name),
            ));
        }
        if !names.insert(var.name.as_str()) {
            return Err(invalid(var_path, format!("{} is listed twice", var.name)));
        }
    }
    Ok(())
}

/// An image tag as the OCI distribution spec allows: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn validate_tag(path: &str, tag: &str) -> Result<(), InvalidSpec> {
    let valid = !tag.is_empty()
        && tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(invalid(
            path,
            format!(
                "{tag:?} is not a valid image tag (letters, digits, '_', '.', '-'; at most 128)"
            ),
        ))
    }
}

/// Kubernetes' rule for environment variable names (`validation.IsEnvVarName`).
pub fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parts::Part;
    use crate::spec::EnvVar;

    fn spec_with(part: PartSpec) -> PotatoHeadSpec {
        PotatoHeadSpec {
            config_ref: None,
            tag: "0.3.0".into(),
            parts: vec![part],
        }
    }

    fn hat() -> PartSpec {
        PartSpec {
            name: Part::Hat,
            image: None,
            replicas: 1,
            env: vec![],
            service_type: None,
            port: None,
        }
    }

    fn error_of(spec: PotatoHeadSpec) -> String {
        validate_spec(&spec).unwrap_err().0
    }

    #[test]
    fn a_minimal_spec_is_valid() {
        assert_eq!(validate_spec(&spec_with(hat())), Ok(()));
    }

    #[test]
    fn negative_replicas_name_the_field() {
        let msg = error_of(spec_with(PartSpec {
            replicas: -1,
            ..hat()
        }));
        assert!(
            msg.starts_with("spec.parts[0].replicas: -1 is negative"),
            "{msg}"
        );
    }

    #[test]
    fn zero_replicas_are_allowed() {
        assert_eq!(
            validate_spec(&spec_with(PartSpec {
                replicas: 0,
                ..hat()
            })),
            Ok(())
        );
    }

    #[test]
    fn out_of_range_ports_name_the_field() {
        for port in [0, 65536, -80] {
            let msg = error_of(spec_with(PartSpec {
                port: Some(port),
                ..hat()
            }));
            assert!(msg.starts_with("spec.parts[0].port:"), "{msg}");
        }
    }

    #[test]
    fn empty_image_is_rejected() {
        let msg = error_of(spec_with(PartSpec {
            image: Some(" ".into()),
            ..hat()
        }));
        assert!(
            msg.starts_with("spec.parts[0].image: must not be empty"),
            "{msg}"
        );
    }

    #[test]
    fn invalid_env_var_names_are_rejected() {
        for bad in ["", "1ABC", "HAS SPACE", "A=B"] {
            let part = PartSpec {
                env: vec![EnvVar {
                    name: bad.into(),
                    value: "x".into(),
                }],
                ..hat()
            };
            let msg = error_of(spec_with(part));
            assert!(
                msg.starts_with("spec.parts[0].env[0].name:"),
                "{bad:?}: {msg}"
            );
        }
    }

    #[test]
    fn reserved_and_duplicate_env_vars_are_rejected() {
        let reserved = PartSpec {
            env: vec![EnvVar {
                name: "PODTATO_PORT".into(),
                value: "1".into(),
            }],
            ..hat()
        };
        assert!(error_of(spec_with(reserved)).contains("set by the operator"));
        let twice = PartSpec {
            env: vec![
                EnvVar {
                    name: "A".into(),
                    value: "1".into(),
                },
                EnvVar {
                    name: "A".into(),
                    value: "2".into(),
                },
            ],
            ..hat()
        };
        assert!(
            error_of(spec_with(twice)).starts_with("spec.parts[0].env[1].name: A is listed twice")
        );
    }

    #[test]
    fn a_part_listed_twice_is_rejected() {
        let spec = PotatoHeadSpec {
            config_ref: None,
            tag: "1".into(),
            parts: vec![hat(), hat()],
        };
        assert!(error_of(spec).starts_with("spec.parts[1].name: part \"hat\" is listed twice"));
    }

    #[test]
    fn bad_tags_are_rejected() {
        for tag in ["", "-x", "a b", "x:y"] {
            let spec = PotatoHeadSpec {
                config_ref: None,
                tag: tag.into(),
                parts: vec![],
            };
            assert!(error_of(spec).starts_with("spec.tag:"), "{tag:?}");
        }
    }

    #[test]
    fn names_that_cannot_name_services_are_rejected() {
        assert!(validate_name("demo").is_ok());
        assert!(
            validate_name("1demo")
                .unwrap_err()
                .0
                .starts_with("metadata.name:")
        );
        assert!(validate_name(&"a".repeat(46)).is_err());
        assert!(validate_name(&"a".repeat(45)).is_ok());
        for dotted in ["demo.v2", "my.app"] {
            let error = validate_name(dotted).unwrap_err().0;
            assert!(error.contains("a dot is valid"), "{error}");
        }
        assert!(validate_name("demo-2").is_ok());
    }
}
