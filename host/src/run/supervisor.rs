//! Serves a folder of guests (`run --guests DIR`): one controller per guest, over the process's
//! shared child caches, started, restarted and stopped as the folder changes.
//!
//! - A file that appears is loaded and checked, then its controller starts.
//! - A replaced file is its controller's hot swap (`controller/hot_swap.rs`), under the same rules
//!   as one guest: checked first, a refused file leaves the old guest serving.
//! - A changed settings file (`NAME.yaml`) restarts that guest's controller with the new settings.
//! - A removed file stops its controller gracefully; its parents and their children are left as
//!   they are (nothing is pruned or deleted: the guest may come back, or another host may take
//!   over).
//! - Whether a guest may serve is admission's answer (`guests/admission.rs`), given the other guests: a
//!   second guest for a parent kind, or one whose kinds would close a cycle with theirs, is
//!   refused (log line, `reconciler_guest_refusals_total{reason}`); the first keeps serving, and
//!   the refused one is tried again once a guest it conflicts with is gone.
//! - A guest whose kinds the API server does not serve (its CRD is not installed yet) is retried
//!   at each periodic check, so a CRD created after the host started is picked up; the other
//!   guests serve meanwhile, and it keeps its parent kind while it waits.
//!
//! Changes are noticed by one watch on the folder (which also sees the kubelet's `..data` symlink
//! swap of a ConfigMap), SIGHUP, and the periodic check; the guests' hot swaps watch nothing
//! themselves but are told here when their file changed. The folder is untrusted input
//! (`guests/folder.rs`): a pass lists it without opening a file, and a file is read again only when its
//! stamp changed (SIGHUP reads everything again); reads run off the async threads with a
//! deadline.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::cluster::display_gvk;
use crate::config::RunSettings;
use crate::controller::{self, Membership, Shared, StartError, Stopped};
use crate::error_text::error_chain;
use crate::guests::folder::{self, FolderError, GuestEntry, Stamps, check_readable, off_thread};
use crate::guests::settings::{self, GuestSettings, settings_text};
use crate::guests::watch::{SighupForwarder, watch_folder};
use crate::guests::{GuestSpec, Refusal, Roster};
use crate::metrics::{GuestMetrics, RefusalReason};
use crate::reconcile::active_guest::guest_labels;
use crate::sandbox::{GuestFile, LoadedGuest};

use super::unserved::Unserved;

/// Quiet time after the last file event before the folder is read.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// Serves every guest in `folder` until `stopping`, then stops their controllers gracefully.
/// Dropping the future instead stops them all at once (a leader that lost its Lease).
///
/// # Errors
/// None once started; the `Result` is the start-up check's.
pub(super) async fn serve(
    shared: &Shared,
    folder: &Path,
    settings: &RunSettings,
    mut stopping: watch::Receiver<bool>,
) -> Result<(), FolderError> {
    check_readable(folder)?;
    info!(folder = %folder.display(), "serving the guests of a folder");
    let mut supervisor = Supervisor {
        shared: shared.clone(),
        folder: folder.to_path_buf(),
        settings: RunSettings {
            // Each guest keeps its parent kind; a new kind is a new file.
            allow_parent_kind_change: false,
            ..settings.clone()
        },
        roster: Arc::new(Roster::default()),
        serving: BTreeMap::new(),
        refused: BTreeMap::new(),
        retry_at: BTreeMap::new(),
        tasks: JoinSet::new(),
        task_names: HashMap::new(),
        unserved: Unserved::default(),
    };
    let (wake, mut woken) = mpsc::channel::<&'static str>(16);
    let _folder_watch = watch_folder(folder, wake.clone());
    let _sighup = SighupForwarder::spawn(wake);
    let mut poll = tokio::time::interval(settings.guest_poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await;
    let mut reread = false;
    loop {
        supervisor.pass(reread).await;
        reread = false;
        tokio::select! {
            _ = stopping.wait_for(|stopping| *stopping) => break,
            Some(cause) = woken.recv() => {
                debug!(%cause, "guest folder changed");
                reread = cause == "SIGHUP";
                tokio::time::sleep(DEBOUNCE).await;
                while let Ok(cause) = woken.try_recv() {
                    reread |= cause == "SIGHUP";
                }
            }
            _ = poll.tick() => {}
            Some(ended) = supervisor.tasks.join_next_with_id() => supervisor.ended(ended),
        }
    }
    supervisor.stop_all().await;
    Ok(())
}

/// A guest whose controller runs (or is stopping).
struct Serving {
    /// The files' stamps when last looked at.
    stamps: Stamps,
    /// The settings file's text when last looked at (`None`: no file).
    settings_text: Option<String>,
    /// The settings the controller started with: a change of their `config` alone goes to the
    /// hot swap, any other change restarts the controller.
    settings: GuestSettings,
    stop: watch::Sender<bool>,
    /// Tells the guest's hot swap that its file changed.
    changed: mpsc::Sender<&'static str>,
    /// Why it was asked to stop, once it was.
    stopping: Option<StopCause>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StopCause {
    Removed,
    SettingsChanged,
}

/// A guest file that was refused, remembered so that it is read and reported once per content.
struct Refused {
    stamps: Stamps,
    /// The guests whose kinds caused the refusal: it is tried again once one of them is gone.
    blocked_by: Vec<String>,
}

/// A guest whose controller could not start (a kind not served), tried again then. It keeps its
/// kinds in the roster meanwhile, so no other guest takes its parent kind.
struct Retry {
    at: Instant,
}

struct Supervisor {
    shared: Shared,
    folder: PathBuf,
    settings: RunSettings,
    /// The kinds every guest of the folder holds, which admission judges each newcomer by.
    roster: Arc<Roster>,
    serving: BTreeMap<String, Serving>,
    refused: BTreeMap<String, Refused>,
    retry_at: BTreeMap<String, Retry>,
    tasks: JoinSet<Result<Stopped, StartError>>,
    task_names: HashMap<tokio::task::Id, String>,
    /// What the last pass left unserved (said when it changes).
    unserved: Unserved,
}

impl Supervisor {
    /// Brings the controllers in line with the folder; `reread`: read every file again, whatever
    /// its stamp (SIGHUP).
    async fn pass(&mut self, reread: bool) {
        let folder = self.folder.clone();
        let mut listing = match off_thread(move || folder::list(&folder)).await {
            Ok(Ok(listing)) => listing,
            // Keep serving what runs: the folder may be in the middle of an update.
            Ok(Err(error)) => {
                warn!(folder = %self.folder.display(), %error, "cannot read the guest folder; the running guests keep serving");
                return;
            }
            Err(late) => {
                warn!(folder = %self.folder.display(), error = %late, "listing the guest folder timed out; the running guests keep serving");
                return;
            }
        };
        self.unserved.follow(&self.folder, &mut listing);
        let present: BTreeMap<String, GuestEntry> = listing
            .guests
            .into_iter()
            .map(|entry| (entry.name.clone(), entry))
            .collect();
        self.follow_serving(&present, reread).await;
        self.forget_gone(&present, reread);
        for (name, entry) in present {
            let waiting = self
                .retry_at
                .get(&name)
                .is_some_and(|retry| Instant::now() < retry.at);
            if !self.serving.contains_key(&name) && !self.refused.contains_key(&name) && !waiting {
                self.try_start(name, entry).await;
            }
        }
    }

    /// Stops the guests whose file went, restarts those whose settings changed, and tells the hot
    /// swap of those whose file changed.
    async fn follow_serving(&mut self, present: &BTreeMap<String, GuestEntry>, reread: bool) {
        for (name, serving) in &mut self.serving {
            if serving.stopping.is_some() {
                continue;
            }
            let Some(entry) = present.get(name) else {
                info!(guest = %name, "guest file removed: stopping its reconciler; its parents and their children are left as they are");
                let _ = serving.stop.send(true);
                serving.stopping = Some(StopCause::Removed);
                continue;
            };
            let settings_changed = entry.stamps.settings != serving.stamps.settings;
            if settings_changed || reread {
                let path = entry.path.clone();
                let text = off_thread(move || settings_text(&path))
                    .await
                    .ok()
                    .flatten();
                if text != serving.settings_text {
                    let (path, rules) = (entry.path.clone(), self.settings.rules.clone());
                    let now = off_thread(move || settings::load(&path, &rules)).await;
                    if !matches!(&now, Ok(Ok(now)) if now.same_but_config(&serving.settings)) {
                        info!(guest = %name, "guest settings changed: restarting its reconciler with them");
                        let _ = serving.stop.send(true);
                        serving.stopping = Some(StopCause::SettingsChanged);
                        continue;
                    }
                    info!(guest = %name, "guest configuration changed: the hot swap checks the guest with it");
                    serving.settings_text = text;
                    let _ = serving.changed.try_send("configuration change");
                }
            }
            if entry.stamps.guest != serving.stamps.guest || reread {
                // A full channel already holds a wake-up: nothing is lost.
                let _ = serving
                    .changed
                    .try_send(if reread { "SIGHUP" } else { "file event" });
            } else if entry.stamps.candidate != serving.stamps.candidate {
                let _ = serving.changed.try_send("candidate file event");
            }
            serving.stamps = entry.stamps;
        }
    }

    /// Forgets refusals whose file changed or went, or whose cause went; and guests waiting to
    /// start whose file went.
    fn forget_gone(&mut self, present: &BTreeMap<String, GuestEntry>, reread: bool) {
        let shared = &self.shared;
        let metrics = &shared.metrics;
        let roster = &self.roster;
        self.refused.retain(|name, refused| {
            let Some(entry) = present.get(name) else {
                // Its series go with it: the names of refused files are not a bound.
                metrics.forget_refusals(name);
                return false;
            };
            !reread
                && entry.stamps == refused.stamps
                && refused.blocked_by.iter().all(|other| roster.holds(other))
        });
        self.retry_at.retain(|name, _| {
            let keep = present.contains_key(name);
            if !keep {
                // A guest that was waiting to start (its CRD missing) and is gone: its line in
                // /readyz and its kinds go with it.
                shared.forget_guest(name);
                metrics.forget_refusals(name);
                roster.release(name);
            }
            keep
        });
    }

    /// Reads, loads and admits the guest of `entry` and starts its controller, or refuses it.
    async fn try_start(&mut self, name: String, entry: GuestEntry) {
        match self.read_and_load(&entry).await {
            Ok((spec, guest, settings_text)) => {
                self.refused.remove(&name);
                self.retry_at.remove(&name);
                self.shared.metrics.forget_refusals(&name);
                self.start(name, spec, guest, entry.stamps, settings_text);
            }
            Err(Loading::Unusable(reason)) => {
                let unusable = RefusalReason::Unusable;
                self.refuse(&name, entry.stamps, unusable, &reason, Vec::new());
            }
            Err(Loading::Refused(refusal)) => {
                let (reason, text) = (refusal.metric_reason(), error_chain(&refusal));
                self.refuse(&name, entry.stamps, reason, &text, refusal.blocked_by());
            }
        }
    }

    /// Reads the guest file of `entry` (off the async threads) and its settings, then loads and
    /// admits it; also the settings text, to tell a later change.
    async fn read_and_load(
        &self,
        entry: &GuestEntry,
    ) -> Result<(GuestSpec, LoadedGuest, Option<String>), Loading> {
        if let Some(reason) = &entry.unreadable {
            return Err(Loading::Unusable(reason.clone()));
        }
        let (path, cap) = (entry.path.clone(), self.settings.rules.max_file_bytes);
        let file = off_thread(move || GuestFile::read_capped(&path, cap))
            .await
            .map_err(Loading::Unusable)?
            .map_err(|error| Loading::Unusable(error_chain(&error)))?;
        let path = entry.path.clone();
        let settings_text = off_thread(move || settings_text(&path))
            .await
            .ok()
            .flatten();
        let (spec, guest) = self.load(&entry.path, file).await?;
        Ok((spec, guest, settings_text))
    }

    /// The guest's settings and the loaded guest, admitted beside the other guests (its kinds
    /// are in the roster from then on).
    async fn load(
        &self,
        path: &Path,
        file: GuestFile,
    ) -> Result<(GuestSpec, LoadedGuest), Loading> {
        let spec = GuestSpec::load(path, &self.settings.rules)
            .map_err(|error| Loading::Refused(error.into()))?;
        let engine = Arc::clone(&self.shared.engine);
        let (limits, config) = (spec.settings.limits, spec.config().to_owned());
        let guest =
            tokio::task::spawn_blocking(move || engine.load_configured(&file, limits, &config))
                .await
                .map_err(|error| Loading::Unusable(error.to_string()))?
                .map_err(|error| Loading::Unusable(error_chain(&error)))?;
        self.roster
            .admit(
                &self.settings.rules,
                &spec.name,
                guest.manifest(),
                &spec.settings,
            )
            .map_err(Loading::Refused)?;
        Ok((spec, guest))
    }

    fn refuse(
        &mut self,
        name: &str,
        stamps: Stamps,
        reason: RefusalReason,
        text: &str,
        blocked_by: Vec<String>,
    ) {
        warn!(guest = %name, reason = %text, "refused the guest; the other guests keep serving");
        self.shared.metrics.guest_refused(name, reason);
        // Not served: no line in /readyz (a guest restarted for new settings that are refused
        // would otherwise stay there as not ready), and no kinds held.
        self.shared.forget_guest(name);
        self.roster.release(name);
        self.retry_at.remove(name);
        self.refused
            .insert(name.to_owned(), Refused { stamps, blocked_by });
    }

    fn start(
        &mut self,
        name: String,
        spec: GuestSpec,
        guest: LoadedGuest,
        stamps: Stamps,
        settings_text: Option<String>,
    ) {
        let manifest = guest.manifest();
        info!(
            guest = %name,
            reconciles = %display_gvk(&manifest.parent),
            name = %manifest.name,
            version = %manifest.version,
            digest = %guest.digest(),
            contract = guest.contract().version(),
            config = %guest.config_summary(),
            "starting the guest's reconciler"
        );
        GuestMetrics::new(&self.shared.metrics, &name).set_active_guest(guest_labels(&guest));
        self.shared
            .readiness
            .guest(&name)
            .set_loaded(guest.contract().version());
        let (stop, stop_requested) = watch::channel(false);
        let (changed, changes) = mpsc::channel(1);
        let settings = spec.settings.clone();
        let membership = Membership {
            roster: Arc::clone(&self.roster),
            changes: Some(changes),
        };
        let run = controller::run(
            self.shared.clone(),
            Arc::new(guest),
            spec,
            self.settings.clone(),
            membership,
            stopped(stop_requested),
        )
        .instrument(info_span!("guest", guest = %name));
        let task = self.tasks.spawn(run);
        self.task_names.insert(task.id(), name.clone());
        self.serving.insert(
            name,
            Serving {
                stamps,
                settings_text,
                settings,
                stop,
                changed,
                stopping: None,
            },
        );
    }

    /// A controller ended: asked to, or it could not start (retried at the next check).
    fn ended(
        &mut self,
        ended: Result<(tokio::task::Id, Result<Stopped, StartError>), tokio::task::JoinError>,
    ) {
        let (id, outcome) = match ended {
            Ok((id, outcome)) => (id, outcome.map_err(|error| error_chain(&error))),
            Err(error) => (
                error.id(),
                Err(format!("the reconciler task failed: {error}")),
            ),
        };
        let Some(name) = self.task_names.remove(&id) else {
            return;
        };
        let cause = self.serving.remove(&name).and_then(|s| s.stopping);
        match (cause, outcome) {
            (Some(StopCause::Removed), _) => {
                self.shared.forget_guest(&name);
                self.roster.release(&name);
                info!(guest = %name, "reconciler stopped");
            }
            (Some(StopCause::SettingsChanged), _) => {
                info!(guest = %name, "reconciler stopped; starting it again");
            }
            (None, Ok(_)) => {
                warn!(guest = %name, "reconciler stopped by itself; starting it again");
            }
            (None, Err(reason)) => {
                let retry = self.settings.guest_poll_interval;
                warn!(guest = %name, %reason, retry_in = ?retry, "the guest's reconciler cannot start; the other guests keep serving");
                self.shared.readiness.guest(&name).set_waiting(Some(reason));
                self.retry_at.insert(
                    name,
                    Retry {
                        at: Instant::now() + retry,
                    },
                );
            }
        }
    }

    /// Asks every controller to stop and waits until they have (in-flight reconciles finish).
    async fn stop_all(&mut self) {
        for serving in self.serving.values() {
            let _ = serving.stop.send(true);
        }
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Why a guest file did not load.
enum Loading {
    /// It is not a guest this host can run (the log line says why).
    Unusable(String),
    /// Admission refused it.
    Refused(Refusal),
}

/// However serving ends (stopped, or dropped when leadership is lost), the guests it served
/// leave `/readyz` and `guest_info`: a replica that leads again reads the folder afresh, and a
/// guest removed meanwhile must not stay behind as not ready.
impl Drop for Supervisor {
    fn drop(&mut self) {
        for name in self.serving.keys().chain(self.retry_at.keys()) {
            self.shared.forget_guest(name);
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
