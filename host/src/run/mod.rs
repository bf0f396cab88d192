//! `reconciler-host run`: serves the HTTP endpoint, builds the engine, loads the guest (or checks
//! the folder of guests), and runs the controllers: at once, or (with `--leader-elect`) whenever
//! this replica leads. One guest file runs one controller, again for each new parent kind a hot
//! swap hands over; a folder runs its supervisor (`supervisor.rs`).

mod supervisor;
mod unserved;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

use crate::cluster::{ChildCaches, RelatedCaches, WatchScope};
use crate::config::{GuestSource, RunSettings};
use crate::controller::{self, Membership, Shared, StartError, Stopped};
use crate::guests::{GuestSpec, Roster};
use crate::http;
use crate::leader::{ElectionSettings, Elector};
use crate::metrics::{GuestMetrics, HostCounts, HostProbe, Metrics};
use crate::readiness::{Leadership, Readiness};
use crate::reconcile::active_guest::guest_labels;
use crate::reconcile::budget::SharedBudget;
use crate::reconcile::shadow::ShadowBoard;
use crate::sandbox::{GuestEngine, GuestFile, LoadedGuest};

/// What this process serves.
enum Guests {
    /// One guest (`--guest`), loaded, and the roster of one it is admitted in.
    One(GuestSpec, Arc<LoadedGuest>, Arc<Roster>),
    /// A folder of guests (`--guests`), loaded by its supervisor.
    Folder(std::path::PathBuf),
}

/// Runs the controllers with `settings` until `stopping` turns true.
///
/// # Errors
/// An unusable guest, no cluster, or a kind that cannot be used: each says what to
/// do.
pub async fn run(settings: RunSettings, stopping: watch::Receiver<bool>) -> anyhow::Result<()> {
    // Serve health and metrics first, so a probe can see the process while it starts.
    let metrics = Arc::new(Metrics::default());
    let readiness = Arc::new(Readiness::default());
    let shadow = Arc::new(ShadowBoard::default());
    let address = http::serve(
        settings.metrics_bind_address,
        Arc::clone(&metrics),
        Arc::clone(&readiness),
        Arc::clone(&shadow),
    )
    .await
    .with_context(|| format!("serving metrics on {}", settings.metrics_bind_address))?;
    info!(%address, "serving /metrics, /healthz, /readyz and /shadow");
    let engine =
        GuestEngine::with_perf_map(settings.compile_cache.as_ref(), settings.guest_perf_map)?;
    let mut guests = match &settings.guests {
        GuestSource::File { path, config } => {
            let spec = GuestSpec::load(path, &settings.rules)?.with_config_flag(config.clone())?;
            let roster = Arc::new(Roster::default());
            let guest = first_guest(&engine, &spec, &settings, &roster)?;
            GuestMetrics::new(&metrics, &spec.name).set_active_guest(guest_labels(&guest));
            readiness
                .guest(&spec.name)
                .set_loaded(guest.contract().version());
            Guests::One(spec, Arc::new(guest), roster)
        }
        GuestSource::Folder(folder) => {
            crate::guests::folder::check_readable(folder)?;
            Guests::Folder(folder.clone())
        }
    };
    let client = kube::Client::try_default().await.context(
        "connecting to Kubernetes (in-cluster service account, KUBECONFIG or ~/.kube/config)",
    )?;
    let scope = WatchScope {
        client: client.clone(),
        namespace: settings.namespace.clone(),
        managed_by: settings.field_manager.clone(),
    };
    let children = ChildCaches::new(scope.clone());
    let shared = Shared {
        related: RelatedCaches::new(scope, Arc::clone(&children)),
        children,
        client,
        engine,
        metrics,
        readiness,
        guest_memory: SharedBudget::of_memory(settings.guest_memory_budget_bytes),
        reconcile_slots: SharedBudget::new(usize::from(settings.concurrency)),
        claims: Arc::default(),
        shadow,
    };
    shared.metrics.set_host_probe(host_probe(&shared));
    let Some(election) = settings.leader_election.clone() else {
        set_leadership(&shared, Leadership::NotElecting);
        return reconcile(&shared, &mut guests, &settings, stopping).await;
    };
    lead(&shared, election, &mut guests, &settings, stopping).await
}

/// The guest named by `--guest`, loaded and admitted (against the flags and its settings).
fn first_guest(
    engine: &Arc<GuestEngine>,
    spec: &GuestSpec,
    settings: &RunSettings,
    roster: &Roster,
) -> anyhow::Result<LoadedGuest> {
    let file = GuestFile::read_capped(&spec.path, settings.rules.max_file_bytes)?;
    let guest = engine.load_configured(&file, spec.settings.limits, spec.config())?;
    let manifest = guest.manifest();
    info!(
        guest = %manifest.name,
        version = %manifest.version,
        digest = %guest.digest(),
        contract = guest.contract().version(),
        config = %guest.config_summary(),
        path = %spec.path.display(),
        origin = ?guest.origin(),
        "guest loaded"
    );
    roster.admit(&settings.rules, &spec.name, manifest, &spec.settings)?;
    Ok(guest)
}

/// Campaigns for the Lease and reconciles while this replica holds it, until `stopping`.
async fn lead(
    shared: &Shared,
    election: ElectionSettings,
    guests: &mut Guests,
    settings: &RunSettings,
    stopping: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut elector = Elector::new(shared.client.clone(), election);
    loop {
        info!(identity = %elector.identity(), "leader election: campaigning for the Lease");
        let renewed = tokio::select! {
            renewed = elector.campaign(|| set_leadership(shared, Leadership::Standby)) => renewed,
            () = stopped(stopping.clone()) => return Ok(()),
        };
        set_leadership(shared, Leadership::Leader);
        let (done, done_receiver) = tokio::sync::oneshot::channel::<()>();
        let work = async {
            let result = reconcile(shared, guests, settings, stopping.clone()).await;
            let _ = done.send(());
            result
        };
        let hold = elector.hold(renewed, async {
            let _ = done_receiver.await;
        });
        tokio::pin!(work, hold);
        tokio::select! {
            held = &mut hold => {
                // Dropping `work` abandons in-flight reconciles: another replica may be
                // leading already, and two writers would fight.
                set_leadership(shared, Leadership::Unknown);
                warn!(reason = ?held, "leadership lost: stopped reconciling at once");
            }
            result = &mut work => {
                // The last write is done: hand the Lease over (released in `hold`).
                hold.await;
                return result;
            }
        }
    }
}

/// Records this replica's role where `/readyz` and `reconciler_leader` read it.
fn set_leadership(shared: &Shared, leadership: Leadership) {
    shared.readiness.set_leadership(leadership);
    shared.metrics.set_leader(leadership.reconciles());
}

/// Runs the controllers until `stopping`: the one guest's (again for each new parent kind a hot
/// swap hands over), or the folder's supervisor.
async fn reconcile(
    shared: &Shared,
    guests: &mut Guests,
    settings: &RunSettings,
    stopping: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (spec, guest, roster) = match guests {
        Guests::One(spec, guest, roster) => (spec, guest, roster),
        Guests::Folder(folder) => {
            return supervisor::serve(shared, folder, settings, stopping)
                .await
                .map_err(Into::into);
        }
    };
    loop {
        let stopped = controller::run(
            shared.clone(),
            Arc::clone(guest),
            spec.clone(),
            settings.clone(),
            Membership {
                roster: Arc::clone(roster),
                changes: None,
            },
            stopped(stopping.clone()),
        )
        .instrument(info_span!("guest", guest = %spec.name))
        .await
        .map_err(|error: StartError| anyhow::Error::from(error))?;
        match stopped {
            Stopped::Shutdown => return Ok(()),
            Stopped::NewParentKind(next) => *guest = Arc::new(*next),
        }
    }
}

/// Resolves once `stopping` turns true.
async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stopping| *stopping).await;
}

/// `reconciler_ready` and the shared budgets' gauges, read at each scrape.
fn host_probe(shared: &Shared) -> HostProbe {
    let readiness = Arc::clone(&shared.readiness);
    let (memory, slots) = (shared.guest_memory.clone(), shared.reconcile_slots.clone());
    Box::new(move || HostCounts {
        ready: readiness.ready(),
        // The memory budget counts in MiB permits.
        guest_memory_budget_bytes: (memory.total() as u64) << 20,
        guest_memory_in_use_bytes: (memory.in_use() as u64) << 20,
        reconcile_slots: slots.total(),
        reconcile_slots_in_use: slots.in_use(),
    })
}
