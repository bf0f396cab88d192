//! The controller: resolves the guest's kinds and starts their watches (`guest_kinds.rs`), runs kube-runtime's
//! `Controller` over the parent kind with the host's reconcile (see `reconcile/`), and the
//! guest hot swap beside it (`hot_swap/`: new files, the shadow candidate, rollback; handing a
//! guest for another parent kind back through `handoff.rs`) with the sweep that brings every
//! parent onto a swapped guest (`sweep.rs`); its error policy is the per-parent backoff. What runs
//! beside the controller stops with it (`teardown.rs`).

mod guest_kinds;
mod handoff;
mod hot_swap;
mod running;
mod scopes;
mod sweep;
mod teardown;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tracing::{debug, info, warn};

use crate::cluster::kinds::{DiscoveryError, ResolvedKind};
use crate::cluster::{ChildCaches, RelatedCaches};
use crate::config::RunSettings;
use crate::error_text::error_chain;
use crate::guests::{GuestSpec, Roster};
use crate::metrics::{GuestMetrics, Metrics, ParentCounts, ParentProbe};
use crate::readiness::{ChildWatchProbe, GuestReadiness, Readiness};
use crate::reconcile::budget::SharedBudget;
use crate::reconcile::claims::NameClaims;
use crate::reconcile::events::EventPublisher;
use crate::reconcile::parent_state::ParentStates;
use crate::reconcile::rollback::RollbackWatch;
use crate::reconcile::shadow::{CandidateSlot, ShadowBoard};
use crate::reconcile::{ActiveGuest, Context, Failure, GuestSlot, Settings, reconcile};
use crate::sandbox::{GuestEngine, LoadedGuest};
pub use guest_kinds::GuestKinds;
use handoff::ParentKindHandoff;
use hot_swap::{HotSwap, SwapHooks};
use running::Running;
use scopes::ScopeError;
use sweep::Sweep;
use teardown::Teardown;

/// First retry delay after a failed reconcile; doubles per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest retry delay after failures.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How often start-up reports that child caches are still listing.
const SYNC_PROGRESS_INTERVAL: Duration = Duration::from_secs(30);

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The parent kind or a child kind is not served by the API server.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The guest's kinds break the scope rule (`scopes.rs`).
    #[error(transparent)]
    Scope(#[from] ScopeError),
}

/// What every controller of the process shares.
#[derive(Clone)]
pub struct Shared {
    pub client: Client,
    pub engine: Arc<GuestEngine>,
    pub metrics: Arc<Metrics>,
    /// What `/readyz` reports; each controller reports its guest's part.
    pub readiness: Arc<Readiness>,
    /// The child caches: one watch and one cache per child kind, whichever parent kinds need it.
    pub children: Arc<ChildCaches>,
    /// The caches of related objects guests read: one watch per related kind, shared likewise.
    pub related: Arc<RelatedCaches>,
    /// The memory all guest calls running at once may use, shared fairly between the guests.
    pub guest_memory: SharedBudget,
    /// The parents reconciled at once (`--concurrency`), shared fairly between the guests.
    pub reconcile_slots: SharedBudget,
    /// The child names being created, by every guest: two guests' parents racing for one name
    /// end with one owner, as two parents of one guest do.
    pub claims: Arc<NameClaims>,
    /// Every guest's shadow candidate, for `/shadow`.
    pub shadow: Arc<ShadowBoard>,
}

impl Shared {
    /// Forgets a guest that no longer serves: its line in `/readyz`, its `guest_info` and its
    /// gauges (its counters stay, as counters do).
    pub fn forget_guest(&self, guest: &str) {
        self.readiness.forget(guest);
        self.metrics.forget_guest(guest);
    }
}

/// How a controller's guest stays admitted in the host: the roster its hot swaps are judged
/// against, and who notices its file change.
pub struct Membership {
    /// The guests of the host and the kinds each holds.
    pub roster: Arc<Roster>,
    /// `Some`: the folder's supervisor notices changes of the guest's file and says so here;
    /// `None`: the hot swap watches the file itself.
    pub changes: Option<tokio::sync::mpsc::Receiver<&'static str>>,
}

/// Why [`run`] returned.
pub enum Stopped {
    /// The shutdown future resolved.
    Shutdown,
    /// A new guest for another parent kind arrived (allowed by `--allow-parent-kind-change`):
    /// run again with it.
    NewParentKind(Box<LoadedGuest>),
}

/// Resolves the guest's kinds, starts the child watches, waits for them to sync, then runs the
/// controller and the guest hot swap until `shutdown` resolves (then in-flight reconciles finish
/// and no new ones start).
///
/// Dropping the returned future instead stops everything at once, abandoning in-flight
/// reconciles at their next await (what a leader that lost its Lease must do).
///
/// # Errors
/// A [`StartError`] when a kind cannot be used.
pub async fn run(
    shared: Shared,
    guest: Arc<LoadedGuest>,
    spec: GuestSpec,
    settings: RunSettings,
    membership: Membership,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<Stopped, StartError> {
    let metrics = GuestMetrics::new(&shared.metrics, &spec.name);
    let readiness = shared.readiness.guest(&spec.name);
    let kinds =
        GuestKinds::resolve(&shared.client, &guest, &spec, settings.namespace.as_deref()).await?;
    readiness.set_waiting(None);
    let (triggered_by_children, mut teardown) =
        serve_parent_kind(&shared, &kinds.parent, &metrics, &readiness);
    let candidate = teardown.show_candidate(&spec.name, CandidateSlot::new(metrics.clone()));
    kinds.sync(&shared, &settings).await;
    let (parent_kind, active) = kinds.with(guest);
    let beside = Beside {
        slot: activate(&metrics, &readiness, active),
        candidate,
        rollback: Arc::new(RollbackWatch::new(settings.rollback)),
    };

    let sweep = Sweep::new(settings.swap_concurrency.into(), metrics.clone());
    let handoff = Arc::new(ParentKindHandoff::default());
    let swapper = HotSwap::new(
        &shared,
        &spec,
        &settings,
        membership,
        SwapHooks {
            beside: &beside,
            sweep: &sweep,
            metrics: &metrics,
            handoff: &handoff,
            parent_kind: &parent_kind,
        },
    );
    teardown.spawn(swapper.run());

    // The parent watch is built here rather than by `Controller::new_with` (which does the same)
    // so that per-parent state follows it: a deleted parent's state goes with it.
    let parent_cache = Writer::<DynamicObject>::new(parent_kind.resource.clone());
    let parents = parent_cache.as_reader();
    let (swept, swept_parents) = futures::channel::mpsc::unbounded();
    let sweeping = Arc::clone(&sweep).run(parents.clone(), parent_kind.resource.clone(), swept);
    teardown.spawn(sweeping);
    let (stopping, forward_stop) = stop_signal(shutdown, Arc::clone(&handoff));
    teardown.tasks.push(forward_stop);
    let context = Arc::new(context(
        &shared,
        &spec,
        &settings,
        beside,
        parent_kind,
        &metrics,
        parents.clone(),
        stopping.clone(),
    ));
    let parent_events = parent_events(
        &shared.client,
        settings.namespace.as_deref(),
        parent_cache,
        Arc::clone(&context),
        readiness.clone(),
    );
    let controller =
        Controller::for_stream_with(parent_events, parents, context.parent_kind.resource.clone())
            .reconcile_on(triggered_by_children)
            .reconcile_on(swept_parents)
            .with_config(ControllerConfig::default().concurrency(settings.concurrency));
    serve(controller, context, sweep, stopping, &readiness).await;
    drop(teardown);
    info!("controller stopped");
    Ok(match handoff.take() {
        Some(guest) => Stopped::NewParentKind(Box::new(guest)),
        None => Stopped::Shutdown,
    })
}

/// What every reconcile of this guest's controller shares.
#[allow(clippy::too_many_arguments)] // each is one part of the context, named at the call
fn context(
    shared: &Shared,
    spec: &GuestSpec,
    settings: &RunSettings,
    beside: Beside,
    parent_kind: ResolvedKind,
    metrics: &GuestMetrics,
    parents: reflector::Store<DynamicObject>,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Context {
    // The reporting instance names the replica and the guest (`<pod>/<guest>`), so
    // `kubectl describe` tells which guest of a host published an Event.
    let instance = format!(
        "{}/{}",
        settings
            .pod_name
            .as_deref()
            .unwrap_or(&settings.field_manager),
        spec.name
    );
    Context {
        events: EventPublisher::new(
            shared.client.clone(),
            settings.field_manager.clone(),
            Some(instance),
        ),
        parent_states: ParentStates::new(parents, parent_kind.resource.clone())
            .on_forget(forget_parent(&shared.related, &beside)),
        related: Arc::clone(&shared.related),
        client: shared.client.clone(),
        slot: beside.slot,
        candidate: beside.candidate,
        rollback: beside.rollback,
        parent_kind,
        children: Arc::clone(&shared.children),
        settings: Settings {
            field_manager: settings.field_manager.clone(),
            resync: settings.resync,
            protected_namespaces: settings.protected_namespaces.clone(),
        },
        metrics: metrics.clone(),
        claims: Arc::clone(&shared.claims),
        guest_memory: shared.guest_memory.share(),
        reconcile_slots: shared.reconcile_slots.share(),
        stopping,
    }
}

/// Turns true on the caller's `shutdown`, or when the hot swap hands over a guest for a new
/// parent kind; the handle stops the task that watches for either.
fn stop_signal(
    shutdown: impl Future<Output = ()> + Send + 'static,
    handoff: Arc<ParentKindHandoff>,
) -> (tokio::sync::watch::Receiver<bool>, tokio::task::AbortHandle) {
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let forward = tokio::spawn(async move {
        tokio::select! {
            () = shutdown => {}
            () = handoff.requested() => {}
        }
        let _ = stop.send(true);
    });
    (stopping, forward.abort_handle())
}

/// What the per-parent state calls when a parent goes: its readings leave the reverse index, its
/// verdict the candidate's report.
fn forget_parent(related: &Arc<RelatedCaches>, beside: &Beside) -> Box<dyn Fn(&str) + Send + Sync> {
    let related = Arc::clone(related);
    let (candidate, rollback) = (Arc::clone(&beside.candidate), Arc::clone(&beside.rollback));
    Box::new(move |uid| {
        related.forget_reader(uid);
        candidate.forget_parent(uid);
        rollback.forget(uid);
    })
}

/// What the controller's reconciles and its hot swap share about the guest: the active guest,
/// its shadow candidate, and the watch that rolls a new guest back.
pub(super) struct Beside {
    pub slot: Arc<GuestSlot>,
    pub candidate: Arc<CandidateSlot>,
    pub rollback: Arc<RollbackWatch>,
}

/// The parent watch (in `namespace`, or all), feeding the controller's cache; per-parent state and
/// `/readyz` follow it.
fn parent_events(
    client: &Client,
    namespace: Option<&str>,
    cache: Writer<DynamicObject>,
    context: Arc<Context>,
    readiness: GuestReadiness,
) -> impl futures::Stream<Item = Result<DynamicObject, watcher::Error>> + Send + 'static {
    let api: Api<DynamicObject> = context.parent_kind.api(client, namespace);
    let parent_kind = context.parent_kind.display_name();
    reflector(cache, watcher(api, watcher::Config::default()))
        .inspect(move |event| match event {
            Ok(event) => {
                readiness.set_parent_watch_failing(false);
                context.metrics.set_parent_watch_failing(false);
                context.parent_states.observe(event);
            }
            // Retried by the controller with backoff, so this logs a few lines a minute at most.
            // A deleted CRD shows up here: nothing else would say why reconciles stopped.
            Err(error) => {
                readiness.set_parent_watch_failing(true);
                context.metrics.set_parent_watch_failing(true);
                warn!(parent = %parent_kind, error = %error_chain(error), "the parent watch is failing (was the CustomResourceDefinition deleted?); retrying with backoff, /readyz answers not ready meanwhile");
            }
        })
        .applied_objects()
}

/// Sends this controller the parents whose children change. From here on, however [`run`] ends
/// (returned or dropped), the returned teardown makes the caches stop serving this parent kind
/// and drop the child kinds no other controller needs.
fn serve_parent_kind(
    shared: &Shared,
    parent_kind: &ResolvedKind,
    metrics: &GuestMetrics,
    readiness: &GuestReadiness,
) -> (
    futures::channel::mpsc::UnboundedReceiver<ObjectRef<DynamicObject>>,
    Teardown,
) {
    let (child_triggers, triggered_by_children) = futures::channel::mpsc::unbounded();
    shared
        .children
        .serve_parent_kind(parent_kind, child_triggers);
    let teardown = Teardown::new(shared, parent_kind, metrics, readiness);
    (triggered_by_children, teardown)
}

/// The guest active once its caches synced, in the slot its reconciles and hot swaps share.
fn activate(
    metrics: &GuestMetrics,
    readiness: &GuestReadiness,
    active: ActiveGuest,
) -> Arc<GuestSlot> {
    readiness.set_caches_synced(true);
    metrics.set_active_guest(active.metric_labels());
    readiness.set_loaded(active.guest.contract().version());
    Arc::new(GuestSlot::new(active))
}

/// Runs the controller until `stopping`, then lets in-flight reconciles finish; each finished
/// reconcile lets the sweep go on. `/readyz` and the parent gauges read its state meanwhile.
async fn serve(
    controller: Controller<DynamicObject>,
    context: Arc<Context>,
    sweep: Arc<Sweep>,
    stopping: tokio::sync::watch::Receiver<bool>,
    readiness: &GuestReadiness,
) {
    context
        .metrics
        .set_parent_probe(Some(parent_probe(Arc::clone(&context))));
    readiness.set_child_watch_probe(Some(child_watch_probe(Arc::clone(&context))));
    let kind = context.parent_kind.resource.clone();
    let running = Arc::new(Running::default());
    let reconciles = Arc::clone(&running);
    let reconcile_then_sweep = move |parent: Arc<DynamicObject>, ctx: Arc<Context>| {
        let (sweep, kind) = (Arc::clone(&sweep), kind.clone());
        let running = reconciles.enter();
        async move {
            let _running = running;
            let parent_ref = ObjectRef::from_obj_with(parent.as_ref(), kind);
            let result = reconcile(parent, ctx).await;
            sweep.finished(&parent_ref);
            result
        }
    };
    let controller = controller
        .graceful_shutdown_on(stopped(stopping.clone()))
        .run(reconcile_then_sweep, error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok(_) => {}
                Err(kube::runtime::controller::Error::ReconcilerFailed(error, object)) => {
                    warn!(parent = %object, error = %error_chain(&error), "reconcile failed; retrying with backoff");
                }
                Err(error) => debug!(%error, "controller event"),
            }
        });
    // kube-runtime's graceful shutdown finishes in-flight reconciles, but (kube 5.0) never ends
    // when it is asked to stop before the parent watch's first list completed. So once stopping,
    // also end as soon as no reconcile is in flight.
    let idle_after_stop = async move {
        stopped(stopping).await;
        running.idle().await;
    };
    tokio::select! {
        () = controller => {}
        () = idle_after_stop => debug!("stopping with no reconcile in flight"),
    }
}

/// `queue_depth`, `parent_states` and `parents_failing`, read from the parent cache and the per-parent state at
/// each scrape.
fn parent_probe(ctx: Arc<Context>) -> ParentProbe {
    Box::new(move || ParentCounts {
        waiting: ctx.parent_states.waiting(),
        with_state: ctx.parent_states.len(),
        failing: ctx.parent_states.failing(),
    })
}

/// The active guest's child kinds whose watch is failing, read at each `/readyz`.
fn child_watch_probe(ctx: Arc<Context>) -> ChildWatchProbe {
    Box::new(move || ctx.children.failing(&ctx.slot.current().child_kinds))
}

/// Resolves once `stopping` turns true (or its sender is gone).
async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stopping| *stopping).await;
}

/// Per-parent exponential backoff: 1 s, 2 s, 4 s… up to 5 minutes, each delay shortened by a
/// random 0–25 % so that parents failing together (an API server outage, a guest bug) do not
/// retry in lockstep; reset by a success.
fn error_policy(parent: Arc<DynamicObject>, _failure: &Failure, ctx: Arc<Context>) -> Action {
    let attempts = ctx.parent_states.of(&parent).record_failure();
    Action::requeue(backoff(attempts, fastrand::f64()))
}

/// The delay after `attempts` consecutive failures, `jitter` in `[0, 1)` shortening it by up to
/// a quarter.
fn backoff(attempts: u32, jitter: f64) -> Duration {
    let full = BACKOFF_BASE
        .saturating_mul(1 << attempts.saturating_sub(1).min(16))
        .min(BACKOFF_MAX);
    full.mul_f64(1.0 - 0.25 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes_shortened_by_at_most_a_quarter() {
        assert_eq!(backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(3, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(30, 0.0), BACKOFF_MAX);
        assert_eq!(backoff(3, 1.0), Duration::from_secs(3));
        assert_eq!(
            backoff(30, 0.999_999),
            BACKOFF_MAX.mul_f64(0.75 + 0.25 * 0.000_001)
        );
    }

    #[test]
    fn parents_failing_together_retry_at_different_times() {
        let delays: std::collections::BTreeSet<Duration> =
            (0..100).map(|_| backoff(5, fastrand::f64())).collect();
        assert!(delays.len() > 50, "{} distinct delays of 100", delays.len());
        assert!(
            delays
                .iter()
                .all(|d| *d > Duration::from_secs(12) && *d <= Duration::from_secs(16))
        );
    }
}
