//! The guests a host serves: one file (`--guest`) or a folder of them (`--guests`), each a
//! reconciler for the parent kind it declares, with its own settings (`settings.rs`, which only
//! narrow the admin's flags). Whether a guest may serve is decided in one place
//! (`admission.rs`), given the host's rules (`rules.rs`, from the flags) and the other guests. A
//! folder is untrusted input: it is listed and read in `folder.rs` and followed by one watch
//! (`watch.rs`); `run/supervisor.rs` starts, swaps and stops one controller per guest as its
//! files appear, change and go.

pub mod admission;
pub mod allowlist;
pub mod folder;
pub mod kind_graph;
pub mod rules;
pub mod settings;
pub mod watch;

use std::path::{Path, PathBuf};

pub use admission::{Refusal, Roster};
pub use allowlist::KindAllowlist;
pub use rules::HostRules;
pub use settings::{GuestSettings, SettingsError};

/// One guest of this host: its name, its file, its settings and its configuration.
#[derive(Clone, Debug)]
pub struct GuestSpec {
    /// The guest's name in this host: its file name without `.wasm` (the `guest` label of the
    /// metrics, the `guest` field of the logs, its line in `/readyz`).
    pub name: String,
    pub path: PathBuf,
    pub settings: GuestSettings,
    /// The configuration of `--guest-config` (one guest only), compact JSON text.
    config_flag: Option<String>,
}

impl GuestSpec {
    /// The guest in `path` with its settings file within the host's `rules`.
    ///
    /// # Errors
    /// The settings file cannot be used.
    pub fn load(path: &Path, rules: &HostRules) -> Result<Self, SettingsError> {
        Ok(Self {
            name: name_of(path),
            path: path.to_path_buf(),
            settings: settings::load(path, rules)?,
            config_flag: None,
        })
    }

    /// The guest with the configuration of `--guest-config`, if given.
    ///
    /// # Errors
    /// [`SettingsError::ConfigTwice`] when its settings file has a `config` too: one of the two
    /// would be ignored without a word.
    pub fn with_config_flag(mut self, config: Option<String>) -> Result<Self, SettingsError> {
        if let (Some(_), Some(file)) = (&config, &self.settings.file)
            && self.settings.config.is_some()
        {
            return Err(SettingsError::ConfigTwice { path: file.clone() });
        }
        self.config_flag = config;
        Ok(self)
    }

    /// The configuration the guest is given: `--guest-config`, its settings' `config`, or
    /// `null`.
    pub fn config(&self) -> &str {
        self.config_flag
            .as_deref()
            .or(self.settings.config.as_deref())
            .unwrap_or(crate::sandbox::NO_CONFIG)
    }

    /// The configuration as it is now: `--guest-config`'s, or its settings file's `config` read
    /// again (a change of `config` alone is a hot swap, not a restart).
    ///
    /// # Errors
    /// The settings file cannot be used any more.
    pub fn config_now(&self, rules: &HostRules) -> Result<String, SettingsError> {
        if let Some(flag) = &self.config_flag {
            return Ok(flag.clone());
        }
        let settings = settings::load(&self.path, rules)?;
        Ok(settings
            .config
            .unwrap_or_else(|| crate::sandbox::NO_CONFIG.to_owned()))
    }
}

/// How a shadow candidate's file name ends: `NAME.candidate.wasm` is the candidate of the guest
/// in `NAME.wasm` (see `reconcile/shadow/`), called beside it and never written; no guest of its
/// own.
pub const CANDIDATE_SUFFIX: &str = ".candidate.wasm";

/// The file of `guest`'s shadow candidate: `NAME.candidate.wasm` beside `NAME.wasm`.
pub fn candidate_path(guest: &Path) -> PathBuf {
    guest.with_file_name(format!("{}{CANDIDATE_SUFFIX}", name_of(guest)))
}

/// The guest name whose candidate `path` is (`NAME` of `NAME.candidate.wasm`), if it is one.
pub fn candidate_of(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    file.strip_suffix(CANDIDATE_SUFFIX)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
}

/// A guest's name: its file name without `.wasm`.
pub fn name_of(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_candidate_is_named_after_its_guest() {
        let guest = Path::new("/guests/potatohead.wasm");
        let candidate = candidate_path(guest);
        assert_eq!(candidate, Path::new("/guests/potatohead.candidate.wasm"));
        assert_eq!(candidate_of(&candidate).as_deref(), Some("potatohead"));
        assert_eq!(candidate_of(guest), None);
        assert_eq!(candidate_of(Path::new("/guests/.candidate.wasm")), None);
    }
}
