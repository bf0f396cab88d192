//! Prometheus metrics, and the HTTP server for `/metrics`, `/healthz` and `/readyz`.
//!
//! Every label takes values from a fixed set (no object names, no error texts), so the number of
//! series stays bounded however many parents there are. The one exception, `guest_info`, carries
//! the active guest's name, version and digest, and holds exactly one series at a time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

    fn ready(&self) -> bool {
        self.caches_synced.load(Ordering::Acquire)
            && self.active_guest.lock().expect("lock").is_some()
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
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
            "not ready: caches syncing or no guest loaded",
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

    #[test]
    fn ready_needs_synced_caches_and_a_guest() {
        let metrics = Metrics::default();
        assert!(!metrics.ready());
        metrics.set_caches_synced(true);
        assert!(!metrics.ready());
        metrics.set_active_guest(GuestLabels {
            name: "g".into(),
            version: "1".into(),
            digest: "d".into(),
        });
        assert!(metrics.ready());
    }
}
