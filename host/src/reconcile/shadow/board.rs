//! The shadow candidates of every guest of the process, by guest name, for the `/shadow`
//! endpoint. Each controller puts its candidate slot here while it runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

use super::CandidateSlot;

/// Every guest's candidate slot.
#[derive(Default)]
pub struct ShadowBoard {
    slots: Mutex<BTreeMap<String, Arc<CandidateSlot>>>,
}

impl ShadowBoard {
    /// Shows the candidate slot of the guest `guest` (replacing one of a controller that ended).
    pub fn show(&self, guest: &str, slot: &Arc<CandidateSlot>) {
        self.lock().insert(guest.to_owned(), Arc::clone(slot));
    }

    /// Stops showing `slot` (its controller stopped); a newer slot of the same guest stays.
    pub fn hide(&self, guest: &str, slot: &Arc<CandidateSlot>) {
        let mut slots = self.lock();
        if slots
            .get(guest)
            .is_some_and(|shown| Arc::ptr_eq(shown, slot))
        {
            slots.remove(guest);
        }
    }

    /// `{"guests": {NAME: report or null}}`: each guest's candidate report (see
    /// [`CandidateSlot::to_json`]).
    pub fn to_json(&self) -> Value {
        let guests: Map<String, Value> = self
            .lock()
            .iter()
            .map(|(guest, slot)| (guest.clone(), slot.to_json()))
            .collect();
        serde_json::json!({ "guests": guests })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<CandidateSlot>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
