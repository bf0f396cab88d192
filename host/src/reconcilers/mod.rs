//! The guests a host serves: one file (`--guest`) or a folder of them (`--guests`), each a
//! reconciler for the parent kind it declares, with its own settings (`settings.rs`). A folder is
//! served by `supervisor.rs`, which starts, restarts and stops one controller per guest as files
//! appear, change and go.

pub mod settings;

use std::path::{Path, PathBuf};

use crate::cluster::KindAllowlist;
use crate::guest::GuestLimits;
pub use settings::{GuestSettings, SettingsError};

/// One guest of this host: its name, its file and its settings.
#[derive(Clone, Debug)]
pub struct GuestSpec {
    /// The guest's name in this host: its file name without `.wasm` (the `guest` label of the
    /// metrics, the `guest` field of the logs, its line in `/readyz`).
    pub name: String,
    pub path: PathBuf,
    pub settings: GuestSettings,
}

impl GuestSpec {
    /// The guest in `path` with its settings file over the host's `limits` and `allowed` kinds.
    ///
    /// # Errors
    /// The settings file cannot be used.
    pub fn load(
        path: &Path,
        limits: GuestLimits,
        allowed: &KindAllowlist,
    ) -> Result<Self, SettingsError> {
        Ok(Self {
            name: name_of(path),
            path: path.to_path_buf(),
            settings: settings::load(path, limits, allowed)?,
        })
    }
}

/// A guest's name: its file name without `.wasm`.
pub fn name_of(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// The guest files in `folder` (`*.wasm`, not hidden: the kubelet keeps a ConfigMap's real files
/// in `..data/` and `..<timestamp>/`; not a link to nothing, which is a file on its way out), in
/// name order.
///
/// # Errors
/// The folder cannot be read.
pub fn guest_files(folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "wasm")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && p.exists()
        })
        .collect();
    files.sort();
    Ok(files)
}
