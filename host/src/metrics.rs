//! Prometheus metrics, and the HTTP server for `/metrics`, `/healthz` and `/readyz`.
//!
//! Every label takes values from a fixed set (no object names, no error texts), so the number of
//! series stays bounded however many parents there are. The one exception, `guest_info`, carries
//! the active guest's name, version and digest, and holds exactly one series at a time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// How a reconcile ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ReconcileResult {
    Success,
    InvalidSpec,
    GuestFailed,
    PolicyViolation,
    ApplyFailed,
    StatusFailed,
    Other,
}

/// Why a guest call produced nothing usable.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum GuestFailureKind {
    Trap,
    Timeout,
    Memory,
    Transient,
    InvalidOutput,
    Policy,
}

/// What happened to one desired or observed child.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ChildAction {
    /// Sent with server-side apply.
    Applied,
    /// Already as desired: no request sent.
    Unchanged,
    /// Deleted because no longer desired.
    Pruned,
}

/// How a hot-swap attempt ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum ReloadResult {
    Swapped,
    Refused,
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

/// Counts the parents waiting for a reconcile, evaluated at each scrape.
pub type BacklogProbe = Box<dyn Fn() -> i64 + Send + Sync>;

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
    backlog_probe: std::sync::Mutex<Option<BacklogProbe>>,
    leader: Gauge,
    leadership: AtomicU8,
    guest_reloads: Family<ReloadLabel, Counter>,
    guest_info: Family<GuestLabels, Gauge>,
    active_guest: std::sync::Mutex<Option<GuestLabels>>,
    caches_synced: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("reconciler");
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
            backlog_probe: std::sync::Mutex::new(None),
            leader: Gauge::default(),
            leadership: AtomicU8::new(Leadership::Unknown as u8),
            guest_reloads: Family::default(),
            guest_info: Family::default(),
            active_guest: std::sync::Mutex::new(None),
            caches_synced: AtomicBool::new(false),
            registry: Registry::default(),
        };
        registry.register(
            "reconciles",
            "Reconciles by result",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Wall time of one reconcile, guest call and API requests included",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "guest_call_duration_seconds",
            "Wall time of one guest call: fresh store, instantiation, the call, JSON in and out",
            metrics.guest_call_duration.clone(),
        );
        registry.register(
            "guest_failures",
            "Guest calls or outputs that produced nothing applicable, by kind",
            metrics.guest_failures.clone(),
        );
        registry.register(
            "children",
            "Desired or observed children by what the host did with them",
            metrics.children.clone(),
        );
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now (the controller's work in progress)",
            metrics.reconciles_in_flight.clone(),
        );
        registry.register(
            "queue_depth",
            "Parents whose current generation has not been reconciled yet (the controller's \
             backlog; reconciles caused by child changes or the periodic resync are not counted)",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "leader",
            "1 when this replica reconciles (it holds the leader Lease, or runs without leader \
             election), 0 on standby",
            metrics.leader.clone(),
        );
        registry.register(
            "guest_reloads",
            "Attempts to swap in a new guest file, by result",
            metrics.guest_reloads.clone(),
        );
        registry.register(
            "guest_info",
            "The active guest (always 1)",
            metrics.guest_info.clone(),
        );
        Self {
            registry,
            ..metrics
        }
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

    /// Sets how `queue_depth` is counted (`None`: 0, while no controller runs).
    pub fn set_backlog_probe(&self, probe: Option<BacklogProbe>) {
        *self
            .backlog_probe
            .lock()
            .expect("backlog probe lock poisoned") = probe;
    }

    /// A standby is ready once it knows it is one: it has no caches to sync until it leads.
    fn ready(&self) -> bool {
        let role_ready = match self.leadership() {
            Leadership::Unknown => false,
            Leadership::Standby => true,
            Leadership::Leader | Leadership::NotElecting => {
                self.caches_synced.load(Ordering::Acquire)
            }
        };
        role_ready && self.active_guest.lock().expect("lock").is_some()
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let depth = self
            .backlog_probe
            .lock()
            .expect("backlog probe lock poisoned")
            .as_ref()
            .map_or(0, |probe| probe());
        self.queue_depth.set(depth);
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

/// Binds the HTTP endpoint and serves it in the background; returns the bound address (useful
/// with port 0).
///
/// # Errors
/// The bind error, e.g. the port is taken.
pub async fn serve(address: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(metrics);
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "metrics and health endpoint stopped");
        }
    });
    Ok(bound)
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

/// Ready when the child caches have listed and a guest is active: before that, reconciles would
/// wait, so a Service should not count this replica in.
async fn readyz(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    if metrics.ready() {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: leader election undecided, caches syncing or no guest loaded",
        )
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
            text.contains("reconciler_reconciles_total{result=\"Success\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("reconciler_children_total{action=\"Applied\"} 13"),
            "{text}"
        );
        assert!(
            text.contains("reconciler_guest_failures_total{kind=\"Timeout\"} 1"),
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
    fn queue_depth_comes_from_the_probe_at_scrape_time() {
        let metrics = Metrics::default();
        assert!(metrics.encode().contains("reconciler_queue_depth 0"));
        metrics.set_backlog_probe(Some(Box::new(|| 7)));
        assert!(metrics.encode().contains("reconciler_queue_depth 7"));
    }
}
