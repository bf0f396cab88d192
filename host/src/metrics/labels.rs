//! The label values of the host's metrics: each from a fixed set (no object names, no error
//! texts), except `guest`, the name of a guest in this host (its file name without `.wasm`),
//! bounded by the guests the host was given.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

/// A label enum whose values are written in snake_case, as Prometheus users expect
/// (`result="invalid_spec"`), from one table per enum.
macro_rules! label_values {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                std::fmt::Write::write_str(encoder, self.as_str())
            }
        }
    };
}

label_values! {
    /// How a reconcile ended.
    pub enum ReconcileResult {
        Success => "success",
        InvalidSpec => "invalid_spec",
        GuestFailed => "guest_failed",
        PolicyViolation => "policy_violation",
        ApplyFailed => "apply_failed",
        StatusFailed => "status_failed",
        Other => "other",
    }
}

label_values! {
    /// Why a guest call produced nothing usable.
    pub enum GuestFailureKind {
        Trap => "trap",
        Timeout => "timeout",
        Memory => "memory",
        Transient => "transient",
        InvalidOutput => "invalid_output",
        Policy => "policy",
    }
}

label_values! {
    /// What happened to one desired or observed child.
    pub enum ChildAction {
        /// Sent with server-side apply.
        Applied => "applied",
        /// Already as desired: no request sent.
        Unchanged => "unchanged",
        /// Deleted because no longer desired.
        Pruned => "pruned",
    }
}

label_values! {
    /// How a hot-swap attempt ended.
    pub enum ReloadResult {
        Swapped => "swapped",
        Refused => "refused",
        /// The guest swapped in last was put back to the one before it (`--rollback-*`).
        RolledBack => "rolled_back",
    }
}

label_values! {
    /// Why a guest was not started (`guests/admission.rs` says more in the log line).
    pub enum RefusalReason {
        /// Another guest of the host reconciles the same parent kind.
        DuplicateParentKind => "duplicate_parent_kind",
        /// The file is not a usable guest (unreadable, not a component, not this contract).
        Unusable => "unusable",
        /// Its settings file cannot be used or would widen the host's flags.
        Settings => "settings",
        /// It declares a child kind the host or its settings do not allow.
        KindNotAllowed => "kind_not_allowed",
        /// It reconciles one of Kubernetes' own kinds without `--allow-builtin-parent-kind`.
        BuiltinParentKind => "builtin_parent_kind",
        /// It names one resource under two API groups (itself, or against another guest).
        AliasedKind => "aliased_kind",
        /// Its kinds would close a cycle with the other guests' kinds.
        KindCycle => "kind_cycle",
        /// The folder holds more guest files than the host serves.
        TooManyGuests => "too_many_guests",
    }
}

label_values! {
    /// What a shadow candidate decided for a parent, against what the active guest decided.
    pub enum ShadowVerdict {
        /// The same children (by content) and the same status.
        Agree => "agree",
        /// Other children, other content, or another status.
        Diverge => "diverge",
        /// The candidate failed (or broke the policy) where the active guest did not.
        Fail => "fail",
    }
}

/// `shadow_parents`' labels: the verdict, the candidate's code, the guest it shadows.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ShadowLabel {
    pub verdict: ShadowVerdict,
    pub candidate_digest: String,
    pub guest: String,
}

/// The `guest` label alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct GuestLabel {
    pub guest: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabel {
    pub result: ReconcileResult,
    pub guest: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct KindLabel {
    pub kind: GuestFailureKind,
    pub guest: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ActionLabel {
    pub action: ChildAction,
    pub guest: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ReloadLabel {
    pub result: ReloadResult,
    pub guest: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RefusalLabel {
    pub reason: RefusalReason,
    pub guest: String,
}

/// Identity of a guest's active code, as `guest_info` reports it.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct GuestLabels {
    /// The name the guest gives itself (its manifest).
    pub name: String,
    pub version: String,
    pub digest: String,
}

/// `guest_info`'s labels: the active code, then the guest's name in this host.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct InfoLabel {
    pub name: String,
    pub version: String,
    pub digest: String,
    pub guest: String,
}
