//! The guest currently making decisions, with the child kinds it declared resolved against the
//! API server. Swapped as a whole: a reconcile takes one snapshot and uses it throughout, so it
//! never mixes two guests' decisions or kinds.

use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

use crate::cluster::ResolvedKind;
use crate::metrics::GuestLabels;
use crate::sandbox::{Contract, LoadedGuest};

use super::requirements_probe::RequirementsProbe;

/// A loaded guest and its resolved child and related kinds.
pub struct ActiveGuest {
    pub guest: Arc<LoadedGuest>,
    pub child_kinds: Vec<Arc<ResolvedKind>>,
    /// The kinds it reads (contract 0.2 `related`); empty for most guests.
    pub related_kinds: Vec<Arc<ResolvedKind>>,
    /// Whether its requirements are a function of the parent (`requirements_probe.rs`).
    pub requirements_probe: RequirementsProbe,
}

impl ActiveGuest {
    /// `guest` with its resolved kinds, not probed yet.
    pub fn new(
        guest: Arc<LoadedGuest>,
        child_kinds: Vec<Arc<ResolvedKind>>,
        related_kinds: Vec<Arc<ResolvedKind>>,
    ) -> Self {
        Self {
            guest,
            child_kinds,
            related_kinds,
            requirements_probe: RequirementsProbe::default(),
        }
    }

    /// `potatohead 0.1.0 (sha256:568beca8fbd1…, contract 0.2.0)`: for logs.
    pub fn summary(&self) -> String {
        let manifest = self.guest.manifest();
        let digest = self.guest.digest();
        let short = digest.get(..19).unwrap_or(digest);
        let config = match self.guest.config_summary().as_str() {
            "none" => String::new(),
            described => format!(", config {described}"),
        };
        format!(
            "{} {} ({short}…, contract {}{config})",
            manifest.name,
            manifest.version,
            self.guest.contract().version()
        )
    }

    /// Who needs this guest's child kinds in the shared caches: its parent kind's controller,
    /// named after the parent kind (`PotatoHead.podtato.example.com/v1alpha1`).
    pub fn user(&self) -> String {
        crate::cluster::display_gvk(&self.guest.manifest().parent)
    }

    /// The labels of the `guest_info` metric.
    pub fn metric_labels(&self) -> GuestLabels {
        guest_labels(&self.guest)
    }

    /// What the host writes to `status.reconciler`: which logic produced this status.
    pub fn status_stamp(&self) -> Value {
        status_stamp(&self.guest)
    }
}

/// `status.reconciler` for `guest`: its name, version and digest, and the contract version it
/// speaks when that is 0.2 or later. A 0.1 guest's stamp stays as it always was: its parent's CRD
/// may not declare `contract`, and a field the API server prunes would look like a change on
/// every reconcile.
pub fn status_stamp(guest: &LoadedGuest) -> Value {
    let manifest = guest.manifest();
    let mut stamp =
        json!({ "name": manifest.name, "version": manifest.version, "digest": guest.digest() });
    if guest.contract() != Contract::V0_1 {
        stamp["contract"] = json!(guest.contract().version());
    }
    stamp
}

/// The labels of the `guest_info` metric for `guest`.
pub fn guest_labels(guest: &LoadedGuest) -> GuestLabels {
    let manifest = guest.manifest();
    GuestLabels {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        digest: guest.digest().to_string(),
    }
}

/// Holds the active guest; replaced atomically by a hot swap.
pub struct GuestSlot {
    active: RwLock<Arc<ActiveGuest>>,
}

impl GuestSlot {
    pub fn new(active: ActiveGuest) -> Self {
        Self {
            active: RwLock::new(Arc::new(active)),
        }
    }

    /// The guest to use for one reconcile.
    pub fn current(&self) -> Arc<ActiveGuest> {
        Arc::clone(&self.active.read().expect("guest slot lock poisoned"))
    }

    /// Makes `next` the active guest and returns the one it replaced.
    pub fn replace(&self, next: ActiveGuest) -> Arc<ActiveGuest> {
        std::mem::replace(
            &mut *self.active.write().expect("guest slot lock poisoned"),
            Arc::new(next),
        )
    }

    /// Puts back a guest kept from before (a rollback) and returns the one it replaced.
    pub fn restore(&self, kept: Arc<ActiveGuest>) -> Arc<ActiveGuest> {
        std::mem::replace(
            &mut *self.active.write().expect("guest slot lock poisoned"),
            kept,
        )
    }
}
