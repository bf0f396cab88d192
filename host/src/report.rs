//! Telling people what a reconcile did: the parent's status (written only when it changed) and
//! Kubernetes Events on transitions — children created, children pruned, a new failure reason —
//! never one per reconcile.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::{Api, DynamicObject};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;
use tracing::{debug, warn};

use crate::kinds::ResolvedKind;
use crate::reconcile::ReconcileError;
use crate::status::{self, FailureReason, Outcome};

/// The longest Event note the API server accepts (events.k8s.io/v1 `note`: 1 kB).
const MAX_NOTE_BYTES: usize = 1024;

/// The status this process last wrote, by parent UID, kept until the parent watch shows it.
pub type WrittenStatuses = Mutex<HashMap<String, Value>>;

/// Reports on one parent for one reconcile.
pub struct Reporter<'a> {
    pub client: &'a Client,
    pub parent_kind: &'a ResolvedKind,
    pub field_manager: &'a str,
    pub recorder: &'a Recorder,
    pub parent: &'a DynamicObject,
    /// Which guest decided (`status.reconciler`).
    pub stamp: Value,
    pub written: &'a WrittenStatuses,
}

impl Reporter<'_> {
    /// Records a failed reconcile in the status, and as a Warning Event when the reason or
    /// message is new. A failure to write either is only logged: the reconcile is failing
    /// already and will be retried.
    pub async fn failure(&self, reason: FailureReason, message: String) {
        let previous = self.ready_condition();
        let is_new = previous.is_none_or(|ready| {
            ready["reason"] != reason.as_str() || ready["message"] != message.as_str()
        });
        if is_new {
            self.event(EventType::Warning, reason.as_str(), &message)
                .await;
        }
        if let Err(error) = self.outcome(&Outcome::Failed { reason, message }).await {
            warn!(error = %crate::error_chain(&error), "could not record the failure in the parent's status");
        }
    }

    /// Normal Events for children that were created or pruned.
    pub async fn children_changed(&self, created: &[String], pruned: &[String]) {
        if !created.is_empty() {
            self.event(
                EventType::Normal,
                "ChildrenCreated",
                &format!("created {}", created.join(", ")),
            )
            .await;
        }
        if !pruned.is_empty() {
            self.event(
                EventType::Normal,
                "ChildrenPruned",
                &format!("deleted {} (no longer desired)", pruned.join(", ")),
            )
            .await;
        }
    }

    /// Writes the status for `outcome` if it differs from the parent's current one.
    pub async fn outcome(&self, outcome: &Outcome) -> Result<(), ReconcileError> {
        let observed = self.observed_status();
        let observed = observed.as_ref();
        let next = status::next_status(
            observed,
            outcome,
            self.parent.metadata.generation,
            &self.stamp,
            &status::now(),
        );
        if !status::needs_write(observed, &next) {
            return Ok(());
        }
        let api = Api::<DynamicObject>::namespaced_with(
            self.client.clone(),
            &self.parent.namespace().unwrap_or_default(),
            &self.parent_kind.resource,
        );
        let uid = self.parent.uid().unwrap_or_default();
        match status::write(&api, self.parent, &next, self.field_manager).await {
            Ok(()) => {
                self.written_statuses().insert(uid, next);
                Ok(())
            }
            // The parent was deleted meanwhile: nothing to report on.
            Err(kube::Error::Api(response)) if response.code == 404 => {
                self.written_statuses().remove(&uid);
                Ok(())
            }
            Err(error) => Err(ReconcileError::Status(error)),
        }
    }

    /// The parent's current status: as the parent snapshot shows it, unless that snapshot
    /// provably predates this process's own last write (no status yet, or an older
    /// `observedGeneration`): reconciles triggered by child events often run before the parent
    /// watch delivers the status just written, and would otherwise write it again, with a new
    /// `lastTransitionTime`.
    fn observed_status(&self) -> Option<Value> {
        let snapshot = self.parent.data.get("status").filter(|s| s.is_object());
        let uid = self.parent.uid()?;
        let mut written = self.written_statuses();
        let Some(remembered) = written.get(&uid) else {
            return snapshot.cloned();
        };
        let generation = |status: &Value| status["observedGeneration"].as_i64();
        match snapshot {
            Some(snapshot) if generation(snapshot) >= generation(remembered) => {
                // The watch has caught up: the snapshot is authoritative again.
                written.remove(&uid);
                Some(snapshot.clone())
            }
            _ => Some(remembered.clone()),
        }
    }

    fn written_statuses(&self) -> std::sync::MutexGuard<'_, HashMap<String, Value>> {
        self.written.lock().expect("written status lock poisoned")
    }

    fn ready_condition(&self) -> Option<Value> {
        self.observed_status()?["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")
            .cloned()
    }

    async fn event(&self, type_: EventType, reason: &str, note: &str) {
        let mut note = note.to_string();
        if note.len() > MAX_NOTE_BYTES {
            note.truncate(note.floor_char_boundary(MAX_NOTE_BYTES - 3));
            note.push_str("...");
        }
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        let reference = self.parent.object_ref(&self.parent_kind.resource);
        match self.recorder.publish(&event, &reference).await {
            Ok(()) => debug!(%reason, "event published"),
            Err(error) => warn!(%reason, %error, "could not publish an event"),
        }
    }
}
