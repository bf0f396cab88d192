//! Serves a folder of guests (`run --guests DIR`): one controller per guest, over the process's
//! shared child caches, started, restarted and stopped as the folder changes.
//!
//! - A file that appears is loaded and checked, then its controller starts.
//! - A replaced file is its controller's hot swap (`hot_swap.rs`), under the same rules as one
//!   guest: checked first, a refused file leaves the old guest serving.
//! - A changed settings file (`NAME.yaml`) restarts that guest's controller with the new settings.
//! - A removed file stops its controller gracefully; its parents and their children are left as
//!   they are (nothing is pruned or deleted: the guest may come back, or another host may take
//!   over).
//! - A second guest for a parent kind another guest of the folder reconciles is refused (log line,
//!   `reconciler_guest_refusals_total{reason="duplicate_parent_kind"}`); the first keeps serving,
//!   and the second starts once the first is gone.
//! - A guest whose kinds the API server does not serve (its CRD is not installed yet) is retried
//!   at each periodic check, so a CRD created after the host started is picked up; the other
//!   guests serve meanwhile, and it keeps its parent kind while it waits.
//!
//! Changes are noticed as the hot swap notices them: a watch on the folder (which also sees the
//! kubelet's `..data` symlink swap of a ConfigMap), SIGHUP, and the periodic check.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::GroupVersionKind;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::cli::RunSettings;
use crate::cluster::{display_gvk, kinds};
use crate::controller::{self, Shared, StartError, Stopped};
use crate::error_text::error_chain;
use crate::guest::{GuestFile, LoadedGuest};
use crate::hot_swap::{SighupForwarder, watch_folder};
use crate::metrics::{GuestMetrics, Refusal};
use crate::reconcile::active_guest::guest_labels;
use crate::reconcilers::{GuestSpec, guest_files, name_of, settings::settings_path};

/// Quiet time after the last file event before the folder is read.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// The folder of guests cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the guest folder {folder} (--guests): {source}")]
pub struct FolderError {
    folder: PathBuf,
    #[source]
    source: std::io::Error,
}

/// Checks at start that `folder` can be read, so a wrong `--guests` fails at once.
///
/// # Errors
/// The folder cannot be read.
pub fn check_readable(folder: &Path) -> Result<(), FolderError> {
    guest_files(folder).map(drop).map_err(|source| FolderError {
        folder: folder.to_path_buf(),
        source,
    })
}

/// Serves every guest in `folder` until `stopping`, then stops their controllers gracefully.
/// Dropping the future instead stops them all at once (a leader that lost its Lease).
///
/// # Errors
/// None once started; the `Result` is the start-up check's.
pub async fn serve(
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
        serving: BTreeMap::new(),
        refused: BTreeMap::new(),
        retry_at: BTreeMap::new(),
        tasks: JoinSet::new(),
        task_names: HashMap::new(),
    };
    let (wake, mut woken) = mpsc::channel::<&'static str>(16);
    let _folder_watch = watch_folder(folder, wake.clone());
    let _sighup = SighupForwarder::spawn(wake);
    let mut poll = tokio::time::interval(settings.guest_poll_interval);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await;
    loop {
        supervisor.pass().await;
        tokio::select! {
            _ = stopping.wait_for(|stopping| *stopping) => break,
            Some(cause) = woken.recv() => {
                debug!(%cause, "guest folder changed");
                tokio::time::sleep(DEBOUNCE).await;
                while woken.try_recv().is_ok() {}
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
    parent: GroupVersionKind,
    /// The settings file's text when the controller started (`None`: no file).
    settings_text: Option<String>,
    stop: watch::Sender<bool>,
    /// Why it was asked to stop, once it was.
    stopping: Option<StopCause>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StopCause {
    Removed,
    SettingsChanged,
}

/// A guest file that was refused, remembered so it is reported once per content.
struct Refused {
    digest: String,
    settings_text: Option<String>,
    /// For a duplicate parent kind: the kind, so the guest starts once it is free.
    duplicate_of: Option<GroupVersionKind>,
}

/// A guest waiting to be tried again.
struct Retry {
    at: Instant,
    /// The parent kind it reconciles, when known: still its own while it waits, so no other
    /// guest takes it meanwhile.
    parent: Option<GroupVersionKind>,
}

struct Supervisor {
    shared: Shared,
    folder: PathBuf,
    settings: RunSettings,
    serving: BTreeMap<String, Serving>,
    refused: BTreeMap<String, Refused>,
    /// Guests to try again, not before then: their controller could not start (a kind not
    /// served), or their file could not be read.
    retry_at: BTreeMap<String, Retry>,
    tasks: JoinSet<Result<Stopped, StartError>>,
    task_names: HashMap<tokio::task::Id, String>,
}

impl Supervisor {
    /// Brings the controllers in line with the folder.
    async fn pass(&mut self) {
        let files = match guest_files(&self.folder) {
            Ok(files) => files,
            // Keep serving what runs: the folder may be in the middle of an update.
            Err(error) => {
                warn!(folder = %self.folder.display(), %error, "cannot read the guest folder; the running guests keep serving");
                return;
            }
        };
        let present: BTreeMap<String, PathBuf> = files
            .into_iter()
            .map(|path| (name_of(&path), path))
            .collect();
        for (name, serving) in &mut self.serving {
            if serving.stopping.is_some() {
                continue;
            }
            let cause = match present.get(name) {
                None => StopCause::Removed,
                Some(path) if settings_text(path) != serving.settings_text => {
                    StopCause::SettingsChanged
                }
                Some(_) => continue,
            };
            match cause {
                StopCause::Removed => {
                    info!(guest = %name, "guest file removed: stopping its reconciler; its parents and their children are left as they are")
                }
                StopCause::SettingsChanged => {
                    info!(guest = %name, "guest settings changed: restarting its reconciler with them")
                }
            }
            let _ = serving.stop.send(true);
            serving.stopping = Some(cause);
        }
        self.refused.retain(|name, _| present.contains_key(name));
        // A guest that was waiting to start (its CRD missing) and is gone: its line in /readyz
        // goes with it.
        let metrics = &self.shared.metrics;
        self.retry_at.retain(|name, _| {
            let keep = present.contains_key(name);
            if !keep {
                metrics.forget_guest(name);
            }
            keep
        });
        for (name, path) in present {
            let waiting = self
                .retry_at
                .get(&name)
                .is_some_and(|retry| Instant::now() < retry.at);
            if !self.serving.contains_key(&name) && !waiting {
                self.try_start(name, path).await;
            }
        }
    }

    /// Loads and checks the guest in `path` and starts its controller, or refuses it.
    async fn try_start(&mut self, name: String, path: PathBuf) {
        let settings_text = settings_text(&path);
        let read_path = path.clone();
        let file = match tokio::task::spawn_blocking(move || GuestFile::read(&read_path)).await {
            Ok(Ok(file)) => file,
            Ok(Err(error)) => return self.refuse(&name, None, None, &error_chain(&error)),
            Err(error) => return self.refuse(&name, None, None, &error.to_string()),
        };
        if let Some(refused) = self.refused.get(&name)
            && refused.digest == file.digest
            && refused.settings_text == settings_text
            && refused
                .duplicate_of
                .as_ref()
                .is_none_or(|kind| self.holder_of(kind, &name).is_some())
        {
            return;
        }
        let digest = file.digest.clone();
        let checked = self.load(&path, file).await;
        let (spec, guest) = match checked {
            Ok(loaded) => loaded,
            Err(reason) => {
                return self.refuse(&name, Some((digest, settings_text)), None, &reason);
            }
        };
        let parent = guest.manifest().parent.clone();
        if let Some(holder) = self.holder_of(&parent, &name) {
            let reason = format!(
                "it reconciles {}, which the guest {holder} of this folder already reconciles; \
                 the first keeps serving (remove one of the two files; this one starts once \
                 the other is gone)",
                display_gvk(&parent)
            );
            return self.refuse(&name, Some((digest, settings_text)), Some(parent), &reason);
        }
        self.refused.remove(&name);
        self.retry_at.remove(&name);
        self.start(name, spec, guest, parent, settings_text);
    }

    /// The guest's settings and the loaded guest, checked against them and the host's flags.
    async fn load(&self, path: &Path, file: GuestFile) -> Result<(GuestSpec, LoadedGuest), String> {
        let spec = GuestSpec::load(
            path,
            self.settings.limits,
            &self.settings.allowed_child_kinds,
        )
        .map_err(|error| error_chain(&error))?;
        let engine = Arc::clone(&self.shared.engine);
        let limits = spec.settings.limits;
        let guest = tokio::task::spawn_blocking(move || engine.load(&file, limits))
            .await
            .map_err(|error| error.to_string())?
            .map_err(|error| error_chain(&error))?;
        let manifest = guest.manifest();
        spec.settings
            .allowed_child_kinds
            .check(&manifest.children)
            .map_err(|reason| match &spec.settings.file {
                Some(file) => format!("{reason} (by its settings {})", file.display()),
                None => reason,
            })?;
        if kinds::is_builtin(&manifest.parent) && !self.settings.allow_builtin_parent_kind {
            return Err(kinds::builtin_parent_refused(&manifest.parent));
        }
        Ok((spec, guest))
    }

    /// The guest other than `except` that holds `kind`: it serves it, or waits to.
    fn holder_of(&self, kind: &GroupVersionKind, except: &str) -> Option<String> {
        let serving = self
            .serving
            .iter()
            .filter(|(_, s)| &s.parent == kind)
            .map(|(name, _)| name);
        let waiting = self
            .retry_at
            .iter()
            .filter(|(_, r)| r.parent.as_ref() == Some(kind))
            .map(|(name, _)| name);
        serving
            .chain(waiting)
            .find(|name| name.as_str() != except)
            .cloned()
    }

    fn refuse(
        &mut self,
        name: &str,
        content: Option<(String, Option<String>)>,
        duplicate_of: Option<GroupVersionKind>,
        reason: &str,
    ) {
        let kind = if duplicate_of.is_some() {
            Refusal::DuplicateParentKind
        } else {
            Refusal::Unusable
        };
        warn!(guest = %name, %reason, "refused the guest; the other guests keep serving");
        self.shared.metrics.guest_refused(name, kind);
        if let Some((digest, settings_text)) = content {
            self.refused.insert(
                name.to_owned(),
                Refused {
                    digest,
                    settings_text,
                    duplicate_of,
                },
            );
        } else {
            // Unreadable: try again at the next check, quietly unless it changes.
            self.retry_at.insert(
                name.to_owned(),
                Retry {
                    at: Instant::now() + self.settings.guest_poll_interval,
                    parent: None,
                },
            );
        }
    }

    fn start(
        &mut self,
        name: String,
        spec: GuestSpec,
        guest: LoadedGuest,
        parent: GroupVersionKind,
        settings_text: Option<String>,
    ) {
        let manifest = guest.manifest();
        info!(
            guest = %name,
            reconciles = %display_gvk(&parent),
            name = %manifest.name,
            version = %manifest.version,
            digest = %guest.digest(),
            "starting the guest's reconciler"
        );
        GuestMetrics::new(&self.shared.metrics, &name).set_active_guest(guest_labels(&guest));
        let (stop, stop_requested) = watch::channel(false);
        let run = controller::run(
            self.shared.clone(),
            Arc::new(guest),
            spec,
            self.settings.clone(),
            stopped(stop_requested),
        )
        .instrument(info_span!("guest", guest = %name));
        let task = self.tasks.spawn(run);
        self.task_names.insert(task.id(), name.clone());
        self.serving.insert(
            name,
            Serving {
                parent,
                settings_text,
                stop,
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
        let ended = self.serving.remove(&name);
        let cause = ended.as_ref().and_then(|s| s.stopping);
        let metrics = GuestMetrics::new(&self.shared.metrics, &name);
        match (cause, outcome) {
            (Some(StopCause::Removed), _) => {
                self.shared.metrics.forget_guest(&name);
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
                metrics.set_waiting(Some(reason));
                self.retry_at.insert(
                    name,
                    Retry {
                        at: Instant::now() + retry,
                        parent: ended.map(|s| s.parent),
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

/// However serving ends (stopped, or dropped when leadership is lost), the guests it served
/// leave `/readyz` and `guest_info`: a replica that leads again reads the folder afresh, and a
/// guest removed meanwhile must not stay behind as not ready.
impl Drop for Supervisor {
    fn drop(&mut self) {
        for name in self.serving.keys().chain(self.retry_at.keys()) {
            self.shared.metrics.forget_guest(name);
        }
    }
}

/// The text of `guest`'s settings file, `None` when there is none (or it cannot be read, which
/// loading the settings then reports).
fn settings_text(guest: &Path) -> Option<String> {
    std::fs::read_to_string(settings_path(guest)).ok()
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
