//! What one guest's controller records: every metric it touches carries the guest's name.

use std::sync::Arc;

use super::labels::{
    ActionLabel, GuestLabel, InfoLabel, KindLabel, ReloadLabel, ResultLabel, ShadowLabel,
};
use super::{
    ChildAction, GuestFailureKind, GuestLabels, Metrics, ParentProbe, ReconcileResult,
    ReloadResult, ShadowVerdict,
};

/// The process's metrics, as one guest records them.
#[derive(Clone)]
pub struct GuestMetrics {
    metrics: Arc<Metrics>,
    /// The `guest` label, built once.
    label: GuestLabel,
}

impl GuestMetrics {
    /// The recording handle of the guest named `guest` (its file name without `.wasm`).
    pub fn new(metrics: &Arc<Metrics>, guest: &str) -> Self {
        Self {
            metrics: Arc::clone(metrics),
            label: GuestLabel {
                guest: guest.to_owned(),
            },
        }
    }

    /// The guest's name in this host.
    pub fn guest(&self) -> &str {
        &self.label.guest
    }

    /// The process's metrics.
    pub fn process(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    fn name(&self) -> String {
        self.label.guest.clone()
    }

    pub fn reconcile_finished(&self, result: ReconcileResult, seconds: f64) {
        let m = &self.metrics;
        m.reconciles
            .get_or_create(&ResultLabel {
                result,
                guest: self.name(),
            })
            .inc();
        m.reconcile_duration
            .get_or_create(&self.label)
            .observe(seconds);
    }

    pub fn guest_called(&self, seconds: f64) {
        self.metrics
            .guest_call_duration
            .get_or_create(&self.label)
            .observe(seconds);
    }

    pub fn guest_failed(&self, kind: GuestFailureKind) {
        self.metrics
            .guest_failures
            .get_or_create(&KindLabel {
                kind,
                guest: self.name(),
            })
            .inc();
    }

    pub fn children(&self, action: ChildAction, count: usize) {
        self.metrics
            .children
            .get_or_create(&ActionLabel {
                action,
                guest: self.name(),
            })
            .inc_by(count as u64);
    }

    /// This guest's reconciles running now.
    pub fn reconciles_in_flight(&self) -> i64 {
        self.metrics
            .reconciles_in_flight
            .get_or_create(&self.label)
            .get()
    }

    /// Counts a reconcile as running until the guard drops.
    pub fn in_flight(&self) -> InFlight {
        let gauge = self
            .metrics
            .reconciles_in_flight
            .get_or_create(&self.label)
            .clone();
        gauge.inc();
        InFlight(gauge)
    }

    pub fn guest_reloaded(&self, result: ReloadResult) {
        self.metrics
            .guest_reloads
            .get_or_create(&ReloadLabel {
                result,
                guest: self.name(),
            })
            .inc();
    }

    /// Makes `code` the one `guest_info` reports for this guest.
    pub fn set_active_guest(&self, code: GuestLabels) {
        let info = InfoLabel {
            name: code.name,
            version: code.version,
            digest: code.digest,
            guest: self.name(),
        };
        let metrics = &self.metrics;
        metrics.update_guest(&self.label.guest, |state| {
            if let Some(previous) = state.info.take() {
                metrics.guest_info.remove(&previous);
            }
            metrics.guest_info.get_or_create(&info).set(1);
            state.info = Some(info);
        });
    }

    /// How many parents the sweep after a swap has still to send (see `controller/sweep.rs`).
    pub fn set_swap_sweep_remaining(&self, parents: usize) {
        self.metrics
            .swap_sweep_remaining
            .get_or_create(&self.label)
            .set(i64::try_from(parents).unwrap_or(i64::MAX));
    }

    /// Whether this guest's parent watch fails now (`parent_watch_failing`).
    pub fn set_parent_watch_failing(&self, failing: bool) {
        self.metrics
            .parent_watch_failing
            .get_or_create(&self.label)
            .set(i64::from(failing));
    }

    /// How many parents the shadow candidate of digest `candidate` agrees with the active guest
    /// on, diverges on and fails on (`shadow_parents`).
    pub fn set_shadow_parents(&self, candidate: &str, count: impl Fn(ShadowVerdict) -> usize) {
        for verdict in ShadowVerdict::ALL {
            self.metrics
                .shadow_parents
                .get_or_create(&self.shadow_label(candidate, verdict))
                .set(i64::try_from(count(verdict)).unwrap_or(i64::MAX));
        }
    }

    /// Forgets the series of a candidate that went (promoted, removed, replaced).
    pub fn forget_shadow(&self, candidate: &str) {
        for verdict in ShadowVerdict::ALL {
            self.metrics
                .shadow_parents
                .remove(&self.shadow_label(candidate, verdict));
        }
    }

    fn shadow_label(&self, candidate: &str, verdict: ShadowVerdict) -> ShadowLabel {
        ShadowLabel {
            verdict,
            candidate_digest: candidate.to_owned(),
            guest: self.name(),
        }
    }

    /// Sets how `queue_depth`, `parent_states` and `parents_failing` are counted for this guest (`None`: 0, while
    /// its controller does not run).
    pub fn set_parent_probe(&self, probe: Option<ParentProbe>) {
        self.metrics
            .update_listed_guest(&self.label.guest, |state| state.probe = probe);
    }
}

/// Decrements `reconciles_in_flight` when dropped.
pub struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
