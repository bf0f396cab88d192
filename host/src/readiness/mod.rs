//! Whether this replica is ready to reconcile, and why not: what `/readyz` answers (`http.rs`).
//! Its owner is the process (`run/`); each guest's controller reports through its own handle
//! ([`GuestReadiness`]), and the folder's supervisor forgets a guest that goes.
//!
//! A replica is ready once it knows its role: a standby at once (it has no caches to sync until
//! it leads); a reconciling replica when it serves at least one guest and every guest it serves
//! is loaded, has listed its child caches and has a working parent watch.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// This replica's part in leader election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Leadership {
    /// Starting: not known yet.
    Unknown = 0,
    /// Another replica leads; this one waits to take over.
    Standby = 1,
    /// This replica holds the Lease and reconciles.
    Leader = 2,
    /// Leader election is off: this replica reconciles.
    NotElecting = 3,
}

impl Leadership {
    fn from_u8(value: u8) -> Self {
        match value {
            1 => Self::Standby,
            2 => Self::Leader,
            3 => Self::NotElecting,
            _ => Self::Unknown,
        }
    }

    /// Whether a replica in this role reconciles.
    pub fn reconciles(self) -> bool {
        matches!(self, Self::Leader | Self::NotElecting)
    }
}

/// The guest's child kinds whose watch is failing, asked at each `/readyz`.
pub type ChildWatchProbe = Box<dyn Fn() -> Vec<String> + Send + Sync>;

/// What `/readyz` knows of one guest.
#[derive(Default)]
struct GuestState {
    /// Whether a guest is loaded (its code checked and active).
    loaded: bool,
    /// The contract version the active guest speaks (`0.2.0`), shown beside `ok`.
    contract: Option<&'static str>,
    caches_synced: bool,
    parent_watch_failing: bool,
    /// Why the guest's controller is not running yet (its parent kind is not served…).
    waiting: Option<String>,
    child_watches: Option<ChildWatchProbe>,
}

impl GuestState {
    /// `None` when ready, else why not.
    fn not_ready(&self, leadership: Leadership) -> Option<String> {
        if !self.loaded {
            return Some("no guest loaded".into());
        }
        if leadership == Leadership::Standby {
            return None;
        }
        if let Some(waiting) = &self.waiting {
            return Some(waiting.clone());
        }
        if !self.caches_synced {
            return Some("child caches syncing".into());
        }
        if self.parent_watch_failing {
            return Some(
                "the parent watch is failing (was the CustomResourceDefinition deleted?)".into(),
            );
        }
        let failing = self
            .child_watches
            .as_ref()
            .map(|probe| probe())
            .unwrap_or_default();
        if !failing.is_empty() {
            return Some(format!(
                "the watch of child kind {} is failing (was its CustomResourceDefinition \
                 deleted?); nothing is decided or pruned until it lists again",
                failing.join(", ")
            ));
        }
        None
    }
}

/// The process's readiness: its role, and each guest's state by name.
pub struct Readiness {
    leadership: AtomicU8,
    guests: Mutex<BTreeMap<String, GuestState>>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            leadership: AtomicU8::new(Leadership::Unknown as u8),
            guests: Mutex::default(),
        }
    }
}

impl Readiness {
    /// Records this replica's part in leader election.
    pub fn set_leadership(&self, leadership: Leadership) {
        self.leadership.store(leadership as u8, Ordering::Release);
    }

    pub fn leadership(&self) -> Leadership {
        Leadership::from_u8(self.leadership.load(Ordering::Acquire))
    }

    /// The handle through which the guest named `guest` reports.
    pub fn guest(self: &Arc<Self>, guest: &str) -> GuestReadiness {
        GuestReadiness {
            readiness: Arc::clone(self),
            guest: guest.to_owned(),
        }
    }

    /// Forgets a guest that no longer serves.
    pub fn forget(&self, guest: &str) {
        self.lock().remove(guest);
    }

    /// Whether `/readyz` answers ready (see the module's rules).
    pub fn ready(&self) -> bool {
        self.report().0
    }

    /// Readiness and its report: one line per guest, `[+]guest NAME ok` or
    /// `[-]guest NAME not ready: …` (the format of the API server's own `/readyz?verbose`).
    pub fn report(&self) -> (bool, String) {
        let leadership = self.leadership();
        let mut report = String::new();
        let mut ready = match leadership {
            Leadership::Unknown => {
                report.push_str("[-]leader election undecided\n");
                false
            }
            Leadership::Standby => {
                report.push_str("[+]standing by for the leader Lease\n");
                true
            }
            Leadership::Leader | Leadership::NotElecting => true,
        };
        let guests = self.lock();
        // A standby loads its guests when it leads: having none is its normal state.
        if guests.is_empty() && leadership != Leadership::Standby {
            report.push_str("[-]no guest loaded\n");
            ready = false;
        }
        for (name, state) in guests.iter() {
            match state.not_ready(leadership) {
                None => {
                    let _ = match state.contract {
                        Some(contract) => {
                            writeln!(report, "[+]guest {name} ok (contract {contract})")
                        }
                        None => writeln!(report, "[+]guest {name} ok"),
                    };
                }
                Some(why) => {
                    ready = false;
                    let _ = writeln!(report, "[-]guest {name} not ready: {why}");
                }
            }
        }
        (ready, report)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, GuestState>> {
        self.guests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One guest's part of the process's readiness.
#[derive(Clone)]
pub struct GuestReadiness {
    readiness: Arc<Readiness>,
    guest: String,
}

impl GuestReadiness {
    /// A guest speaking `contract` (`0.2.0`) is loaded, or swapped in: listed from now on,
    /// ready once its caches are.
    pub fn set_loaded(&self, contract: &'static str) {
        self.update(|state| {
            state.loaded = true;
            state.contract = Some(contract);
        });
    }

    /// Why the guest's controller is not running (`None`: it is starting or runs). Lists the
    /// guest.
    pub fn set_waiting(&self, why: Option<String>) {
        self.update(|state| state.waiting = why);
    }

    /// Marks the child caches as listed for this guest (or not, while its controller restarts);
    /// the guest is ready only when they are. This and the next two change a listed guest only:
    /// a stopping controller must not bring back a guest the supervisor already forgot.
    pub fn set_caches_synced(&self, synced: bool) {
        self.update_listed(|state| state.caches_synced = synced);
    }

    /// Marks the parent watch as failing (e.g. the parent kind's CRD was deleted) or working
    /// again; the guest is not ready while it fails.
    pub fn set_parent_watch_failing(&self, failing: bool) {
        self.update_listed(|state| state.parent_watch_failing = failing);
    }

    /// How `/readyz` learns which of the guest's child kinds' watches are failing.
    pub fn set_child_watch_probe(&self, probe: Option<ChildWatchProbe>) {
        self.update_listed(|state| state.child_watches = probe);
    }

    fn update(&self, change: impl FnOnce(&mut GuestState)) {
        change(self.readiness.lock().entry(self.guest.clone()).or_default());
    }

    fn update_listed(&self, change: impl FnOnce(&mut GuestState)) {
        if let Some(state) = self.readiness.lock().get_mut(&self.guest) {
            change(state);
        }
    }
}

#[cfg(test)]
mod tests;
