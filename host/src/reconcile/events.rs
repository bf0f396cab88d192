//! Publishing Kubernetes Events (events.k8s.io/v1) about parents, one Event per distinct
//! occurrence.
//!
//! Hand-rolled instead of kube's `events::Recorder` (kube-runtime 5.0) for one reason: the
//! Recorder keys an event series by reason, action and object but not by note, so a later
//! occurrence with another note is counted into the first one's series and keeps the first note.
//! `kubectl describe` then showed `ChildrenCreated (x2 over 55s) created <13 objects>` when the
//! second creation was one Deployment. Here the note is part of the key: the same note again
//! extends its series (`series.count`, `series.lastObservedTime`), as client-go does for
//! repeated identical Events; a new note is a new Event.
//!
//! # Guarantees
//! - Memory stays bounded: series older than [`SERIES_TTL`] are forgotten, and at most
//!   [`MAX_SERIES`] are remembered (the oldest go first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};

/// How long a series stays open for repeats (kube's Recorder and client-go use 6 minutes).
pub const SERIES_TTL: Duration = Duration::from_secs(6 * 60);
/// Most series remembered at once.
pub const MAX_SERIES: usize = 4096;
/// The longest note the API server accepts (events.k8s.io/v1 `note`: 1 kB).
const MAX_NOTE_BYTES: usize = 1024;

/// Normal or Warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What makes two Events the same occurrence repeated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    regarding_uid: String,
    type_: EventType,
    reason: String,
    note: String,
}

struct OpenSeries {
    event_name: String,
    namespace: String,
    count: i32,
    last_seen: Instant,
}

/// Publishes Events as one reporting controller (and instance).
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
    series: Mutex<HashMap<SeriesKey, OpenSeries>>,
}

impl EventPublisher {
    /// `controller` is the reporting controller (the field manager); `instance` this replica and
    /// guest (`<pod>/<guest>`), defaulting to the controller; cut to the 128 characters the API
    /// server accepts.
    pub fn new(client: Client, controller: String, instance: Option<String>) -> Self {
        let mut instance = instance.unwrap_or_else(|| controller.clone());
        if let Some((cut, _)) = instance.char_indices().nth(128) {
            instance.truncate(cut);
        }
        Self {
            client,
            controller,
            instance,
            series: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes an Event about `regarding`, or counts a repeat of the same note into its open
    /// series.
    ///
    /// # Errors
    /// The API server's answer to the create or the series patch.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
        related: Option<&ObjectReference>,
    ) -> Result<(), kube::Error> {
        let note = truncate_note(note);
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let key = SeriesKey {
            regarding_uid: regarding.uid.clone().unwrap_or_default(),
            type_,
            reason: reason.to_string(),
            note: note.clone(),
        };
        let now = Instant::now();
        let repeat = {
            let mut series = self
                .series
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            forget_old(&mut series, now);
            series.get_mut(&key).map(|open| {
                open.count += 1;
                open.last_seen = now;
                (open.event_name.clone(), open.namespace.clone(), open.count)
            })
        };
        if let Some((name, namespace, count)) = repeat {
            let patch = serde_json::json!({
                "series": EventSeries { count, last_observed_time: MicroTime(Timestamp::now()) },
            });
            let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
            return api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop);
        }
        let mut event = self.new_event(regarding, type_, reason, action, note);
        event.related = related.cloned();
        let name = event.metadata.name.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &event).await?;
        let mut series = self
            .series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        forget_old(&mut series, now);
        if series.len() >= MAX_SERIES
            && let Some(oldest) = series
                .iter()
                .min_by_key(|(_, open)| open.last_seen)
                .map(|(key, _)| key.clone())
        {
            series.remove(&oldest);
        }
        series.insert(
            key,
            OpenSeries {
                event_name: name,
                namespace,
                count: 1,
                last_seen: now,
            },
        );
        Ok(())
    }

    /// Open series (for tests of the bound).
    pub fn open_series(&self) -> usize {
        self.series
            .lock()
            .expect("event series lock poisoned")
            .len()
    }

    fn new_event(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) -> Event {
        let now = Timestamp::now();
        Event {
            metadata: ObjectMeta {
                // Unique per occurrence, readable in `kubectl get events` (as client-go names them).
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond()
                )),
                namespace: regarding.namespace.clone(),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(type_.as_str().into()),
            reason: Some(reason.into()),
            action: Some(action.into()),
            note: Some(note),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        }
    }
}

fn forget_old(series: &mut HashMap<SeriesKey, OpenSeries>, now: Instant) {
    series.retain(|_, open| now.duration_since(open.last_seen) < SERIES_TTL);
}

/// A note cut to what the API server accepts, on a character boundary.
fn truncate_note(note: &str) -> String {
    if note.len() <= MAX_NOTE_BYTES {
        return note.to_string();
    }
    let mut cut = note[..note.floor_char_boundary(MAX_NOTE_BYTES - 3)].to_string();
    cut.push_str("...");
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let note = "é".repeat(600);
        let cut = truncate_note(&note);
        assert!(cut.len() <= MAX_NOTE_BYTES);
        assert!(cut.ends_with("..."));
        assert_eq!(truncate_note("short"), "short");
    }

    #[test]
    fn old_series_are_forgotten() {
        let now = Instant::now();
        let key = |note: &str| SeriesKey {
            regarding_uid: "u".into(),
            type_: EventType::Normal,
            reason: "R".into(),
            note: note.into(),
        };
        let open = |age: Duration| OpenSeries {
            event_name: "e".into(),
            namespace: "ns".into(),
            count: 1,
            last_seen: now - age,
        };
        let mut series = HashMap::from([
            (key("old"), open(SERIES_TTL + Duration::from_secs(1))),
            (key("fresh"), open(Duration::from_secs(1))),
        ]);
        forget_old(&mut series, now);
        assert_eq!(series.len(), 1);
        assert!(series.contains_key(&key("fresh")));
    }
}
