//! Per-guest settings: an optional `NAME.yaml` beside `NAME.wasm` (in a ConfigMap, one more key)
//! sets that guest's limits and allowed child kinds; what it leaves out comes from the host's
//! flags. YAML because the host reads it already (serde-saphyr) and so do the people writing
//! ConfigMaps. A file that cannot be used refuses that guest only, with the file, the key and the
//! reason.
//!
//! # Guarantees
//! Settings only ever **narrow** what the admin's flags allow: each limit is at most its flag's
//! value (the timeout at most `--guest-timeout-ceiling`, which defaults to `--guest-timeout`), and
//! the allowed child kinds are a subset of `--allowed-child-kind` (`[]` allows none, never "any").
//! Since a call's memory is at most `--guest-memory-mib`, which the flags keep within
//! `--guest-memory-budget-mib`, no guest's call can wait for more memory than the budget holds.
//!
//! ```yaml
//! timeout: 500ms                 # at most --guest-timeout-ceiling
//! memory-mib: 32                 # at most --guest-memory-mib
//! max-children: 200              # at most --guest-max-children
//! max-output-mib: 4              # at most --guest-max-output-mib
//! max-object-kib: 256            # at most --guest-max-object-kib
//! allowed-child-kinds:           # within --allowed-child-kind
//!   - apps/v1/Deployment
//!   - v1/Service
//! allowed-related-kinds:         # within --allowed-related-kind
//!   - v1/ConfigMap
//! config:                        # any YAML/JSON value, given to the guest (contract 0.2)
//!   registry: mirror.example.com/podtato-head
//! ```
//!
//! `config` is not a limit: it is the guest's own input, which the guest checks (`configure`)
//! and refuses with its own message. A change of `config` alone is a hot swap of the guest (the
//! old configuration keeps serving when the new one is refused); a change of anything else
//! restarts the guest's reconciler with the new settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::allowlist::KindAllowlist;
use super::rules::HostRules;
use crate::gvk::display_gvk;
use crate::regular_file::{self, FileError};
use crate::sandbox::GuestLimits;

/// The largest settings file read: a few lines of YAML, so anything larger is not one.
pub const SETTINGS_MAX_BYTES: u64 = 64 << 10;

/// A guest's settings, its file's values over the host's.
#[derive(Clone, Debug)]
pub struct GuestSettings {
    pub limits: GuestLimits,
    pub allowed_child_kinds: KindAllowlist,
    pub allowed_related_kinds: KindAllowlist,
    /// The guest's configuration from the file's `config` key, as compact JSON text; `None`
    /// when the file gives none.
    pub config: Option<String>,
    /// The settings file read, if there was one.
    pub file: Option<PathBuf>,
}

impl GuestSettings {
    /// Whether `other` differs from these settings in nothing but the configuration: a change a
    /// hot swap can take, since every limit and allowed kind stays.
    pub fn same_but_config(&self, other: &GuestSettings) -> bool {
        self.limits == other.limits
            && self.allowed_child_kinds == other.allowed_child_kinds
            && self.allowed_related_kinds == other.allowed_related_kinds
            && self.file == other.file
    }
}

/// Why a guest's settings file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file exists but cannot be read (permissions, not a regular file, too large).
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: FileError,
    },
    /// The file is not YAML of the settings' shape, or a value is malformed.
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// A limit above what the host's flag allows: settings may only narrow the flags.
    #[error(
        "{path}: {key}: {value} is more than the host allows ({flag} is {limit}); a guest's \
         settings may only narrow the host's flags{hint}"
    )]
    AboveHost {
        path: PathBuf,
        key: &'static str,
        value: String,
        flag: &'static str,
        limit: String,
        /// What the admin may do to allow it, when there is something.
        hint: &'static str,
    },
    /// A configuration given twice: in the settings file and with `--guest-config`.
    #[error(
        "{path} has a `config`, and --guest-config gives one too; give the guest's configuration \
         in one place"
    )]
    ConfigTwice { path: PathBuf },
    /// A child (or related) kind the host's `--allowed-child-kind` (or
    /// `--allowed-related-kind`) does not allow.
    #[error(
        "{path}: {key}: {kind} is not allowed by the host's {flag} ({allowed}); a guest's \
         settings may only narrow that list"
    )]
    KindNotAllowedByHost {
        path: PathBuf,
        key: &'static str,
        flag: &'static str,
        kind: String,
        allowed: String,
    },
}

/// The file as written; every key optional, no other key allowed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SettingsFile {
    timeout: Option<String>,
    memory_mib: Option<usize>,
    max_children: Option<usize>,
    max_output_mib: Option<usize>,
    max_object_kib: Option<usize>,
    allowed_child_kinds: Option<Vec<String>>,
    allowed_related_kinds: Option<Vec<String>>,
    config: Option<serde_json::Value>,
}

/// Where `guest`'s settings live: `NAME.yaml` beside `NAME.wasm`.
pub fn settings_path(guest: &Path) -> PathBuf {
    guest.with_extension("yaml")
}

/// The text of `guest`'s settings file, `None` when there is none (or it cannot be read, which
/// [`load`] then reports). Never waits on a FIFO, never reads more than [`SETTINGS_MAX_BYTES`].
pub fn settings_text(guest: &Path) -> Option<String> {
    regular_file::read_text(&settings_path(guest), SETTINGS_MAX_BYTES, "a settings file").ok()
}

/// `guest`'s settings: its settings file within `rules` (the host's flags); the host's alone
/// when there is no file.
///
/// # Errors
/// A [`SettingsError`] naming the file, and the key when one is wrong.
pub fn load(guest: &Path, rules: &HostRules) -> Result<GuestSettings, SettingsError> {
    let path = settings_path(guest);
    let text = match regular_file::read_text(&path, SETTINGS_MAX_BYTES, "a settings file") {
        Ok(text) => text,
        Err(FileError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(GuestSettings {
                limits: rules.limits,
                allowed_child_kinds: rules.allowed_child_kinds.clone(),
                allowed_related_kinds: rules.allowed_related_kinds.clone(),
                config: None,
                file: None,
            });
        }
        Err(source) => return Err(SettingsError::Read { path, source }),
    };
    let file: SettingsFile = if text.trim().is_empty() {
        SettingsFile::default()
    } else {
        serde_saphyr::from_str(&text).map_err(|e| SettingsError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?
    };
    let settings = apply(file, rules, &path)?;
    Ok(GuestSettings {
        file: Some(path),
        ..settings
    })
}

fn apply(
    file: SettingsFile,
    rules: &HostRules,
    path: &Path,
) -> Result<GuestSettings, SettingsError> {
    let mut limits = rules.limits;
    if let Some(timeout) = file.timeout {
        limits.timeout = narrow_timeout(&timeout, rules, path)?;
    }
    let flags = rules.limits;
    if let Some(mib) = narrow(
        path,
        "memory-mib",
        file.memory_mib,
        "--guest-memory-mib",
        flags.max_memory_bytes >> 20,
    )? {
        limits.max_memory_bytes = mib << 20;
    }
    if let Some(count) = narrow(
        path,
        "max-children",
        file.max_children,
        "--guest-max-children",
        flags.max_children,
    )? {
        limits.max_children = count;
    }
    if let Some(mib) = narrow(
        path,
        "max-output-mib",
        file.max_output_mib,
        "--guest-max-output-mib",
        flags.max_output_bytes >> 20,
    )? {
        limits.max_output_bytes = mib << 20;
    }
    if let Some(kib) = narrow(
        path,
        "max-object-kib",
        file.max_object_kib,
        "--guest-max-object-kib",
        flags.max_object_bytes >> 10,
    )? {
        limits.max_object_bytes = kib << 10;
    }
    let allowed_child_kinds = narrow_kinds(
        path,
        file.allowed_child_kinds,
        &rules.allowed_child_kinds,
        ("allowed-child-kinds", "--allowed-child-kind"),
    )?;
    let allowed_related_kinds = narrow_kinds(
        path,
        file.allowed_related_kinds,
        &rules.allowed_related_kinds,
        ("allowed-related-kinds", "--allowed-related-kind"),
    )?;
    // `config: null` is no configuration, as leaving the key out is.
    let config = file
        .config
        .filter(|value| !value.is_null())
        .map(|value| value.to_string());
    Ok(GuestSettings {
        limits,
        allowed_child_kinds,
        allowed_related_kinds,
        config,
        file: None,
    })
}

/// The file's list for `key` within the host's list of `flag`.
fn narrow_kinds(
    path: &Path,
    entries: Option<Vec<String>>,
    host: &KindAllowlist,
    (key, flag): (&'static str, &'static str),
) -> Result<KindAllowlist, SettingsError> {
    let Some(entries) = entries else {
        return Ok(host.clone());
    };
    let own = KindAllowlist::parse(&entries).map_err(|e| invalid(path, format!("{key}: {e}")))?;
    host.narrowed_to(own)
        .map_err(|wider| SettingsError::KindNotAllowedByHost {
            path: path.to_path_buf(),
            key,
            flag,
            kind: display_gvk(&wider),
            allowed: host.describe(),
        })
}

/// The file's `value` for `key`: at least 1, and at most `flag`'s value (in the key's unit).
fn narrow(
    path: &Path,
    key: &'static str,
    value: Option<usize>,
    flag: &'static str,
    flag_value: usize,
) -> Result<Option<usize>, SettingsError> {
    match value {
        Some(0) => Err(invalid(path, format!("{key}: must be at least 1"))),
        Some(value) if value > flag_value => Err(SettingsError::AboveHost {
            path: path.to_path_buf(),
            key,
            value: value.to_string(),
            flag,
            limit: flag_value.to_string(),
            hint: "",
        }),
        value => Ok(value),
    }
}

/// The file's `timeout`, at most `--guest-timeout-ceiling`.
fn narrow_timeout(
    timeout: &str,
    rules: &HostRules,
    path: &Path,
) -> Result<Duration, SettingsError> {
    let parsed = humantime::parse_duration(timeout).map_err(|e| {
        invalid(
            path,
            format!("timeout: {timeout:?} is not a duration (e.g. 500ms, 2s): {e}"),
        )
    })?;
    if parsed < Duration::from_millis(1) {
        return Err(invalid(
            path,
            format!("timeout: must be at least 1ms, not {timeout}"),
        ));
    }
    if parsed > rules.timeout_ceiling {
        return Err(SettingsError::AboveHost {
            path: path.to_path_buf(),
            key: "timeout",
            value: timeout.to_owned(),
            flag: "--guest-timeout-ceiling",
            limit: format!("{:?}", rules.timeout_ceiling),
            hint: "; start the host with a higher --guest-timeout-ceiling to allow it",
        });
    }
    Ok(parsed)
}

fn invalid(path: &Path, reason: String) -> SettingsError {
    SettingsError::Invalid {
        path: path.to_path_buf(),
        reason,
    }
}

/// How a guest's settings read in a report: each limit and the allowed kinds.
pub fn summary(settings: &GuestSettings) -> String {
    let limits = &settings.limits;
    format!(
        "timeout {:?}, memory {} MiB, at most {} children and {} MiB of output ({} KiB per object); allowed child kinds: {}; allowed related kinds: {}",
        limits.timeout,
        limits.max_memory_bytes >> 20,
        limits.max_children,
        limits.max_output_bytes >> 20,
        limits.max_object_bytes >> 10,
        settings.allowed_child_kinds.describe(),
        describe_related(&settings.allowed_related_kinds),
    )
}

/// How the allowed related kinds read: `Any` allows every kind but Secrets.
pub fn describe_related(allowed: &KindAllowlist) -> String {
    match allowed {
        KindAllowlist::Any => "any kind but Secrets".to_owned(),
        only => only.describe(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rules(allowed: &[&str]) -> HostRules {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        HostRules {
            allowed_child_kinds: KindAllowlist::from_flag(&allowed).unwrap(),
            ..HostRules::default()
        }
    }

    fn load_text(text: Option<&str>, rules: &HostRules) -> Result<GuestSettings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let guest = dir.path().join("g.wasm");
        if let Some(text) = text {
            std::fs::write(settings_path(&guest), text).unwrap();
        }
        load(&guest, rules)
    }

    fn error(text: &str, allowed: &[&str]) -> String {
        load_text(Some(text), &rules(allowed))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn without_a_file_the_host_flags_apply() {
        let settings = load_text(None, &rules(&["v1/ConfigMap"])).unwrap();
        assert_eq!(settings.limits.timeout, GuestLimits::default().timeout);
        assert_eq!(
            settings.allowed_child_kinds,
            rules(&["v1/ConfigMap"]).allowed_child_kinds
        );
        assert_eq!(settings.file, None);
    }

    #[test]
    fn a_file_sets_what_it_names_and_keeps_the_rest() {
        let settings = load_text(
            Some(
                "timeout: 500ms\nmemory-mib: 32\nallowed-child-kinds: [apps/v1/Deployment]\n\
                 allowed-related-kinds: [v1/ConfigMap]\n",
            ),
            &rules(&[]),
        )
        .unwrap();
        assert_eq!(settings.limits.timeout, Duration::from_millis(500));
        assert_eq!(settings.limits.max_memory_bytes, 32 << 20);
        assert_eq!(
            settings.limits.max_children,
            GuestLimits::default().max_children
        );
        assert!(
            settings
                .allowed_child_kinds
                .allows(&kube::api::GroupVersionKind::gvk(
                    "apps",
                    "v1",
                    "Deployment"
                ))
        );
        assert_eq!(settings.allowed_related_kinds.describe(), "ConfigMap.v1");
        assert!(settings.file.is_some());
        assert!(summary(&settings).contains("allowed child kinds: Deployment.apps/v1"));
    }

    #[test]
    fn bad_values_name_the_file_and_the_key() {
        for (text, expected) in [
            ("timeout: soon\n", "timeout: \"soon\" is not a duration"),
            ("timeout: 0s\n", "timeout: must be at least 1ms"),
            ("memory-mib: 0\n", "memory-mib: must be at least 1"),
            ("max-children: 0\n", "max-children: must be at least 1"),
            ("max-output-mib: 0\n", "max-output-mib: must be at least 1"),
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

    // Attack: a settings file that raises its guest's limits above the admin's flags (a call
    // waiting for more memory than the budget holds stalled every guest of the host).
    #[test]
    fn settings_may_not_raise_a_limit_above_its_flag() {
        for (text, expected) in [
            (
                "memory-mib: 300\n",
                "memory-mib: 300 is more than the host allows (--guest-memory-mib is 64)",
            ),
            (
                "timeout: 60s\n",
                "timeout: 60s is more than the host allows (--guest-timeout-ceiling is 2s); a \
                 guest's settings may only narrow the host's flags; start the host with a higher \
                 --guest-timeout-ceiling",
            ),
            (
                "max-children: 5000\n",
                "max-children: 5000 is more than the host allows (--guest-max-children is 1000)",
            ),
            (
                "max-output-mib: 64\n",
                "max-output-mib: 64 is more than the host allows (--guest-max-output-mib is 16)",
            ),
            (
                "max-object-kib: 4096\n",
                "max-object-kib: 4096 is more than the host allows (--guest-max-object-kib is 1024)",
            ),
        ] {
            let message = error(text, &[]);
            assert!(message.contains(expected), "{text}: {message}");
        }
        let ceiling = HostRules {
            timeout_ceiling: Duration::from_secs(60),
            ..HostRules::default()
        };
        let raised = load_text(Some("timeout: 60s\n"), &ceiling).unwrap();
        assert_eq!(raised.limits.timeout, Duration::from_secs(60));
    }

    #[test]
    fn a_guest_may_narrow_the_hosts_allowed_kinds_but_not_widen_them() {
        let host = ["apps/v1/Deployment", "v1/Service"];
        let narrowed =
            load_text(Some("allowed-child-kinds: [v1/Service]\n"), &rules(&host)).unwrap();
        assert_eq!(narrowed.allowed_child_kinds.describe(), "Service.v1");
        let message = error("allowed-child-kinds: [v1/Secret]\n", &host);
        assert!(
            message.contains("Secret.v1 is not allowed by the host's"),
            "{message}"
        );
        let related = HostRules {
            allowed_related_kinds: KindAllowlist::from_flag(&["v1/ConfigMap".into()]).unwrap(),
            ..HostRules::default()
        };
        let message = load_text(Some("allowed-related-kinds: [v1/Secret]\n"), &related)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains(
                "allowed-related-kinds: Secret.v1 is not allowed by the host's \
                 --allowed-related-kind (ConfigMap.v1)"
            ),
            "{message}"
        );
    }

    // Attack: `allowed-child-kinds: []` once meant "any kind" and widened the host's list.
    #[test]
    fn an_empty_kind_list_allows_no_kind() {
        let none = load_text(Some("allowed-child-kinds: []\n"), &rules(&["v1/ConfigMap"])).unwrap();
        assert_eq!(none.allowed_child_kinds.describe(), "none");
        let none = load_text(Some("allowed-child-kinds: []\n"), &rules(&[])).unwrap();
        assert!(
            !none
                .allowed_child_kinds
                .allows(&kube::api::GroupVersionKind::gvk(
                    "networking.k8s.io",
                    "v1",
                    "Ingress"
                ))
        );
    }

    #[test]
    fn config_is_any_value_kept_as_compact_json_and_null_is_none() {
        let settings = load_text(
            Some("config:\n  registry: mirror.example.com\n  replicas: [1, 2]\n"),
            &rules(&[]),
        )
        .unwrap();
        assert_eq!(
            settings.config.as_deref(),
            Some(r#"{"registry":"mirror.example.com","replicas":[1,2]}"#)
        );
        let flow = load_text(Some("config: {\"a\": \"b\"}\n"), &rules(&[])).unwrap();
        assert_eq!(flow.config.as_deref(), Some(r#"{"a":"b"}"#));
        let scalar = load_text(Some("config: 3\n"), &rules(&[])).unwrap();
        assert_eq!(scalar.config.as_deref(), Some("3"));
        for none in [Some("config: null\n"), Some("timeout: 1s\n"), None] {
            assert_eq!(
                load_text(none, &rules(&[])).unwrap().config,
                None,
                "{none:?}"
            );
        }
    }

    #[test]
    fn only_a_changed_config_is_same_but_config() {
        let dir = tempfile::tempdir().unwrap();
        let guest = dir.path().join("g.wasm");
        let settings = |text: &str| {
            std::fs::write(settings_path(&guest), text).unwrap();
            load(&guest, &rules(&[])).unwrap()
        };
        let a = settings("config: {a: 1}\n");
        assert!(a.same_but_config(&settings("config: {a: 2}\n")));
        assert!(a.same_but_config(&settings("# no config\n")));
        assert!(!a.same_but_config(&settings("config: {a: 2}\ntimeout: 1s\n")));
        assert!(!a.same_but_config(&settings("allowed-child-kinds: []\n")));
    }

    // Attack: a FIFO as the settings file blocked the thread that read it.
    #[test]
    fn a_fifo_settings_file_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let guest = dir.path().join("g.wasm");
        let fifo =
            std::ffi::CString::new(settings_path(&guest).as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let message =
            crate::error_text::error_chain(&load(&guest, &HostRules::default()).unwrap_err());
        assert!(
            message.contains("it is a FIFO, not a regular file"),
            "{message}"
        );
        assert_eq!(settings_text(&guest), None);
    }
}
