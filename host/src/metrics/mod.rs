//! Prometheus metrics: the registry, the recording handle each guest's controller gets
//! (`guest.rs`), and the readiness state `/readyz` reports (served by `http.rs`).
//!
//! Every label takes values from a fixed set (see `labels.rs`), plus `guest`, the name of a
//! guest in this host, so the number of series stays bounded however many parents there are.
//! `guest_info` carries each serving guest's name, version and digest: one series per guest.

mod guest;
mod labels;
mod process;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

pub use guest::{GuestMetrics, InFlight};
use labels::{
    ActionLabel, GuestLabel, InfoLabel, KindLabel, RefusalLabel, ReloadLabel, ResultLabel,
};
pub use labels::{
    ChildAction, GuestFailureKind, GuestLabels, ReconcileResult, RefusalReason, ReloadResult,
};

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
}

/// What a controller knows about its parents, read at each scrape.
pub struct ParentCounts {
    /// Parents whose current generation has not been reconciled yet.
    pub waiting: i64,
    /// Parents the host keeps per-parent state for.
    pub with_state: usize,
}

/// Counts a controller's parents at each scrape.
pub type ParentProbe = Box<dyn Fn() -> ParentCounts + Send + Sync>;

/// The guest's child kinds whose watch is failing, asked at each `/readyz`.
pub type ChildWatchProbe = Box<dyn Fn() -> Vec<String> + Send + Sync>;

/// What `/readyz` knows of one guest.
#[derive(Default)]
struct GuestReadiness {
    /// The active code (`None` until a guest is loaded).
    info: Option<InfoLabel>,
    caches_synced: bool,
    parent_watch_failing: bool,
    /// Why the guest's controller is not running yet (its parent kind is not served…).
    waiting: Option<String>,
    probe: Option<ParentProbe>,
    child_watches: Option<ChildWatchProbe>,
}

impl GuestReadiness {
    /// `None` when ready, else why not.
    fn not_ready(&self, leadership: Leadership) -> Option<String> {
        if self.info.is_none() {
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

/// The host's metrics and readiness.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabel, Counter>,
    reconcile_duration: Family<GuestLabel, Histogram>,
    guest_call_duration: Family<GuestLabel, Histogram>,
    guest_failures: Family<KindLabel, Counter>,
    children: Family<ActionLabel, Counter>,
    reconciles_in_flight: Family<GuestLabel, Gauge>,
    queue_depth: Family<GuestLabel, Gauge>,
    parent_states: Family<GuestLabel, Gauge>,
    swap_sweep_remaining: Family<GuestLabel, Gauge>,
    leader: Gauge,
    leadership: AtomicU8,
    guest_reloads: Family<ReloadLabel, Counter>,
    guest_refusals: Family<RefusalLabel, Counter>,
    guest_info: Family<InfoLabel, Gauge>,
    /// Per guest, by name: what `/readyz` and the parent gauges read.
    guests: Mutex<BTreeMap<String, GuestReadiness>>,
}

/// 1 ms .. ~33 s
fn reconcile_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// 10 µs .. ~5 s
fn guest_call_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.000_01, 2.0, 20))
}

impl Default for Metrics {
    fn default() -> Self {
        // The host's own metrics carry the `reconciler_` prefix; the standard process metrics
        // (`process_cpu_seconds_total`…) are named as every Prometheus client names them.
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessMetrics));
        let registry = root.sub_registry_with_prefix("reconciler");
        let metrics = Self {
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(reconcile_buckets),
            guest_call_duration: Family::new_with_constructor(guest_call_buckets),
            guest_failures: Family::default(),
            children: Family::default(),
            reconciles_in_flight: Family::default(),
            queue_depth: Family::default(),
            parent_states: Family::default(),
            swap_sweep_remaining: Family::default(),
            leader: Gauge::default(),
            leadership: AtomicU8::new(Leadership::Unknown as u8),
            guest_reloads: Family::default(),
            guest_refusals: Family::default(),
            guest_info: Family::default(),
            guests: Mutex::default(),
            registry: Registry::default(),
        };
        metrics.register(registry);
        Self {
            registry: root,
            ..metrics
        }
    }
}

impl Metrics {
    /// Registers the host's own metrics (`reconciler_…`) in `registry`.
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "reconciles",
            "Reconciles by result and guest",
            self.reconciles.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Wall time of one reconcile, guest call and API requests included",
            Unit::Seconds,
            self.reconcile_duration.clone(),
        );
        registry.register_with_unit(
            "guest_call_duration",
            "Wall time of one guest call: fresh store, instantiation, the call, JSON in and out",
            Unit::Seconds,
            self.guest_call_duration.clone(),
        );
        registry.register(
            "guest_failures",
            "Guest calls or outputs that produced nothing applicable, by kind",
            self.guest_failures.clone(),
        );
        registry.register(
            "children",
            "Desired or observed children by what the host did with them",
            self.children.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now (each controller's work in progress)",
            self.reconciles_in_flight.clone(),
        );
        registry.register(
            "queue_depth",
            "Parents whose current generation has not been reconciled yet (the controller's \
             backlog; reconciles caused by child changes or the periodic resync are not counted)",
            self.queue_depth.clone(),
        );
        registry.register(
            "parent_states",
            "Parents the host keeps per-parent state for (backoff, last reconciled generation, \
             last written status); follows the parents that exist",
            self.parent_states.clone(),
        );
        registry.register(
            "swap_sweep_remaining",
            "Parents of a guest still to be sent for reconciling with the guest swapped in last \
             (0: every parent is on its way to the active guest)",
            self.swap_sweep_remaining.clone(),
        );
        registry.register(
            "leader",
            "1 when this replica reconciles (it holds the leader Lease, or runs without leader \
             election), 0 on standby",
            self.leader.clone(),
        );
        registry.register(
            "guest_reloads",
            "Attempts to swap in a new guest file, by result",
            self.guest_reloads.clone(),
        );
        registry.register(
            "guest_refusals",
            "Guests of a folder that were not started, by reason",
            self.guest_refusals.clone(),
        );
        registry.register(
            "guest_info",
            "Each serving guest's active code (always 1)",
            self.guest_info.clone(),
        );
    }

    /// Records this replica's part in leader election.
    pub fn set_leadership(&self, leadership: Leadership) {
        self.leadership.store(leadership as u8, Ordering::Release);
        self.leader.set(i64::from(matches!(
            leadership,
            Leadership::Leader | Leadership::NotElecting
        )));
    }

    pub fn leadership(&self) -> Leadership {
        Leadership::from_u8(self.leadership.load(Ordering::Acquire))
    }

    /// Counts a guest of a folder that was not started.
    pub fn guest_refused(&self, guest: &str, reason: RefusalReason) {
        self.guest_refusals
            .get_or_create(&RefusalLabel {
                reason,
                guest: guest.to_owned(),
            })
            .inc();
    }

    /// Forgets the refusals of a guest file that is gone: without this, every name ever refused
    /// would keep a series (2 000 junk files, 2 000 series).
    pub fn forget_refusals(&self, guest: &str) {
        for reason in RefusalReason::ALL {
            self.guest_refusals.remove(&RefusalLabel {
                reason,
                guest: guest.to_owned(),
            });
        }
    }

    /// Forgets a guest that no longer serves: its `guest_info`, gauges and readiness. Its
    /// counters stay, as counters do.
    pub fn forget_guest(&self, guest: &str) {
        let state = self.lock_guests().remove(guest);
        if let Some(info) = state.and_then(|s| s.info) {
            self.guest_info.remove(&info);
        }
        let label = GuestLabel {
            guest: guest.to_owned(),
        };
        for family in [
            &self.reconciles_in_flight,
            &self.queue_depth,
            &self.parent_states,
            &self.swap_sweep_remaining,
        ] {
            family.remove(&label);
        }
    }

    /// Whether `/readyz` answers ready: the role is known, and a standby is ready once it knows
    /// it is one (it has no caches to sync until it leads); a reconciling replica is ready when
    /// it serves at least one guest and every guest it serves is ready.
    pub fn ready(&self) -> bool {
        self.readiness().0
    }

    /// Readiness and its report: one line per guest, `[+]guest NAME ok` or
    /// `[-]guest NAME not ready: …` (the format of the API server's own `/readyz?verbose`).
    pub fn readiness(&self) -> (bool, String) {
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
        let guests = self.lock_guests();
        // A standby loads its guests when it leads: having none is its normal state.
        if guests.is_empty() && leadership != Leadership::Standby {
            report.push_str("[-]no guest loaded\n");
            ready = false;
        }
        for (name, state) in guests.iter() {
            match state.not_ready(leadership) {
                None => {
                    let _ = writeln!(report, "[+]guest {name} ok");
                }
                Some(why) => {
                    ready = false;
                    let _ = writeln!(report, "[-]guest {name} not ready: {why}");
                }
            }
        }
        (ready, report)
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        for (name, state) in self.lock_guests().iter() {
            let label = GuestLabel {
                guest: name.clone(),
            };
            let counts = state.probe.as_ref().map(|probe| probe());
            let (waiting, with_state) = counts.map_or((0, 0), |c| (c.waiting, c.with_state));
            self.queue_depth.get_or_create(&label).set(waiting);
            self.parent_states
                .get_or_create(&label)
                .set(i64::try_from(with_state).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    fn lock_guests(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, GuestReadiness>> {
        self.guests.lock().expect("guest readiness lock poisoned")
    }

    /// Changes one guest's readiness state, creating it when new.
    fn update_guest(&self, guest: &str, change: impl FnOnce(&mut GuestReadiness)) {
        change(self.lock_guests().entry(guest.to_owned()).or_default());
    }

    /// Changes one guest's readiness state if the guest is listed. What a stopping controller
    /// reports goes through here: a guest the supervisor already forgot (removed, or leadership
    /// lost) must not come back as a guest with nothing loaded.
    fn update_listed_guest(&self, guest: &str, change: impl FnOnce(&mut GuestReadiness)) {
        if let Some(state) = self.lock_guests().get_mut(guest) {
            change(state);
        }
    }
}

#[cfg(test)]
mod tests;
