//! Hot swap of the guest: notices a new guest file, loads and checks it off to the side, and only
//! then makes it active and re-reconciles every parent. A bad file is refused with a log line and
//! the active guest keeps serving: the host is never left without a working guest.
//!
//! Built and run by the guest's controller (`mod.rs`), whose slot it swaps and whose sweep it
//! asks to bring every parent onto the new guest (`sweep.rs`).
//!
//! Whether the new guest may serve is admission's answer (`guests/admission.rs`), beside the other
//! guests of the host. For a guest of a folder, the folder's supervisor notices the file change
//! (one watch for the whole folder) and tells the hot swap; a single guest (`--guest`) is
//! watched here. A new file is noticed three ways, because each misses cases the others catch:
//! - a file-system watch on the guest's *folder* (not the file: editors and `cp` over a file,
//!   `mv` of a new file into place, and the kubelet's ConfigMap update, which swaps the `..data`
//!   symlink inside the mount folder, all show up as events there);
//! - SIGHUP, the conventional "reload your configuration";
//! - a periodic check of the file's digest, for file systems that deliver no events.
//!
//! Events are debounced, so a file still being written is read once writing has settled; one
//! that is still incomplete fails to compile, is refused, and the write's next event retries.

mod candidate;
mod rollback;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::handoff::ParentKindHandoff;
use super::scopes::{self, ScopeError};
use super::sweep::Sweep;
use super::{Beside, Membership, Shared};
use crate::cluster::kinds::{self, DiscoveryError, ResolvedKind, display_gvk};
use crate::cluster::{ChildCaches, RelatedCaches};
use crate::config::RunSettings;
use crate::error_text::error_chain;
use crate::guests::watch::{SighupForwarder, watch_folder};
use crate::guests::{GuestSpec, HostRules, Refusal, Roster};
use crate::metrics::{GuestMetrics, ReloadResult};
use crate::readiness::GuestReadiness;
use crate::reconcile::rollback::RollbackWatch;
use crate::reconcile::shadow::CandidateSlot;
use crate::reconcile::{ActiveGuest, GuestSlot};
use crate::sandbox::{GuestEngine, GuestFile, LoadError, LoadedGuest};
use candidate::CandidateKey;
pub(super) use candidate::candidate_user;

/// Quiet time after the last file event before the file is read.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// How long new child kinds may take to list before a swap is given up.
const NEW_KINDS_SYNC_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a new guest file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SwapError {
    /// The file cannot be read or is not a usable guest.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The new guest reconciles another parent kind, which the host only accepts for a single
    /// guest started with `--allow-parent-kind-change` (it then restarts its controller
    /// in-process); in a folder of guests, another kind is another file.
    #[error(
        "the new guest reconciles {new}, not {active}; a guest keeps its parent kind: with \
         --guests, add a guest for another kind as a new file; with --guest, start the host \
         with --allow-parent-kind-change to accept it, or restart it with the new guest"
    )]
    ParentKindChanged { new: String, active: String },
    /// The new guest reconciles another parent kind and went to the controller, which restarts
    /// around it (not a refusal).
    #[error("handed over to a controller restart for a new parent kind")]
    HandedOver,
    /// A shadow candidate reconciles another parent kind than the guest it shadows.
    #[error(
        "the shadow candidate reconciles {candidate}, not {active} as the guest it shadows does; \
         a candidate is judged against the active guest on the same parents: name it after the \
         guest of its parent kind (NAME.candidate.wasm beside NAME.wasm)"
    )]
    CandidateParentKind { candidate: String, active: String },
    /// Admission refused the new guest (a kind not allowed, a cycle with another guest…).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A child kind the new guest declares is not served.
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    /// The new guest's kinds break the scope rule (`scopes.rs`): refused before anything
    /// stops, the active guest keeps serving.
    #[error(transparent)]
    Scope(#[from] ScopeError),
    /// A child kind the new guest declares could not be listed in time.
    #[error("new child kinds {0} did not list within {NEW_KINDS_SYNC_TIMEOUT:?}")]
    Sync(String),
    /// The blocking task that loads the guest panicked.
    #[error("guest loading task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// What a successful swap replaced.
pub struct Swap {
    pub previous: Arc<ActiveGuest>,
    pub active: Arc<ActiveGuest>,
    /// From reading the new file to the new guest being active.
    pub took: Duration,
}

/// A guest's hot swap: everything a reload needs, built by its controller.
pub(super) struct HotSwap {
    engine: Arc<GuestEngine>,
    /// The guest's name in this host, its file and its settings (limits, allowed child kinds).
    spec: GuestSpec,
    /// What the host's flags allow every guest.
    rules: HostRules,
    /// The guests of the host, which a new file is admitted beside.
    roster: Arc<Roster>,
    /// `Some`: the folder's supervisor says when the file changed; `None`: watch it here.
    changes: Option<mpsc::Receiver<&'static str>>,
    /// In a folder of guests, a file that is gone is a guest being removed, which the folder's
    /// supervisor handles: the swap then ignores it instead of refusing it.
    in_folder: bool,
    poll_interval: Duration,
    slot: Arc<GuestSlot>,
    /// The kind the controller serves, and the namespace the host watches (`None`: all): the
    /// scope rule's inputs.
    parent_kind: ResolvedKind,
    namespace: Option<String>,
    children: Arc<ChildCaches>,
    related: Arc<RelatedCaches>,
    client: kube::Client,
    /// Asked after each swap to reconcile every parent again with the new guest.
    sweep: Arc<Sweep>,
    metrics: GuestMetrics,
    /// Told the contract of each guest swapped in, for `/readyz`.
    readiness: GuestReadiness,
    /// Where a guest for another parent kind is handed over, when that is allowed
    /// (`--allow-parent-kind-change`); `None`: refuse such guests.
    parent_kind_change: Option<Arc<ParentKindHandoff>>,
    /// The digest and configuration of the last refused guest, so a bad file (or a bad
    /// configuration) is reported once, not every poll.
    last_refused: Mutex<Option<(String, String)>>,
    /// Where the shadow candidate goes once admitted (`candidate.rs`).
    candidate: Arc<CandidateSlot>,
    /// What the candidate slot was last brought in line with, so a candidate is loaded (or its
    /// refusal said) once, not every poll.
    candidate_seen: Mutex<Option<CandidateKey>>,
    /// Watches the guest swapped in last (`rollback.rs`).
    rollback: Arc<RollbackWatch>,
    /// The guest the last swap replaced, kept to be put back by a rollback.
    previous: Mutex<Option<Arc<ActiveGuest>>>,
}

/// What the hot swap acts on in its controller.
pub(super) struct SwapHooks<'a> {
    /// The active guest's slot, its candidate's, and its rollback watch.
    pub beside: &'a Beside,
    pub sweep: &'a Arc<Sweep>,
    pub metrics: &'a GuestMetrics,
    pub handoff: &'a Arc<ParentKindHandoff>,
    pub parent_kind: &'a ResolvedKind,
}

impl HotSwap {
    /// The hot swap of `spec`'s file, in the controller that `hooks` belong to.
    pub(super) fn new(
        shared: &Shared,
        spec: &GuestSpec,
        settings: &RunSettings,
        membership: Membership,
        hooks: SwapHooks<'_>,
    ) -> Self {
        Self {
            engine: Arc::clone(&shared.engine),
            spec: spec.clone(),
            rules: settings.rules.clone(),
            roster: membership.roster,
            in_folder: membership.changes.is_some(),
            changes: membership.changes,
            poll_interval: settings.guest_poll_interval,
            slot: Arc::clone(&hooks.beside.slot),
            parent_kind: hooks.parent_kind.clone(),
            namespace: settings.namespace.clone(),
            children: Arc::clone(&shared.children),
            related: Arc::clone(&shared.related),
            client: shared.client.clone(),
            sweep: Arc::clone(hooks.sweep),
            metrics: hooks.metrics.clone(),
            readiness: shared.readiness.guest(&spec.name),
            parent_kind_change: settings
                .allow_parent_kind_change
                .then(|| Arc::clone(hooks.handoff)),
            last_refused: Mutex::default(),
            candidate: Arc::clone(&hooks.beside.candidate),
            candidate_seen: Mutex::default(),
            rollback: Arc::clone(&hooks.beside.rollback),
            previous: Mutex::default(),
        }
    }

    /// Watches for new guest files (or waits to be told of them) until the process ends.
    pub(super) async fn run(mut self) {
        let (wake, mut woken) = mpsc::channel::<&'static str>(16);
        let (_folder_watch, _sighup, mut told) = match self.changes.take() {
            Some(told) => (None, None, Some(told)),
            None => {
                let folder = self
                    .spec
                    .path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."));
                let watch = watch_folder(folder, wake.clone());
                (watch, Some(SighupForwarder::spawn(wake)), None)
            }
        };
        let mut poll = tokio::time::interval(self.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        poll.tick().await;
        // The file may have changed since the guest was loaded: while caches listed, or while
        // this replica stood by for leadership.
        let mut start_up = Some("start-up check");
        loop {
            let cause = match (start_up.take(), told.as_mut()) {
                (Some(cause), _) => cause,
                // The supervisor lists the folder (debounced, periodically) and says when.
                (None, Some(told)) => tokio::select! {
                    cause = told.recv() => match cause {
                        Some(cause) => cause,
                        None => return,
                    },
                    trip = self.rollback.tripped() => {
                        self.roll_back(trip).await;
                        continue;
                    }
                },
                (None, None) => tokio::select! {
                    Some(cause) = woken.recv() => cause,
                    _ = poll.tick() => "periodic check",
                    trip = self.rollback.tripped() => {
                        self.roll_back(trip).await;
                        continue;
                    }
                },
            };
            tokio::time::sleep(DEBOUNCE).await;
            while woken.try_recv().is_ok() {}
            let outcome = self.reload().await;
            match &outcome {
                Ok(Some(swap)) => {
                    self.metrics.guest_reloaded(ReloadResult::Swapped);
                    self.metrics.set_active_guest(swap.active.metric_labels());
                    self.readiness
                        .set_loaded(swap.active.guest.contract().version());
                }
                Ok(None) | Err(SwapError::HandedOver) => {}
                Err(_) => self.metrics.guest_reloaded(ReloadResult::Refused),
            }
            match outcome {
                Ok(Some(swap)) => info!(
                    %cause,
                    previous = %swap.previous.summary(),
                    active = %swap.active.summary(),
                    origin = ?swap.active.guest.origin(),
                    took_ms = swap.took.as_secs_f64() * 1e3,
                    "guest swapped; reconciling every parent with it"
                ),
                Ok(None) => debug!(%cause, "guest file unchanged"),
                Err(SwapError::HandedOver) => return,
                Err(error) => warn!(
                    %cause,
                    path = %self.spec.path.display(),
                    active = %self.slot.current().summary(),
                    error = %error_chain(&error),
                    "refused the new guest file; the active guest keeps serving"
                ),
            }
            // After the guest: a promoted candidate is the active guest by now.
            self.follow_candidate().await;
        }
    }

    /// Reads the guest file and, when it differs from the active guest, loads, checks and
    /// activates it. `Ok(None)`: nothing to do.
    ///
    /// # Errors
    /// A [`SwapError`] when the new file cannot replace the active guest; nothing changed then.
    pub(super) async fn reload(&self) -> Result<Option<Swap>, SwapError> {
        let started = Instant::now();
        let path = self.spec.path.clone();
        if self.in_folder && !path.exists() {
            return Ok(None);
        }
        let cap = self.rules.max_file_bytes;
        let file = tokio::task::spawn_blocking(move || GuestFile::read_capped(&path, cap))
            .await
            .map_err(SwapError::Task)??;
        // The configuration is part of what decides: the same file with another configuration
        // is another guest, checked and swapped in the same way.
        let (spec, rules) = (self.spec.clone(), self.rules.clone());
        let config = tokio::task::spawn_blocking(move || spec.config_now(&rules))
            .await
            .map_err(SwapError::Task)?
            .map_err(|error| SwapError::Refused(error.into()))?;
        let active = self.slot.current();
        if file.digest == active.guest.digest() && config == active.guest.config() {
            return Ok(None);
        }
        let candidate = (file.digest.clone(), config);
        if self.last_refused.lock().expect("lock").as_ref() == Some(&candidate) {
            return Ok(None);
        }
        self.activate(file, candidate.1, &active, started).await
    }

    async fn activate(
        &self,
        file: GuestFile,
        config: String,
        active: &ActiveGuest,
        started: Instant,
    ) -> Result<Option<Swap>, SwapError> {
        let refused_key = (file.digest.clone(), config.clone());
        let outcome = self.load_and_check(file, config, active).await;
        let next = match outcome {
            Ok(next) => next,
            // The new guest went to a controller restart: its kinds stay in the roster.
            Err(SwapError::HandedOver) => return Err(SwapError::HandedOver),
            Err(error) => {
                // The active guest keeps its place: its kinds in the roster (which admission
                // may have replaced with the new guest's before a later check refused it)…
                let _ = self.roster.admit(
                    &self.rules,
                    &self.spec.name,
                    active.guest.manifest(),
                    &self.spec.settings,
                );
                // …and its watches: stop any started for the refused guest's new kinds.
                self.children
                    .retain_kinds(&active.user(), &active.child_kinds);
                self.related
                    .retain_kinds(&active.user(), &active.related_kinds);
                *self.last_refused.lock().expect("lock") = Some(refused_key);
                return Err(error);
            }
        };
        *self.last_refused.lock().expect("lock") = None;
        let previous = self.slot.replace(next);
        let active = self.slot.current();
        *self.previous.lock().expect("lock") = Some(Arc::clone(&previous));
        self.rollback.swapped(active.guest.digest());
        self.children
            .retain_kinds(&active.user(), &active.child_kinds);
        self.related
            .retain_kinds(&active.user(), &active.related_kinds);
        self.sweep.request();
        Ok(Some(Swap {
            previous,
            active,
            took: started.elapsed(),
        }))
    }

    async fn load_and_check(
        &self,
        file: GuestFile,
        config: String,
        active: &ActiveGuest,
    ) -> Result<ActiveGuest, SwapError> {
        let guest = self.load(file, config).await?;
        let (new_parent, active_parent) =
            (&guest.manifest().parent, &active.guest.manifest().parent);
        if new_parent != active_parent && self.parent_kind_change.is_none() {
            // The first thing to say: whatever else is wrong with it, this guest cannot take
            // over from the active one.
            return Err(SwapError::ParentKindChanged {
                new: display_gvk(new_parent),
                active: display_gvk(active_parent),
            });
        }
        self.roster.admit(
            &self.rules,
            &self.spec.name,
            guest.manifest(),
            &self.spec.settings,
        )?;
        if new_parent != active_parent {
            return self.hand_over_new_parent_kind(guest, active).await;
        }
        let child_kinds = self
            .resolve(&guest.manifest().children, &active.child_kinds)
            .await?;
        scopes::check(
            &self.parent_kind,
            &child_kinds,
            &self.spec.settings.allowed_child_kinds,
            self.namespace.as_deref(),
        )?;
        self.children
            .watch_kinds(&active.user(), &child_kinds, NEW_KINDS_SYNC_TIMEOUT)
            .await
            .map_err(SwapError::Sync)?;
        let related_kinds = self
            .resolve(&guest.manifest().related, &active.related_kinds)
            .await?;
        Ok(ActiveGuest::new(
            Arc::new(guest),
            child_kinds,
            related_kinds,
        ))
    }

    /// Compiles (or takes from the compile cache), links and configures a guest file, off the
    /// async threads.
    async fn load(&self, file: GuestFile, config: String) -> Result<LoadedGuest, SwapError> {
        let engine = Arc::clone(&self.engine);
        let limits = self.spec.settings.limits;
        Ok(
            tokio::task::spawn_blocking(move || engine.load_configured(&file, limits, &config))
                .await
                .map_err(SwapError::Task)??,
        )
    }

    /// `gvks` resolved against the API server, reusing the kinds in `known`.
    async fn resolve(
        &self,
        gvks: &[kube::api::GroupVersionKind],
        known: &[Arc<ResolvedKind>],
    ) -> Result<Vec<Arc<ResolvedKind>>, SwapError> {
        let mut resolved = Vec::with_capacity(gvks.len());
        for gvk in gvks {
            resolved.push(match known.iter().find(|k| &k.gvk == gvk) {
                Some(kind) => Arc::clone(kind),
                None => Arc::new(kinds::resolve(&self.client, gvk).await?),
            });
        }
        Ok(resolved)
    }

    /// A guest for another parent kind, admitted already: handed to the controller to restart
    /// around it (`--allow-parent-kind-change`) once its kinds are known to be usable, else
    /// refused.
    async fn hand_over_new_parent_kind(
        &self,
        guest: LoadedGuest,
        active: &ActiveGuest,
    ) -> Result<ActiveGuest, SwapError> {
        let new_parent = &guest.manifest().parent;
        let Some(handoff) = &self.parent_kind_change else {
            return Err(SwapError::ParentKindChanged {
                new: display_gvk(new_parent),
                active: display_gvk(&active.guest.manifest().parent),
            });
        };
        // Everything that could make the controller refuse the guest is checked first
        // (admission, the kinds here): a refused file never stops a running host.
        let parent = kinds::resolve(&self.client, new_parent).await?;
        let mut children = Vec::with_capacity(guest.manifest().children.len());
        for gvk in &guest.manifest().children {
            children.push(Arc::new(kinds::resolve(&self.client, gvk).await?));
        }
        scopes::check(
            &parent,
            &children,
            &self.spec.settings.allowed_child_kinds,
            self.namespace.as_deref(),
        )?;
        info!(new = %display_gvk(new_parent), "the new guest reconciles another parent kind; restarting the controller for it");
        handoff.hand_over(guest);
        Err(SwapError::HandedOver)
    }
}
