//! Prometheus metrics: the registry and the recording handle each guest's controller gets
//! (`guest.rs`), served on `/metrics` by `http.rs`. Readiness is not here: see `readiness/`.
//!
//! Every label takes values from a fixed set (see `labels.rs`), plus `guest`, the name of a
//! guest in this host, so the number of series stays bounded however many parents there are.
//! `guest_info` carries each serving guest's name, version and digest: one series per guest.

mod guest;
mod labels;
mod process;

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

pub use guest::{GuestMetrics, InFlight};
use labels::{
    ActionLabel, GuestLabel, InfoLabel, KindLabel, RefusalLabel, ReloadLabel, ResultLabel,
    ShadowLabel,
};
pub use labels::{
    ChildAction, GuestFailureKind, GuestLabels, ReconcileResult, RefusalReason, ReloadResult,
    ShadowVerdict,
};

/// What a controller knows about its parents, read at each scrape.
pub struct ParentCounts {
    /// Parents whose current generation has not been reconciled yet.
    pub waiting: i64,
    /// Parents the host keeps per-parent state for.
    pub with_state: usize,
    /// Parents whose last reconcile failed.
    pub failing: usize,
}

/// Counts a controller's parents at each scrape.
pub type ParentProbe = Box<dyn Fn() -> ParentCounts + Send + Sync>;

/// What the process's shared budgets and readiness are, read at each scrape.
pub struct HostCounts {
    /// `/readyz` would answer 200.
    pub ready: bool,
    pub guest_memory_budget_bytes: u64,
    pub guest_memory_in_use_bytes: u64,
    pub reconcile_slots: usize,
    pub reconcile_slots_in_use: usize,
}

/// Reads the process's [`HostCounts`] at each scrape.
pub type HostProbe = Box<dyn Fn() -> HostCounts + Send + Sync>;

/// What the metrics keep of one guest between scrapes.
#[derive(Default)]
struct GuestEntry {
    /// The active code's `guest_info` labels (`None` until a guest is loaded).
    info: Option<InfoLabel>,
    /// Counts the parents for `queue_depth` and `parent_states` while its controller runs.
    probe: Option<ParentProbe>,
}

/// The host's metrics.
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
    parents_failing: Family<GuestLabel, Gauge>,
    parent_watch_failing: Family<GuestLabel, Gauge>,
    ready: Gauge,
    guest_memory_budget: Gauge,
    guest_memory_in_use: Gauge,
    reconcile_slots: Gauge,
    reconcile_slots_in_use: Gauge,
    /// Fills the five gauges above at each scrape (unset: they stay 0).
    host_probe: Mutex<Option<HostProbe>>,
    swap_sweep_remaining: Family<GuestLabel, Gauge>,
    leader: Gauge,
    guest_reloads: Family<ReloadLabel, Counter>,
    guest_refusals: Family<RefusalLabel, Counter>,
    guest_info: Family<InfoLabel, Gauge>,
    shadow_parents: Family<ShadowLabel, Gauge>,
    /// Per guest, by name: its `guest_info` and what the parent gauges read.
    guests: Mutex<BTreeMap<String, GuestEntry>>,
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
            parents_failing: Family::default(),
            parent_watch_failing: Family::default(),
            ready: Gauge::default(),
            guest_memory_budget: Gauge::default(),
            guest_memory_in_use: Gauge::default(),
            reconcile_slots: Gauge::default(),
            reconcile_slots_in_use: Gauge::default(),
            host_probe: Mutex::default(),
            swap_sweep_remaining: Family::default(),
            leader: Gauge::default(),
            guest_reloads: Family::default(),
            guest_refusals: Family::default(),
            guest_info: Family::default(),
            shadow_parents: Family::default(),
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
    /// The gauges the alerts of `deploy/monitoring/` watch beside the counters: per guest, parents
    /// failing and a failing parent watch; for the process, readiness and the shared budgets.
    fn register_alert_gauges(&self, registry: &mut Registry) {
        registry.register(
            "parents_failing",
            "Parents whose last reconcile failed (retried with backoff)",
            self.parents_failing.clone(),
        );
        registry.register(
            "parent_watch_failing",
            "1 while the guest's parent watch fails (its CRD deleted, or the watch not allowed)",
            self.parent_watch_failing.clone(),
        );
        registry.register("ready", "1 while /readyz answers 200", self.ready.clone());
        registry.register_with_unit(
            "guest_memory_budget",
            "Memory all guest calls running at once may hold (--guest-memory-budget-mib)",
            Unit::Bytes,
            self.guest_memory_budget.clone(),
        );
        registry.register_with_unit(
            "guest_memory_in_use",
            "Memory of the guest memory budget that running guest calls hold now",
            Unit::Bytes,
            self.guest_memory_in_use.clone(),
        );
        registry.register(
            "reconcile_slots",
            "Reconciles that may run at once, by all guests together (--concurrency)",
            self.reconcile_slots.clone(),
        );
        registry.register(
            "reconcile_slots_in_use",
            "Reconcile slots taken now",
            self.reconcile_slots_in_use.clone(),
        );
    }

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
        self.register_alert_gauges(registry);
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
        registry.register(
            "shadow_parents",
            "Parents by what the guest's shadow candidate (NAME.candidate.wasm) decided for them \
             against the active guest: agree, diverge or fail (see docs/rolling-out.md)",
            self.shadow_parents.clone(),
        );
    }

    /// Whether this replica reconciles (`reconciler_leader`).
    pub fn set_leader(&self, reconciles: bool) {
        self.leader.set(i64::from(reconciles));
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

    /// Forgets a guest that no longer serves: its `guest_info` and gauges. Its counters stay,
    /// as counters do.
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
            &self.parents_failing,
            &self.parent_watch_failing,
            &self.swap_sweep_remaining,
        ] {
            family.remove(&label);
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        for (name, state) in self.lock_guests().iter() {
            let label = GuestLabel {
                guest: name.clone(),
            };
            let counts = state.probe.as_ref().map(|probe| probe());
            let (waiting, with_state, failing) =
                counts.map_or((0, 0, 0), |c| (c.waiting, c.with_state, c.failing));
            self.queue_depth.get_or_create(&label).set(waiting);
            self.parent_states
                .get_or_create(&label)
                .set(saturate(with_state));
            self.parents_failing
                .get_or_create(&label)
                .set(saturate(failing));
        }
        if let Some(probe) = self.lock_host_probe().as_ref() {
            let host = probe();
            self.ready.set(i64::from(host.ready));
            self.guest_memory_budget
                .set(saturate(host.guest_memory_budget_bytes));
            self.guest_memory_in_use
                .set(saturate(host.guest_memory_in_use_bytes));
            self.reconcile_slots.set(saturate(host.reconcile_slots));
            self.reconcile_slots_in_use
                .set(saturate(host.reconcile_slots_in_use));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// Sets how the process's readiness and shared budgets are read at each scrape.
    pub fn set_host_probe(&self, probe: HostProbe) {
        *self.lock_host_probe() = Some(probe);
    }

    fn lock_host_probe(&self) -> std::sync::MutexGuard<'_, Option<HostProbe>> {
        self.host_probe.lock().expect("host probe lock poisoned")
    }

    fn lock_guests(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, GuestEntry>> {
        self.guests.lock().expect("guest readiness lock poisoned")
    }

    /// Changes what is kept of one guest, creating it when new.
    fn update_guest(&self, guest: &str, change: impl FnOnce(&mut GuestEntry)) {
        change(self.lock_guests().entry(guest.to_owned()).or_default());
    }

    /// Changes what is kept of one guest if it is listed. What a stopping controller reports
    /// goes through here: a guest the supervisor already forgot (removed, or leadership lost)
    /// must not come back.
    fn update_listed_guest(&self, guest: &str, change: impl FnOnce(&mut GuestEntry)) {
        if let Some(state) = self.lock_guests().get_mut(guest) {
            change(state);
        }
    }
}

/// A count as a gauge value (gauges are `i64`; no count here comes near the limit).
fn saturate(count: impl TryInto<i64>) -> i64 {
    count.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
