//! What the admin's flags allow every guest of this host: the ceiling that each guest's settings
//! (`settings.rs`) narrow and admission (`admission.rs`) enforces.

use std::time::Duration;

use super::allowlist::KindAllowlist;
use crate::sandbox::{GUEST_FILE_MAX_BYTES, GuestLimits};

/// What the admin's flags allow every guest of this host.
#[derive(Clone, Debug)]
pub struct HostRules {
    /// The per-call limits of the flags: a guest's, unless its settings narrow them.
    pub limits: GuestLimits,
    /// The longest timeout a guest's settings may set (`--guest-timeout-ceiling`, by default
    /// `--guest-timeout`): a guest's slow calls hold memory and reconcile slots the others share.
    pub timeout_ceiling: Duration,
    /// The child kinds any guest may declare (`--allowed-child-kind`).
    pub allowed_child_kinds: KindAllowlist,
    /// The kinds any guest may read as related objects (`--allowed-related-kind`); `Any` is
    /// every kind but Secrets, which only an explicit list allows.
    pub allowed_related_kinds: KindAllowlist,
    /// Whether a guest may reconcile one of Kubernetes' own kinds (`--allow-builtin-parent-kind`).
    pub allow_builtin_parent_kind: bool,
    /// The largest guest file read (`--guest-max-file-mib`).
    pub max_file_bytes: u64,
}

impl Default for HostRules {
    /// The flags' defaults.
    fn default() -> Self {
        let limits = GuestLimits::default();
        Self {
            limits,
            timeout_ceiling: limits.timeout,
            allowed_child_kinds: KindAllowlist::Any,
            allowed_related_kinds: KindAllowlist::Any,
            allow_builtin_parent_kind: false,
            max_file_bytes: GUEST_FILE_MAX_BYTES,
        }
    }
}
