//! What a reconcile that succeeded hands from the pipeline (`mod.rs`) to its report
//! (`report.rs`).

use kube::runtime::controller::Action;
use serde_json::Value;

use super::apply::Writes;
use super::guest_events::PlannedEvent;

/// A reconcile that succeeded: what to report, and when to run again.
pub struct Done {
    /// The guest's status (checked).
    pub(super) status: Option<Value>,
    pub(super) writes: Writes,
    /// The guest's Events (checked), published with the status.
    pub(super) events: Vec<PlannedEvent>,
    /// The parent is being deleted: nothing was applied or pruned.
    pub(super) finalizing: bool,
    pub(super) next: Action,
}
