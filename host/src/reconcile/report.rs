//! Telling people what a reconcile did, in one place: the parent's status (written only when it
//! changed) and Kubernetes Events on transitions — children created, children pruned, a new
//! failure reason — never one per reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::DynamicObject;
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::cluster::ResolvedKind;
use crate::error_text::error_chain;
use crate::metrics::ChildAction;

use super::Context;
use super::active_guest::ActiveGuest;
use super::done::Done;
use super::error::Failure;
use super::events::{EventPublisher, EventType};
use super::guest_events::PlannedEvent;
use super::parent_state::ParentRecord;
use super::status::{self, Outcome};

/// Reports how the reconcile of `parent` ended: the status and Events, and the metrics of the
/// children. A status the API server refuses turns a success into [`Failure::Status`], reported
/// like any failure.
pub async fn report(
    ctx: &Context,
    record: &ParentRecord<'_>,
    guest: &ActiveGuest,
    result: Result<Done, Failure>,
) -> Result<Done, Failure> {
    let report = ParentReport {
        client: &ctx.client,
        parent_kind: &ctx.parent_kind,
        field_manager: &ctx.settings.field_manager,
        events: &ctx.events,
        parent: record.parent(),
        stamp: guest.status_stamp(),
        record,
    };
    let mut done = match result {
        Ok(done) => done,
        Err(failure) => {
            if let Failure::Write {
                created, pruned, ..
            } = &failure
            {
                report.children_changed(created, pruned).await;
            }
            report.failure(&failure).await;
            return Err(failure);
        }
    };
    let writes = &done.writes;
    let (applied, unchanged, pruned) = (writes.applied, writes.unchanged, writes.pruned.len());
    ctx.metrics.children(ChildAction::Applied, applied);
    ctx.metrics.children(ChildAction::Unchanged, unchanged);
    ctx.metrics.children(ChildAction::Pruned, pruned);
    if applied + pruned > 0 {
        info!(applied, unchanged, pruned, "children reconciled");
    } else if !done.finalizing {
        debug!(unchanged, "children already as desired");
    }
    // The Event and the status are independent writes: one round trip instead of two. The
    // guest's status moves into the write (nothing reads it afterwards): no copy of it.
    let outcome = Outcome::Reconciled {
        guest_status: done.status.take(),
    };
    let ((), (), written) = futures::join!(
        report.children_changed(&writes.created, &writes.pruned),
        report.guest_events(&done.events),
        report.outcome(&outcome)
    );
    if let Err(error) = written {
        // The status written instead keeps the previous one (not the refused, perhaps
        // oversized, guest status) with Ready=False.
        let failure = Failure::Status(error);
        report.failure(&failure).await;
        return Err(failure);
    }
    Ok(done)
}

/// Reports on one parent for one reconcile.
struct ParentReport<'a> {
    client: &'a Client,
    parent_kind: &'a ResolvedKind,
    field_manager: &'a str,
    events: &'a EventPublisher,
    parent: &'a DynamicObject,
    /// Which guest decided (`status.reconciler`).
    stamp: Value,
    /// Where the status this process last wrote is remembered.
    record: &'a ParentRecord<'a>,
}

impl ParentReport<'_> {
    /// Records a failed reconcile in the status, and as a Warning Event when the reason or
    /// message is new. A failure to write either is only logged: the reconcile is failing
    /// already and will be retried. Failures without a condition are not reported.
    async fn failure(&self, failure: &Failure) {
        let Some((reason, message)) = failure.condition() else {
            return;
        };
        let previous = self.ready_condition();
        let is_new = previous.is_none_or(|ready| {
            ready["reason"] != reason.as_str() || ready["message"] != message.as_str()
        });
        if is_new {
            self.event(EventType::Warning, reason.as_str(), &message)
                .await;
        }
        if let Err(error) = self.outcome(&Outcome::Failed { reason, message }).await {
            warn!(error = %error_chain(&error), "could not record the failure in the parent's status");
        }
    }

    /// Normal Events for the children this reconcile created or pruned (`Kind name` each),
    /// listed by kind, then name.
    async fn children_changed(&self, created: &[String], pruned: &[String]) {
        if !created.is_empty() {
            self.event(
                EventType::Normal,
                "ChildrenCreated",
                &format!("created {}", in_stable_order(created)),
            )
            .await;
        }
        if !pruned.is_empty() {
            self.event(
                EventType::Normal,
                "ChildrenPruned",
                &format!("deleted {} (no longer desired)", in_stable_order(pruned)),
            )
            .await;
        }
    }

    /// Writes the status for `outcome` if it differs from the parent's current one. Parents of
    /// Kubernetes' own kinds get none (their status belongs to their controllers; the host only
    /// reconciles them with `--allow-builtin-parent-kind`).
    async fn outcome(&self, outcome: &Outcome) -> Result<(), kube::Error> {
        if crate::cluster::kinds::is_builtin(&self.parent_kind.gvk) {
            return Ok(());
        }
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
        let api = self
            .parent_kind
            .api(self.client, self.parent.namespace().as_deref());
        match status::write(&api, self.parent, &next, self.field_manager).await {
            Ok(()) => {
                self.record.status_written(next);
                Ok(())
            }
            // The parent was deleted meanwhile: nothing to report on.
            Err(kube::Error::Api(response)) if response.code == 404 => {
                self.record.forget_written_status();
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// The parent's current status: as the parent snapshot shows it, unless that snapshot
    /// provably predates this process's own last write (no status yet, or an older
    /// `observedGeneration`): reconciles triggered by child events often run before the parent
    /// watch delivers the status just written, and would otherwise write it again, with a new
    /// `lastTransitionTime`.
    fn observed_status(&self) -> Option<Value> {
        let snapshot = self.parent.data.get("status").filter(|s| s.is_object());
        let Some(remembered) = self.record.written_status() else {
            return snapshot.cloned();
        };
        let generation = |status: &Value| status.get("observedGeneration").and_then(Value::as_i64);
        match snapshot {
            Some(snapshot) if generation(snapshot) >= generation(&remembered) => {
                // The watch has caught up: the snapshot is authoritative again.
                self.record.forget_written_status();
                Some(snapshot.clone())
            }
            _ => Some(remembered),
        }
    }

    fn ready_condition(&self) -> Option<Value> {
        self.observed_status()?["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")
            .cloned()
    }

    /// The Events the guest returned, one after the other (in its order, at most eight).
    async fn guest_events(&self, events: &[PlannedEvent]) {
        for event in events {
            self.publish(
                event.type_,
                &event.reason,
                &event.note,
                event.related.as_ref(),
            )
            .await;
        }
    }

    async fn event(&self, type_: EventType, reason: &str, note: &str) {
        self.publish(type_, reason, note, None).await;
    }

    async fn publish(
        &self,
        type_: EventType,
        reason: &str,
        note: &str,
        related: Option<&ObjectReference>,
    ) {
        let reference = self.parent.object_ref(&self.parent_kind.resource);
        match self
            .events
            .publish(&reference, type_, reason, "Reconcile", note, related)
            .await
        {
            Ok(()) => debug!(%reason, "event published"),
            Err(error) => warn!(%reason, %error, "could not publish an event"),
        }
    }
}

/// `Kind name` entries joined by kind, then name, whatever order the writes finished in.
fn in_stable_order(objects: &[String]) -> String {
    let mut sorted: Vec<&String> = objects.iter().collect();
    sorted.sort_by(|a, b| {
        let split = |s: &'_ String| {
            let (kind, name) = s.split_once(' ').unwrap_or((s.as_str(), ""));
            (kind.to_string(), name.to_string())
        };
        split(a).cmp(&split(b))
    });
    sorted
        .into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn children_are_listed_by_kind_then_name() {
        let objects = [
            "Service demo-hat".to_string(),
            "Deployment demo-hat".to_string(),
            "ConfigMap demo-service-discovery".to_string(),
            "Deployment demo-entry".to_string(),
        ];
        assert_eq!(
            super::in_stable_order(&objects),
            "ConfigMap demo-service-discovery, Deployment demo-entry, Deployment demo-hat, Service demo-hat"
        );
    }
}
