//! One failure type for every way a reconcile can end short of success ([`Failure`]). Each
//! variant knows the `Ready` condition it is reported with (if any), its metric label, the guest
//! failure it counts (if any), and whether it is retried with backoff, after a fixed delay, or
//! only when the parent changes. The pipeline returns it; `report.rs` reports it, once.

use std::time::Duration;

use crate::error_text::api_error_text;
use crate::metrics::{GuestFailureKind, ReconcileResult};
use crate::sandbox::GuestError;

use super::policy::PolicyViolation;
use super::status::FailureReason;

/// How long a reconcile that found a child cache still listing waits before trying again.
const NOT_SYNCED_RETRY: Duration = Duration::from_secs(1);
/// How long a reconcile that found a child kind's watch failing waits before trying again (the
/// relist that ends the failure reconciles the parents of what changed meanwhile).
const CHILD_WATCH_RETRY: Duration = Duration::from_secs(5);

/// Why a reconcile did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A child kind's cache has not listed completely yet. Start-up and hot swaps wait for
    /// caches before activating a guest, and relists swap in complete indexes, so this is only
    /// the guard of the never-prune-on-incomplete-information invariant.
    #[error("the child caches have not listed yet")]
    NotSynced,
    /// A child kind's watch failed and has not listed again since (its CRD deleted, the API
    /// server unreachable): its cache may be stale, so nothing is decided, applied or pruned,
    /// and nothing is reported (the guest's `/readyz` line says it).
    #[error(
        "the watch of child kind {0} is failing; nothing is decided or pruned until it lists again"
    )]
    ChildWatchFailing(String),
    /// The controller stopped while the reconcile waited for its turn to call the guest, or while
    /// the guest ran: it was given up before anything was written, and nothing is reported.
    #[error("the guest's reconciler is stopping; given up before anything was written")]
    Stopping,
    /// The parent lacks a namespace or UID (it did not come from the API server).
    #[error("parent has no {0}")]
    MissingMetadata(&'static str),
    /// The guest judged the spec invalid: its verdict, not a failure of the guest.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The guest trapped, timed out, or reported a transient failure.
    #[error(transparent)]
    Guest(GuestError),
    /// The blocking task running the guest panicked or was cancelled.
    #[error("guest task failed: {0}")]
    GuestTask(String),
    /// The guest's output broke the output policy; nothing was applied.
    #[error("guest output refused: {0}")]
    Policy(PolicyViolation),
    /// The guest's requirements (what else it reads) broke the rules; nothing was decided.
    #[error("the guest's requirements are refused: {0}")]
    Requirements(String),
    /// The guest's requirements selected more related objects than its limits allow; nothing
    /// was decided, applied or pruned.
    #[error("{0}")]
    RelatedTooLarge(String),
    /// The guest asked for the same child with new content again and again while its parent did
    /// not change: nothing was written.
    #[error("{0}")]
    Unsettled(String),
    /// One or more requests about children failed (apply, prune, or the take-over check's
    /// lookup); `created` and `pruned` list what did succeed (`Kind name`).
    #[error("{message}")]
    Write {
        message: String,
        created: Vec<String>,
        pruned: Vec<String>,
    },
    /// The API server refused the status.
    #[error("writing status: {}", api_error_text(.0))]
    Status(kube::Error),
    /// The reconcile panicked: a bug in the host, contained to this parent (retried with
    /// backoff) instead of ending the process and every other parent's reconciles with it.
    #[error("the reconcile panicked (a bug in the host): {0}")]
    Panicked(String),
}

/// When a failed reconcile runs again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// With per-parent exponential backoff (the controller's error policy).
    Backoff,
    /// Only when the parent changes.
    AwaitChange,
    /// After this delay, without counting as a failure.
    After(Duration),
}

impl Failure {
    /// A failed request about one child, as `Write`.
    pub fn write(message: String) -> Self {
        Self::Write {
            message,
            created: Vec::new(),
            pruned: Vec::new(),
        }
    }

    /// The `Ready` condition's reason and message; `None`: not reported in the status.
    pub fn condition(&self) -> Option<(FailureReason, String)> {
        let reason = match self {
            Self::InvalidSpec(_) => FailureReason::InvalidSpec,
            Self::Guest(_) => FailureReason::GuestFailed,
            Self::Policy(_) | Self::Requirements(_) => FailureReason::PolicyViolation,
            Self::RelatedTooLarge(_) => FailureReason::RelatedTooLarge,
            Self::Unsettled(_) => FailureReason::OutputUnsettled,
            Self::Write { .. } => FailureReason::ApplyFailed,
            Self::Status(error) => {
                return Some((
                    FailureReason::StatusFailed,
                    format!(
                        "the API server refused the status: {}",
                        api_error_text(error)
                    ),
                ));
            }
            Self::NotSynced
            | Self::ChildWatchFailing(_)
            | Self::Stopping
            | Self::MissingMetadata(_)
            | Self::GuestTask(_)
            | Self::Panicked(_) => {
                return None;
            }
        };
        let message = match self {
            Self::Policy(violation) => violation.to_string(),
            other => other.to_string(),
        };
        Some((reason, message))
    }

    /// The `result` label of `reconciler_reconciles_total`.
    pub fn metric_label(&self) -> ReconcileResult {
        match self {
            Self::InvalidSpec(_) => ReconcileResult::InvalidSpec,
            Self::Guest(_) | Self::GuestTask(_) | Self::Unsettled(_) => {
                ReconcileResult::GuestFailed
            }
            Self::Policy(_) | Self::Requirements(_) => ReconcileResult::PolicyViolation,
            Self::Write { .. } => ReconcileResult::ApplyFailed,
            Self::Status(_) => ReconcileResult::StatusFailed,
            Self::NotSynced
            | Self::ChildWatchFailing(_)
            | Self::Stopping
            | Self::MissingMetadata(_)
            | Self::RelatedTooLarge(_)
            | Self::Panicked(_) => ReconcileResult::Other,
        }
    }

    /// The `kind` label of `reconciler_guest_failures_total`, when the guest's call or output
    /// was unusable.
    pub fn guest_failure(&self) -> Option<GuestFailureKind> {
        match self {
            Self::Guest(error) => Some(match error {
                GuestError::InvalidSpec(_) | GuestError::Transient(_) => {
                    GuestFailureKind::Transient
                }
                GuestError::Timeout(_) => GuestFailureKind::Timeout,
                GuestError::OutOfMemory(_) => GuestFailureKind::Memory,
                GuestError::Trap(_) => GuestFailureKind::Trap,
                GuestError::OutputTooLarge(_) => GuestFailureKind::InvalidOutput,
            }),
            Self::Policy(
                PolicyViolation::NotAnObject { .. } | PolicyViolation::InvalidStatus { .. },
            )
            | Self::Unsettled(_) => Some(GuestFailureKind::InvalidOutput),
            Self::Policy(_) | Self::Requirements(_) => Some(GuestFailureKind::Policy),
            _ => None,
        }
    }

    /// When the parent is reconciled again.
    pub fn retry(&self) -> Retry {
        match self {
            Self::InvalidSpec(_) => Retry::AwaitChange,
            Self::NotSynced | Self::Stopping => Retry::After(NOT_SYNCED_RETRY),
            Self::ChildWatchFailing(_) => Retry::After(CHILD_WATCH_RETRY),
            _ => Retry::Backoff,
        }
    }
}

impl From<PolicyViolation> for Failure {
    fn from(violation: PolicyViolation) -> Self {
        Self::Policy(violation)
    }
}

impl From<GuestError> for Failure {
    /// An invalid spec is the guest's verdict; anything else a failure of the call.
    fn from(error: GuestError) -> Self {
        match error {
            GuestError::InvalidSpec(reason) => Self::InvalidSpec(reason),
            other => Self::Guest(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_knows_its_condition_label_and_retry() {
        let invalid = Failure::from(GuestError::InvalidSpec("spec.x: bad".into()));
        assert_eq!(
            invalid.condition(),
            Some((
                FailureReason::InvalidSpec,
                "invalid spec: spec.x: bad".into()
            ))
        );
        assert_eq!(invalid.metric_label(), ReconcileResult::InvalidSpec);
        assert_eq!(invalid.retry(), Retry::AwaitChange);
        assert_eq!(invalid.guest_failure(), None);

        let timeout = Failure::from(GuestError::Timeout(Duration::from_secs(2)));
        assert_eq!(timeout.condition().unwrap().0, FailureReason::GuestFailed);
        assert_eq!(timeout.guest_failure(), Some(GuestFailureKind::Timeout));
        assert_eq!(timeout.retry(), Retry::Backoff);

        let policy = Failure::from(PolicyViolation::Duplicate {
            kind: "Service.v1".into(),
            name: "a".into(),
        });
        let (reason, message) = policy.condition().unwrap();
        assert_eq!(reason, FailureReason::PolicyViolation);
        assert!(message.starts_with("desired child Service.v1"), "{message}");
        assert_eq!(policy.guest_failure(), Some(GuestFailureKind::Policy));

        assert_eq!(Failure::NotSynced.condition(), None);
        assert_eq!(Failure::NotSynced.retry(), Retry::After(NOT_SYNCED_RETRY));
        assert_eq!(
            Failure::write("applying Service a: 500".into()).metric_label(),
            ReconcileResult::ApplyFailed
        );
    }
}
