//! Prometheus metrics: the registry, the bounded label enums, the recording methods, and the
//! readiness state `/readyz` reports (served by `http.rs`).
//!
//! Every label takes values from a fixed set (no object names, no error texts), so the number of
//! series stays bounded however many parents there are. The one exception, `guest_info`, carries
//! the active guest's name, version and digest, and holds exactly one series at a time.

mod process;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// A label enum whose values are written in snake_case, as Prometheus users expect
/// (`result="invalid_spec"`), from one table per enum.
macro_rules! label_values {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
        pub enum $name { $($(#[$vmeta])* $variant,)+ }

        impl $name {
            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    };
}

label_values! {
    /// How a reconcile ended.
    pub enum ReconcileResult {
        Success => "success",
        InvalidSpec => "invalid_spec",
        GuestFailed => "guest_failed",
        PolicyViolation => "policy_violation",
        ApplyFailed => "apply_failed",
        StatusFailed => "status_failed",
        Other => "other",
    }
}

label_values! {
    /// Why a guest call produced nothing usable.
    pub enum GuestFailureKind {
        Trap => "trap",
        Timeout => "timeout",
        Memory => "memory",
        Transient => "transient",
        InvalidOutput => "invalid_output",
        Policy => "policy",
    }
}

label_values! {
    /// What happened to one desired or observed child.
    pub enum ChildAction {
        /// Sent with server-side apply.
        Applied => "applied",
        /// Already as desired: no request sent.
        Unchanged => "unchanged",
        /// Deleted because no longer desired.
        Pruned => "pruned",
    }
}

label_values! {
    /// How a hot-swap attempt ended.
    pub enum ReloadResult {
        Swapped => "swapped",
        Refused => "refused",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: ReconcileResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: GuestFailureKind,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: ChildAction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabel {
    result: ReloadResult,
}

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

/// What the controller knows about its parents, read at each scrape.
pub struct ParentCounts {
    /// Parents whose current generation has not been reconciled yet.
    pub waiting: i64,
    /// Parents the host keeps per-parent state for.
    pub with_state: usize,
}

/// Counts the controller's parents at each scrape.
pub type ParentProbe = Box<dyn Fn() -> ParentCounts + Send + Sync>;

/// Identity of the active guest.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GuestLabels {
    pub name: String,
    pub version: String,
    pub digest: String,
}

/// The host's metrics and readiness.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabel, Counter>,
    reconcile_duration: Histogram,
    guest_call_duration: Histogram,
    guest_failures: Family<KindLabel, Counter>,
    children: Family<ActionLabel, Counter>,
    reconciles_in_flight: Gauge,
    queue_depth: Gauge,
    parent_states: Gauge,
    parent_probe: std::sync::Mutex<Option<ParentProbe>>,
    leader: Gauge,
    leadership: AtomicU8,
    guest_reloads: Family<ReloadLabel, Counter>,
    guest_info: Family<GuestLabels, Gauge>,
    active_guest: std::sync::Mutex<Option<GuestLabels>>,
    caches_synced: AtomicBool,
    parent_watch_failing: AtomicBool,
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
            // 1 ms .. ~33 s
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            // 10 µs .. ~5 s
            guest_call_duration: Histogram::new(exponential_buckets(0.000_01, 2.0, 20)),
            guest_failures: Family::default(),
            children: Family::default(),
            reconciles_in_flight: Gauge::default(),
            queue_depth: Gauge::default(),
            parent_states: Gauge::default(),
            parent_probe: std::sync::Mutex::new(None),
            leader: Gauge::default(),
            leadership: AtomicU8::new(Leadership::Unknown as u8),
            guest_reloads: Family::default(),
            guest_info: Family::default(),
            active_guest: std::sync::Mutex::new(None),
            caches_synced: AtomicBool::new(false),
            parent_watch_failing: AtomicBool::new(false),
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
            "Reconciles by result",
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
            "Reconciles running now (the controller's work in progress)",
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
            "guest_info",
            "The active guest (always 1)",
            self.guest_info.clone(),
        );
    }
}

impl Metrics {
    pub fn reconcile_finished(&self, result: ReconcileResult, seconds: f64) {
        self.reconciles.get_or_create(&ResultLabel { result }).inc();
        self.reconcile_duration.observe(seconds);
    }

    pub fn guest_called(&self, seconds: f64) {
        self.guest_call_duration.observe(seconds);
    }

    pub fn guest_failed(&self, kind: GuestFailureKind) {
        self.guest_failures.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn children(&self, action: ChildAction, count: usize) {
        self.children
            .get_or_create(&ActionLabel { action })
            .inc_by(count as u64);
    }

    /// Reconciles running now.
    pub fn reconciles_in_flight(&self) -> i64 {
        self.reconciles_in_flight.get()
    }

    /// Counts a reconcile as running until the guard drops.
    pub fn in_flight(self: &Arc<Self>) -> InFlight {
        self.reconciles_in_flight.inc();
        InFlight(Arc::clone(self))
    }

    pub fn guest_reloaded(&self, result: ReloadResult) {
        self.guest_reloads
            .get_or_create(&ReloadLabel { result })
            .inc();
    }

    /// Makes `guest` the one `guest_info` reports.
    pub fn set_active_guest(&self, guest: GuestLabels) {
        let mut active = self
            .active_guest
            .lock()
            .expect("active guest lock poisoned");
        if let Some(previous) = active.take() {
            self.guest_info.remove(&previous);
        }
        self.guest_info.get_or_create(&guest).set(1);
        *active = Some(guest);
    }

    /// Marks the child caches as listed (or not, while the controller restarts); `/readyz`
    /// answers ready only when they are.
    pub fn set_caches_synced(&self, synced: bool) {
        self.caches_synced.store(synced, Ordering::Release);
    }

    /// Marks the parent watch as failing (e.g. the parent kind's CRD was deleted) or working
    /// again; `/readyz` answers not ready while it fails.
    pub fn set_parent_watch_failing(&self, failing: bool) {
        self.parent_watch_failing.store(failing, Ordering::Release);
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

    /// Sets how `queue_depth` and `parent_states` are counted (`None`: 0, while no controller
    /// runs).
    pub fn set_parent_probe(&self, probe: Option<ParentProbe>) {
        *self
            .parent_probe
            .lock()
            .expect("parent probe lock poisoned") = probe;
    }

    /// Whether `/readyz` answers ready. A standby is ready once it knows it is one: it has no
    /// caches to sync until it leads.
    pub fn ready(&self) -> bool {
        let role_ready = match self.leadership() {
            Leadership::Unknown => false,
            Leadership::Standby => true,
            Leadership::Leader | Leadership::NotElecting => {
                self.caches_synced.load(Ordering::Acquire)
                    && !self.parent_watch_failing.load(Ordering::Acquire)
            }
        };
        role_ready && self.active_guest.lock().expect("lock").is_some()
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let counts = self
            .parent_probe
            .lock()
            .expect("parent probe lock poisoned")
            .as_ref()
            .map(|probe| probe());
        let (waiting, with_state) = counts.map_or((0, 0), |c| (c.waiting, c.with_state));
        self.queue_depth.set(waiting);
        self.parent_states
            .set(i64::try_from(with_state).unwrap_or(i64::MAX));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Decrements `reconciles_in_flight` when dropped.
pub struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.reconciles_in_flight.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_up_with_bounded_labels() {
        let metrics = Metrics::default();
        metrics.reconcile_finished(ReconcileResult::Success, 0.01);
        metrics.children(ChildAction::Applied, 13);
        metrics.guest_failed(GuestFailureKind::Timeout);
        let text = metrics.encode();
        assert!(
            text.contains("reconciler_reconciles_total{result=\"success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("reconciler_children_total{action=\"applied\"} 13"),
            "{text}"
        );
        assert!(
            text.contains("reconciler_guest_failures_total{kind=\"timeout\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn guest_info_holds_only_the_active_guest() {
        let metrics = Metrics::default();
        let guest = |digest: &str| GuestLabels {
            name: "g".into(),
            version: "1".into(),
            digest: digest.into(),
        };
        metrics.set_active_guest(guest("sha256:aa"));
        metrics.set_active_guest(guest("sha256:bb"));
        let text = metrics.encode();
        assert!(text.contains("digest=\"sha256:bb\""), "{text}");
        assert!(!text.contains("digest=\"sha256:aa\""), "{text}");
    }

    fn a_guest() -> GuestLabels {
        GuestLabels {
            name: "g".into(),
            version: "1".into(),
            digest: "d".into(),
        }
    }

    #[test]
    fn ready_needs_a_role_synced_caches_and_a_guest() {
        let metrics = Metrics::default();
        metrics.set_active_guest(a_guest());
        metrics.set_caches_synced(true);
        assert!(!metrics.ready(), "role unknown");
        metrics.set_leadership(Leadership::NotElecting);
        assert!(metrics.ready());
        metrics.set_caches_synced(false);
        assert!(!metrics.ready(), "caches not synced");
        metrics.set_caches_synced(true);
        metrics.set_parent_watch_failing(true);
        assert!(!metrics.ready(), "parent watch failing");
        metrics.set_parent_watch_failing(false);
        assert!(metrics.ready());
        metrics.set_caches_synced(false);
        let no_guest = Metrics::default();
        no_guest.set_leadership(Leadership::NotElecting);
        no_guest.set_caches_synced(true);
        assert!(!no_guest.ready(), "no guest");
    }

    #[test]
    fn a_standby_is_ready_without_caches_and_reports_it() {
        let metrics = Metrics::default();
        metrics.set_active_guest(a_guest());
        metrics.set_leadership(Leadership::Standby);
        assert!(metrics.ready());
        assert!(metrics.encode().contains("reconciler_leader 0"));
        metrics.set_leadership(Leadership::Leader);
        assert!(!metrics.ready(), "a leader needs its caches");
        assert!(metrics.encode().contains("reconciler_leader 1"));
    }

    #[test]
    fn parent_counts_come_from_the_probe_at_scrape_time() {
        let metrics = Metrics::default();
        assert!(metrics.encode().contains("reconciler_queue_depth 0"));
        metrics.set_parent_probe(Some(Box::new(|| ParentCounts {
            waiting: 7,
            with_state: 3,
        })));
        let text = metrics.encode();
        assert!(text.contains("reconciler_queue_depth 7"), "{text}");
        assert!(text.contains("reconciler_parent_states 3"), "{text}");
    }

    #[test]
    fn durations_declare_their_unit_and_process_metrics_are_standard() {
        let text = Metrics::default().encode();
        for line in [
            "# UNIT reconciler_reconcile_duration_seconds seconds",
            "# UNIT reconciler_guest_call_duration_seconds seconds",
            "# TYPE process_cpu_seconds counter",
            "# TYPE process_resident_memory_bytes gauge",
            "# TYPE process_open_fds gauge",
            "# TYPE process_start_time_seconds gauge",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
    }

    #[test]
    fn label_values_are_snake_case() {
        for value in [
            ReconcileResult::InvalidSpec.as_str(),
            ReconcileResult::PolicyViolation.as_str(),
            GuestFailureKind::InvalidOutput.as_str(),
            ChildAction::Unchanged.as_str(),
            ReloadResult::Swapped.as_str(),
        ] {
            assert!(
                value.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{value}"
            );
        }
    }
}
