//! The default guest's configuration (`config` in its settings file, contract 0.2): where the
//! parts' images come from, so one `.wasm` serves clusters that pull through a registry mirror.
//!
//! ```yaml
//! config:
//!   registry: mirror.example.com/podtato-head   # instead of ghcr.io/podtato-head
//! ```

use serde::Deserialize;

/// Where images come from when neither the host nor the admin says otherwise.
pub const DEFAULT_REGISTRY: &str = "ghcr.io/podtato-head";
/// Longest `registry` accepted: an image reference is at most 255 characters in all.
const MAX_REGISTRY_BYTES: usize = 200;

/// The guest's configuration; every key optional, no other key allowed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// Registry and path of the parts' images (`<registry>/<part>:<tag>`), without a trailing
    /// `/`; a part's own `image` still wins.
    pub registry: Option<String>,
}

impl Config {
    /// The registry images are pulled from.
    pub fn registry(&self) -> &str {
        self.registry.as_deref().unwrap_or(DEFAULT_REGISTRY)
    }
}

/// The configuration in `text` (JSON; `null` is the default), checked.
///
/// # Errors
/// What is wrong, naming the key and what is expected: the message the admin reads.
pub fn parse(text: &str) -> Result<Config, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("config: not JSON: {e}"))?;
    if value.is_null() {
        return Ok(Config::default());
    }
    if !value.is_object() {
        return Err(format!(
            "config: {value} is not an object; expected an object with an optional `registry` \
             (e.g. {{registry: mirror.example.com/podtato-head}})"
        ));
    }
    let config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." {
            "config".to_owned()
        } else {
            format!("config.{path}")
        };
        format!(
            "{key}: {}; expected an object with an optional `registry` (e.g. {{registry: mirror.example.com/podtato-head}})",
            e.inner()
        )
    })?;
    if let Some(registry) = &config.registry {
        check_registry(registry)?;
    }
    Ok(config)
}

fn check_registry(registry: &str) -> Result<(), String> {
    let problem = if registry.is_empty() {
        Some("is empty")
    } else if registry.len() > MAX_REGISTRY_BYTES {
        Some("is longer than 200 bytes")
    } else if registry.contains("://") {
        Some("has a scheme; image references have none")
    } else if registry.ends_with('/') {
        Some("ends with `/`")
    } else if !registry
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | ':'))
    {
        Some("has a character image references do not allow")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(format!(
            "config.registry: {registry:?} {problem}; expected a registry host and path such as \
             mirror.example.com/podtato-head"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_is_the_default_registry() {
        assert_eq!(parse("null").unwrap().registry(), DEFAULT_REGISTRY);
        assert_eq!(parse("{}").unwrap().registry(), DEFAULT_REGISTRY);
    }

    #[test]
    fn a_registry_is_taken() {
        let config = parse(r#"{"registry":"mirror.example.com:5000/podtato"}"#).unwrap();
        assert_eq!(config.registry(), "mirror.example.com:5000/podtato");
    }

    #[test]
    fn bad_configurations_name_the_key_and_what_is_expected() {
        for (text, expected) in [
            (r#"{"registry":""}"#, "config.registry: \"\" is empty"),
            (r#"{"registry":"https://x.io"}"#, "has a scheme"),
            (r#"{"registry":"x.io/"}"#, "ends with `/`"),
            (r#"{"registry":"x io"}"#, "has a character"),
            (r#"{"registry":5}"#, "config.registry: invalid type"),
            (r#"{"mirror":"x.io"}"#, "unknown field `mirror`"),
            ("[1]", "config: [1] is not an object"),
        ] {
            let message = parse(text).unwrap_err();
            assert!(message.contains(expected), "{text}: {message}");
        }
    }
}
