//! The flags that say what every guest may do (limits, kinds, file size), shared by `run` and
//! `check` so that `check` judges a guest by the rules the host would run it with. Validated into
//! [`HostRules`], which admission (`guests/admission.rs`) applies.

use std::time::Duration;

use clap::Args;

use crate::guests::{HostRules, KindAllowlist};
use crate::sandbox::{
    GUEST_MAX_OBJECT_KIB, GUEST_MAX_OUTPUT_MIB, GUEST_MAX_RELATED_KIB, GUEST_MAX_RELATED_OBJECTS,
    GUEST_MEMORY_MIB, GUEST_TIMEOUT, GuestLimits,
};

/// Most MiB `--guest-max-file-mib` may be.
const MAX_FILE_MIB: u64 = 1024;

/// Flags of the guests' limits and kinds (in `run` and `check`).
#[derive(Debug, Args)]
pub struct GuestRuleArgs {
    /// Longest a single guest call may run before it is interrupted (e.g. 500ms, 2s).
    #[arg(long, env = "RECONCILER_GUEST_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub guest_timeout: Duration,
    /// Longest timeout a guest's settings file may set [default: --guest-timeout]. A slow call
    /// holds its memory and its reconcile slot until it ends, so raise it with care.
    #[arg(long, env = "RECONCILER_GUEST_TIMEOUT_CEILING", value_parser = humantime::parse_duration)]
    pub guest_timeout_ceiling: Option<Duration>,
    /// Largest linear memory a guest may use, in MiB (a guest's settings may only lower it).
    #[arg(long, env = "RECONCILER_GUEST_MEMORY_MIB", default_value_t = 64)]
    pub guest_memory_mib: usize,
    /// Most children one reconcile of the guest may return.
    #[arg(long, env = "RECONCILER_GUEST_MAX_CHILDREN", default_value_t = 1000)]
    pub guest_max_children: usize,
    /// Most JSON (children and status) one reconcile of the guest may return, in MiB.
    #[arg(long, env = "RECONCILER_GUEST_MAX_OUTPUT_MIB", default_value_t = 16)]
    pub guest_max_output_mib: usize,
    /// Most JSON one child, or the status, of a guest's answer may be, in KiB; checked before
    /// it is parsed (the API server refuses objects over about 1.5 MiB).
    #[arg(long, env = "RECONCILER_GUEST_MAX_OBJECT_KIB", default_value_t = 1024)]
    pub guest_max_object_kib: usize,
    /// Largest guest file read, in MiB (a ConfigMap holds at most 1 MiB; an image volume more).
    #[arg(long, env = "RECONCILER_GUEST_MAX_FILE_MIB", default_value_t = 64)]
    pub guest_max_file_mib: u64,
    /// Child kinds guests may declare, as group/version/Kind (apps/v1/Deployment) or v1/Kind for
    /// the core group; repeat the flag or separate with commas. Default: any namespaced kind. A
    /// guest declaring anything else is refused at start and on hot swap.
    #[arg(
        long = "allowed-child-kind",
        env = "RECONCILER_ALLOWED_CHILD_KINDS",
        value_delimiter = ','
    )]
    pub allowed_child_kinds: Vec<String>,
    /// Accept a guest whose parent kind is one of Kubernetes' own (ConfigMap, Deployment…). The
    /// host writes no status to such parents (it belongs to their own controllers) and reports
    /// through Events and metrics only.
    #[arg(long, env = "RECONCILER_ALLOW_BUILTIN_PARENT_KIND")]
    pub allow_builtin_parent_kind: bool,
    /// Kinds guests may read besides their parents and children (contract 0.2 related objects),
    /// as group/version/Kind or v1/Kind; repeat or separate with commas. Default: any kind but
    /// Secrets, which a guest reads only when this flag names v1/Secret. A guest declaring
    /// another related kind is refused at start and on hot swap.
    #[arg(
        long = "allowed-related-kind",
        env = "RECONCILER_ALLOWED_RELATED_KINDS",
        value_delimiter = ','
    )]
    pub allowed_related_kinds: Vec<String>,
    /// Most related objects one reconcile of a guest is given; more fail that reconcile
    /// (retried with backoff), nothing applied or pruned.
    #[arg(
        long,
        env = "RECONCILER_GUEST_MAX_RELATED_OBJECTS",
        default_value_t = 256
    )]
    pub guest_max_related_objects: usize,
    /// Most JSON of related objects one reconcile of a guest is given, in KiB.
    #[arg(long, env = "RECONCILER_GUEST_MAX_RELATED_KIB", default_value_t = 4096)]
    pub guest_max_related_kib: usize,
}

/// Longest `--guest-config` accepted, as a settings file's (`guests/settings.rs`).
const MAX_CONFIG_BYTES: usize = crate::guests::settings::SETTINGS_MAX_BYTES as usize;

/// `--guest-config`: JSON text of any value, kept as compact JSON (`null` is none).
///
/// # Errors
/// The text is not JSON, or longer than a settings file may be.
pub fn parse_guest_config(text: &str) -> Result<String, String> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(format!(
            "{} bytes, at most {MAX_CONFIG_BYTES} allowed",
            text.len()
        ));
    }
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        format!("not JSON ({e}); give a JSON value, e.g. '{{\"registry\":\"mirror.example.com\"}}'")
    })?;
    Ok(value.to_string())
}

/// A guest-rule flag whose value cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("--guest-timeout must be between 1ms and 1h, not {0:?}")]
    GuestTimeout(Duration),
    #[error(
        "--guest-timeout-ceiling ({ceiling:?}) must be at least --guest-timeout ({timeout:?}) \
         and at most 1h"
    )]
    GuestTimeoutCeiling {
        ceiling: Duration,
        timeout: Duration,
    },
    #[error("--guest-memory-mib must be between 1 and 4096, not {0}")]
    GuestMemory(usize),
    #[error("--guest-max-children must be at least 1")]
    GuestMaxChildren,
    #[error("--guest-max-output-mib must be between 1 and 1024, not {0}")]
    GuestMaxOutput(usize),
    #[error("--guest-max-object-kib must be between 1 and 1048576, not {0}")]
    GuestMaxObject(usize),
    #[error("--guest-max-file-mib must be between 1 and {MAX_FILE_MIB}, not {0}")]
    GuestMaxFile(u64),
    #[error("--allowed-child-kind: {0}")]
    AllowedChildKind(String),
    #[error("--allowed-related-kind: {0}")]
    AllowedRelatedKind(String),
    #[error("--guest-max-related-objects must be between 1 and 100000, not {0}")]
    GuestMaxRelatedObjects(usize),
    #[error("--guest-max-related-kib must be between 1 and 1048576, not {0}")]
    GuestMaxRelated(usize),
}

impl GuestRuleArgs {
    /// Checks every flag and turns them into the host's rules.
    ///
    /// # Errors
    /// The first flag whose value cannot work, saying what would.
    pub fn validate(&self) -> Result<HostRules, RuleError> {
        if !GUEST_TIMEOUT.contains(&self.guest_timeout) {
            return Err(RuleError::GuestTimeout(self.guest_timeout));
        }
        let timeout_ceiling = self.guest_timeout_ceiling.unwrap_or(self.guest_timeout);
        if timeout_ceiling < self.guest_timeout || !GUEST_TIMEOUT.contains(&timeout_ceiling) {
            return Err(RuleError::GuestTimeoutCeiling {
                ceiling: timeout_ceiling,
                timeout: self.guest_timeout,
            });
        }
        if !GUEST_MEMORY_MIB.contains(&self.guest_memory_mib) {
            return Err(RuleError::GuestMemory(self.guest_memory_mib));
        }
        if self.guest_max_children == 0 {
            return Err(RuleError::GuestMaxChildren);
        }
        if !GUEST_MAX_OUTPUT_MIB.contains(&self.guest_max_output_mib) {
            return Err(RuleError::GuestMaxOutput(self.guest_max_output_mib));
        }
        if !GUEST_MAX_OBJECT_KIB.contains(&self.guest_max_object_kib) {
            return Err(RuleError::GuestMaxObject(self.guest_max_object_kib));
        }
        if !(1..=MAX_FILE_MIB).contains(&self.guest_max_file_mib) {
            return Err(RuleError::GuestMaxFile(self.guest_max_file_mib));
        }
        if !GUEST_MAX_RELATED_OBJECTS.contains(&self.guest_max_related_objects) {
            return Err(RuleError::GuestMaxRelatedObjects(
                self.guest_max_related_objects,
            ));
        }
        if !GUEST_MAX_RELATED_KIB.contains(&self.guest_max_related_kib) {
            return Err(RuleError::GuestMaxRelated(self.guest_max_related_kib));
        }
        Ok(HostRules {
            limits: GuestLimits {
                timeout: self.guest_timeout,
                max_memory_bytes: self.guest_memory_mib << 20,
                max_children: self.guest_max_children,
                max_output_bytes: self.guest_max_output_mib << 20,
                max_object_bytes: self.guest_max_object_kib << 10,
                max_related_objects: self.guest_max_related_objects,
                max_related_bytes: self.guest_max_related_kib << 10,
            },
            timeout_ceiling,
            allowed_child_kinds: KindAllowlist::from_flag(&self.allowed_child_kinds)
                .map_err(RuleError::AllowedChildKind)?,
            allowed_related_kinds: KindAllowlist::from_flag(&self.allowed_related_kinds)
                .map_err(RuleError::AllowedRelatedKind)?,
            allow_builtin_parent_kind: self.allow_builtin_parent_kind,
            max_file_bytes: self.guest_max_file_mib << 20,
        })
    }
}
