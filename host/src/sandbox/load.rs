//! Loading a guest: compile (or take from the compile cache, `engine.rs`) → link against the
//! engine's linker → describe itself (`call.rs`), so that no one can call a guest whose manifest
//! was not checked.

use std::path::Path;
use std::sync::Arc;

use super::bindings::{Contract, GuestPre};
use super::call::{LoadedGuest, NO_CONFIG};
use super::engine::{CompiledGuest, GuestEngine};
use super::{GuestFile, GuestLimits, LoadError};

impl GuestEngine {
    /// Compiles (or loads from the compile cache), links and describes a guest, with no
    /// configuration (`null`).
    ///
    /// # Errors
    /// A [`LoadError`] saying what is wrong with the file and what to do about it.
    pub fn load(
        self: &Arc<Self>,
        file: &GuestFile,
        limits: GuestLimits,
    ) -> Result<LoadedGuest, LoadError> {
        self.load_configured(file, limits, NO_CONFIG)
    }

    /// [`Self::load`], then the guest is given `config` (JSON text) and must accept it.
    ///
    /// # Errors
    /// As [`Self::load`], and [`LoadError::Config`] with the guest's own message when it refuses
    /// the configuration.
    pub fn load_configured(
        self: &Arc<Self>,
        file: &GuestFile,
        limits: GuestLimits,
        config: &str,
    ) -> Result<LoadedGuest, LoadError> {
        let compiled = self.compile(file)?;
        self.link(file, compiled, limits)?.configured(config)
    }

    /// [`GuestFile::read`] then [`Self::load`].
    pub fn load_path(
        self: &Arc<Self>,
        path: &Path,
        limits: GuestLimits,
    ) -> Result<LoadedGuest, LoadError> {
        self.load(&GuestFile::read(path)?, limits)
    }

    /// Links a compiled guest and asks it to describe itself. The guest is not configured yet:
    /// call [`LoadedGuest::configured`] before it reconciles.
    ///
    /// # Errors
    /// [`LoadError::Incompatible`], [`LoadError::Describe`] or [`LoadError::Manifest`].
    pub fn link(
        self: &Arc<Self>,
        file: &GuestFile,
        compiled: CompiledGuest,
        limits: GuestLimits,
    ) -> Result<LoadedGuest, LoadError> {
        let path = file.path.as_path();
        let CompiledGuest { component, origin } = compiled;
        let incompatible = |source| LoadError::Incompatible {
            path: path.into(),
            source,
        };
        // A guest that exports no version the host knows is checked against the newest, whose
        // error names the export it looked for.
        let contract = Contract::exported_by(&component).unwrap_or(Contract::ALL[0]);
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(incompatible)?;
        let pre = GuestPre::new(contract, instance_pre).map_err(incompatible)?;
        LoadedGuest::from_linked(Arc::clone(self), pre, limits, file, origin)
    }
}
