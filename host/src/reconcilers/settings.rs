//! Per-guest settings: an optional `NAME.yaml` beside `NAME.wasm` (in a ConfigMap, one more key)
//! sets that guest's limits and allowed child kinds; what it leaves out comes from the host's
//! flags. YAML because the host reads it already (serde-saphyr) and so do the people writing
//! ConfigMaps. A file that cannot be used refuses that guest only, with the file, the key and the
//! reason.
//!
//! ```yaml
//! timeout: 500ms                 # --guest-timeout
//! memory-mib: 32                 # --guest-memory-mib
//! max-children: 200              # --guest-max-children
//! max-output-mib: 4              # --guest-max-output-mib
//! allowed-child-kinds:           # --allowed-child-kind; may only narrow the host's list
//!   - apps/v1/Deployment
//!   - v1/Service
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cluster::{KindAllowlist, display_gvk};
use crate::guest::GuestLimits;
use crate::guest::{GUEST_MAX_OUTPUT_MIB, GUEST_MEMORY_MIB, GUEST_TIMEOUT};

/// A guest's settings, its file's values over the host's.
#[derive(Clone, Debug)]
pub struct GuestSettings {
    pub limits: GuestLimits,
    pub allowed_child_kinds: KindAllowlist,
    /// The settings file read, if there was one.
    pub file: Option<PathBuf>,
}

/// Why a guest's settings file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The file as written; every key optional, no other key allowed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SettingsFile {
    timeout: Option<String>,
    memory_mib: Option<usize>,
    max_children: Option<usize>,
    max_output_mib: Option<usize>,
    allowed_child_kinds: Option<Vec<String>>,
}

/// Where `guest`'s settings live: `NAME.yaml` beside `NAME.wasm`.
pub fn settings_path(guest: &Path) -> PathBuf {
    guest.with_extension("yaml")
}

/// `guest`'s settings: its settings file over `limits` and `allowed` (the host's flags); the
/// host's alone when there is no file.
///
/// # Errors
/// A [`SettingsError`] naming the file, and the key when one is wrong.
pub fn load(
    guest: &Path,
    limits: GuestLimits,
    allowed: &KindAllowlist,
) -> Result<GuestSettings, SettingsError> {
    let path = settings_path(guest);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(GuestSettings {
                limits,
                allowed_child_kinds: allowed.clone(),
                file: None,
            });
        }
        Err(source) => return Err(SettingsError::Read { path, source }),
    };
    let invalid = |reason: String| SettingsError::Invalid {
        path: path.clone(),
        reason,
    };
    let file: SettingsFile = if text.trim().is_empty() {
        SettingsFile::default()
    } else {
        serde_saphyr::from_str(&text).map_err(|e| invalid(e.to_string()))?
    };
    let settings = apply(file, limits, allowed).map_err(invalid)?;
    Ok(GuestSettings {
        file: Some(path),
        ..settings
    })
}

fn apply(
    file: SettingsFile,
    mut limits: GuestLimits,
    allowed: &KindAllowlist,
) -> Result<GuestSettings, String> {
    if let Some(timeout) = file.timeout {
        let parsed = humantime::parse_duration(&timeout)
            .map_err(|e| format!("timeout: {timeout:?} is not a duration (e.g. 500ms, 2s): {e}"))?;
        if !GUEST_TIMEOUT.contains(&parsed) {
            return Err(format!(
                "timeout: must be between 1ms and 1h, not {timeout}"
            ));
        }
        limits.timeout = parsed;
    }
    if let Some(mib) = file.memory_mib {
        if !GUEST_MEMORY_MIB.contains(&mib) {
            return Err(format!("memory-mib: must be between 1 and 4096, not {mib}"));
        }
        limits.max_memory_bytes = mib << 20;
    }
    if let Some(children) = file.max_children {
        if children == 0 {
            return Err("max-children: must be at least 1".into());
        }
        limits.max_children = children;
    }
    if let Some(mib) = file.max_output_mib {
        if !GUEST_MAX_OUTPUT_MIB.contains(&mib) {
            return Err(format!(
                "max-output-mib: must be between 1 and 1024, not {mib}"
            ));
        }
        limits.max_output_bytes = mib << 20;
    }
    let allowed_child_kinds = match file.allowed_child_kinds {
        None => allowed.clone(),
        Some(entries) => {
            let own =
                KindAllowlist::parse(&entries).map_err(|e| format!("allowed-child-kinds: {e}"))?;
            if !allowed.0.is_empty()
                && let Some(wider) = own.0.iter().find(|kind| !allowed.0.contains(kind))
            {
                return Err(format!(
                    "allowed-child-kinds: {} is not allowed by the host's --allowed-child-kind; \
                     a guest's settings may only narrow that list",
                    display_gvk(wider)
                ));
            }
            own
        }
    };
    Ok(GuestSettings {
        limits,
        allowed_child_kinds,
        file: None,
    })
}

/// How a guest's settings read in a report: each limit and the allowed kinds.
pub fn summary(settings: &GuestSettings) -> String {
    let limits = &settings.limits;
    let kinds = if settings.allowed_child_kinds.0.is_empty() {
        "any namespaced kind".to_string()
    } else {
        settings
            .allowed_child_kinds
            .0
            .iter()
            .map(display_gvk)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "timeout {:?}, memory {} MiB, at most {} children and {} MiB of output; allowed child kinds: {kinds}",
        limits.timeout,
        limits.max_memory_bytes >> 20,
        limits.max_children,
        limits.max_output_bytes >> 20,
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn load_text(text: Option<&str>, allowed: &[&str]) -> Result<GuestSettings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let guest = dir.path().join("g.wasm");
        if let Some(text) = text {
            std::fs::write(settings_path(&guest), text).unwrap();
        }
        let allowed =
            KindAllowlist::parse(&allowed.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        load(&guest, GuestLimits::default(), &allowed)
    }

    fn error(text: &str, allowed: &[&str]) -> String {
        load_text(Some(text), allowed).unwrap_err().to_string()
    }

    #[test]
    fn without_a_file_the_host_flags_apply() {
        let settings = load_text(None, &["v1/ConfigMap"]).unwrap();
        assert_eq!(settings.limits.timeout, GuestLimits::default().timeout);
        assert_eq!(settings.allowed_child_kinds.0.len(), 1);
        assert_eq!(settings.file, None);
    }

    #[test]
    fn a_file_sets_what_it_names_and_keeps_the_rest() {
        let settings = load_text(
            Some("timeout: 500ms\nmemory-mib: 32\nallowed-child-kinds: [apps/v1/Deployment]\n"),
            &[],
        )
        .unwrap();
        assert_eq!(settings.limits.timeout, Duration::from_millis(500));
        assert_eq!(settings.limits.max_memory_bytes, 32 << 20);
        assert_eq!(
            settings.limits.max_children,
            GuestLimits::default().max_children
        );
        assert_eq!(settings.allowed_child_kinds.0[0].kind, "Deployment");
        assert!(settings.file.is_some());
        assert!(summary(&settings).contains("allowed child kinds: Deployment.apps/v1"));
    }

    #[test]
    fn bad_values_name_the_file_and_the_key() {
        for (text, expected) in [
            ("timeout: soon\n", "timeout: \"soon\" is not a duration"),
            ("timeout: 2h\n", "timeout: must be between 1ms and 1h"),
            ("memory-mib: 0\n", "memory-mib: must be between 1 and 4096"),
            ("max-children: 0\n", "max-children: must be at least 1"),
            (
                "max-output-mib: 2048\n",
                "max-output-mib: must be between 1 and 1024",
            ),
            (
                "allowed-child-kinds: [Deployment]\n",
                "allowed-child-kinds: \"Deployment\"",
            ),
            ("memory: 5\n", "unknown field"),
        ] {
            let message = error(text, &[]);
            assert!(message.contains("g.yaml: "), "{message}");
            assert!(message.contains(expected), "{text}: {message}");
        }
    }

    #[test]
    fn a_guest_may_narrow_the_hosts_allowed_kinds_but_not_widen_them() {
        let host = ["apps/v1/Deployment", "v1/Service"];
        let narrowed = load_text(Some("allowed-child-kinds: [v1/Service]\n"), &host).unwrap();
        assert_eq!(narrowed.allowed_child_kinds.0.len(), 1);
        let message = error("allowed-child-kinds: [v1/Secret]\n", &host);
        assert!(
            message.contains("Secret.v1 is not allowed by the host's"),
            "{message}"
        );
    }
}
