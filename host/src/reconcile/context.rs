//! What every reconcile of one controller shares: the client, the active guest, the caches, the
//! budgets and the per-parent state.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;

use crate::cluster::{ChildCaches, RelatedCaches, ResolvedKind};
use crate::metrics::GuestMetrics;

use super::active_guest::GuestSlot;
use super::budget::BudgetShare;
use super::claims::NameClaims;
use super::events::EventPublisher;
use super::parent_state::ParentStates;
use super::placement::ProtectedNamespaces;
use super::rollback::RollbackWatch;
use super::shadow::CandidateSlot;

/// The settings a reconcile reads.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Field manager of every apply and status write; the value of the managed-by label.
    pub field_manager: String,
    /// How long after a success the parent is reconciled again when the guest does not say.
    pub resync: Duration,
    /// Where no cluster-scoped parent's child may be written (see `placement.rs`).
    pub protected_namespaces: ProtectedNamespaces,
}

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub slot: Arc<GuestSlot>,
    /// The shadow candidate beside the active guest, if any (see `shadow/`).
    pub candidate: Arc<CandidateSlot>,
    /// Watches the guest swapped in last, for the hot swap to roll it back (see `rollback.rs`).
    pub rollback: Arc<RollbackWatch>,
    pub parent_kind: ResolvedKind,
    pub children: Arc<ChildCaches>,
    /// The caches of related objects and who reads what.
    pub related: Arc<RelatedCaches>,
    pub settings: Settings,
    /// The process's metrics, recorded under this guest's name.
    pub metrics: GuestMetrics,
    /// Publishes Kubernetes Events about parents.
    pub events: EventPublisher,
    /// This guest's share of the memory budget of guest calls running at once (see
    /// `budget.rs`).
    pub guest_memory: BudgetShare,
    /// This guest's share of the parents the process reconciles at once (`--concurrency`).
    pub reconcile_slots: BudgetShare,
    /// Child names this host's parents, of every guest, are creating now (see `claims.rs`).
    pub claims: Arc<NameClaims>,
    /// Failures, reconciled generation and written status per parent (by UID).
    pub parent_states: ParentStates,
    /// Turns true when the controller stops (its file removed, its settings changed, the host
    /// stopping): reconciles still waiting for a budget give up rather than run with what is
    /// going away.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl Context {
    /// `wait`'s result, or `None` once the controller is stopping. (A stop signal whose sender
    /// is gone never fires: nothing will ask to stop.)
    pub async fn unless_stopping<T>(&self, wait: impl Future<Output = T>) -> Option<T> {
        let mut stopping = self.stopping.clone();
        let stopped = async move {
            if stopping.wait_for(|stopping| *stopping).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            value = wait => Some(value),
            () = stopped => None,
        }
    }
}
