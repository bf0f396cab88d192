//! One call into a guest: a fresh store with its limits armed, the call, the size check of the
//! answer, and the classification of a failure (deadline, memory, trap).

use std::sync::Arc;

use wasmtime::{Store, Trap};

use super::bindings::{Call, Contract, GuestExports, GuestPre};
use super::compile_cache::CompileOrigin;
use super::engine::{EPOCH_TICK, GuestEngine};
use super::imports::GuestState;
use super::limits::CallLimits;
use super::log::{CallLog, MAX_GUEST_ERROR_BYTES, guest_text};
use super::manifest::{GuestManifest, check_manifest};
use super::{Decision, GuestError, GuestFile, GuestLimits, LoadError, Observation, Requirement};

/// A guest's configuration when the admin gave none: JSON `null`.
pub const NO_CONFIG: &str = "null";

/// How a configuration reads in a report or a log line: its size and a short digest, never its
/// content (an admin may put anything in it, and logs travel further than settings).
pub fn describe_config(config: &str) -> String {
    use sha2::Digest as _;
    if config.trim() == NO_CONFIG {
        return "none".to_owned();
    }
    let digest = sha2::Sha256::digest(config.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{} bytes of JSON, sha256:{hex}", config.len())
}

/// A compiled, linked guest, ready to be called. Cheap to share; each call gets its own store.
pub struct LoadedGuest {
    engine: Arc<GuestEngine>,
    pre: GuestPre,
    limits: GuestLimits,
    /// The configuration, JSON text, that `configure` accepted and every call is given.
    config: String,
    /// The file it was loaded from, for messages.
    path: std::path::PathBuf,
    /// The file's digest and the configuration's: what identifies the logic that decides.
    identity: String,
    digest: String,
    origin: CompileOrigin,
    manifest: GuestManifest,
}

/// One instance of a guest in a store of its own, good for one call: a store is never entered
/// twice, so no state (or trap) of one reconcile reaches the next.
pub struct GuestInstance<'a> {
    guest: &'a LoadedGuest,
    store: Store<GuestState>,
    exports: GuestExports,
}

impl GuestInstance<'_> {
    /// Runs one export in this instance, given the guest's configuration; a failed call (a trap,
    /// the deadline, memory) is classified. The instance is used up: no state of one call
    /// reaches the next.
    fn call<T>(
        mut self,
        export: impl FnOnce(&GuestExports, &mut Store<GuestState>, &String) -> Call<T>,
    ) -> Result<T, GuestError> {
        let guest = self.guest;
        export(&self.exports, &mut self.store, &guest.config)
            .map_err(|e| guest.call_failure(e, &self.store))
    }

    /// Calls `reconcile` and checks the size of the answer. Blocking.
    pub fn reconcile(self, observation: &Observation) -> Result<Decision, GuestError> {
        let guest = self.guest;
        let decision =
            self.call(|exports, store, config| exports.reconcile(store, observation, config))??;
        guest.check_output(&decision)?;
        Ok(decision)
    }

    /// Calls `requirements`: what else the guest reads for this parent. Blocking.
    pub fn requirements(self, parent: &String) -> Result<Vec<Requirement>, GuestError> {
        self.call(|exports, store, config| exports.requirements(store, parent, config))?
    }
}

impl LoadedGuest {
    /// Links are made by [`GuestEngine::link`]: the guest describes itself and its manifest is
    /// checked before anyone can call it; [`Self::configured`] gives it its configuration.
    pub(super) fn from_linked(
        engine: Arc<GuestEngine>,
        pre: GuestPre,
        limits: GuestLimits,
        file: &GuestFile,
        origin: CompileOrigin,
    ) -> Result<Self, LoadError> {
        let path = file.path.as_path();
        let contract = pre.contract();
        let mut guest = LoadedGuest {
            engine,
            pre,
            limits,
            config: NO_CONFIG.to_string(),
            path: path.into(),
            identity: file.digest.clone(),
            digest: file.digest.clone(),
            origin,
            manifest: GuestManifest::placeholder(contract),
        };
        let describe_failed = |source| LoadError::Describe {
            path: path.into(),
            source,
        };
        let described = guest
            .instantiate("describe")
            .and_then(|instance| instance.call(|exports, store, _| exports.describe(store)))
            .map_err(describe_failed)?;
        guest.manifest =
            check_manifest(described, contract).map_err(|reason| LoadError::Manifest {
                path: path.into(),
                reason,
            })?;
        Ok(guest)
    }

    /// The guest with `config` (JSON text, [`NO_CONFIG`] for none), which it accepted in an
    /// instance of its own. A 0.1 guest takes no configuration: it is not asked, and anything
    /// but `null` is refused for it, since it would silently ignore it.
    ///
    /// # Errors
    /// [`LoadError::Config`] with the guest's own message, or [`LoadError::Configure`] when the
    /// call failed.
    pub fn configured(mut self, config: &str) -> Result<Self, LoadError> {
        let path = self.path.clone();
        self.config = config.to_owned();
        self.identity = format!("{}+{}", self.digest, describe_config(config));
        if self.contract() == Contract::V0_1 {
            if config.trim() == NO_CONFIG {
                return Ok(self);
            }
            return Err(LoadError::Config {
                path,
                reason: "this guest speaks contract 0.1.0, which takes no configuration; \
                         remove its `config` (or --guest-config), or rebuild it against 0.2.0"
                    .into(),
            });
        }
        let failed = |source| LoadError::Configure {
            path: path.clone(),
            source,
        };
        let verdict = self
            .instantiate("configure")
            .and_then(|instance| instance.call(GuestExports::configure))
            .map_err(failed)?;
        verdict.map_err(|reason| LoadError::Config {
            path: path.clone(),
            reason: guest_text(&reason, MAX_GUEST_ERROR_BYTES),
        })?;
        Ok(self)
    }

    /// What the guest reconciles.
    pub fn manifest(&self) -> &GuestManifest {
        &self.manifest
    }

    /// SHA-256 of the guest file, identifying exactly which logic runs.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The contract version the guest was built against.
    pub fn contract(&self) -> Contract {
        self.pre.contract()
    }

    /// The configuration every call is given (JSON text; `null` when none).
    pub fn config(&self) -> &str {
        &self.config
    }

    /// What identifies the logic that decides: the file's digest and the configuration's. What
    /// the host keeps from one guest's answers (a parent's requirements) is kept for this.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The configuration as logs and reports show it: [`describe_config`].
    pub fn config_summary(&self) -> String {
        describe_config(&self.config)
    }

    /// Whether the machine code was compiled now or came from the compile cache.
    pub fn origin(&self) -> CompileOrigin {
        self.origin
    }

    /// The limits every call of this guest runs under.
    pub fn limits(&self) -> GuestLimits {
        self.limits
    }

    /// Calls `reconcile` in a fresh store. Blocking: call it from a blocking thread.
    pub fn reconcile(
        &self,
        observation: &Observation,
        parent_key: &str,
    ) -> Result<Decision, GuestError> {
        self.instantiate(parent_key)?.reconcile(observation)
    }

    /// Calls `requirements` in a fresh store: what else the guest reads for this parent (none
    /// for a 0.1 guest, without a call). Blocking: call it from a blocking thread.
    pub fn requirements(
        &self,
        parent: &String,
        parent_key: &str,
    ) -> Result<Vec<Requirement>, GuestError> {
        if self.contract() == Contract::V0_1 {
            return Ok(Vec::new());
        }
        self.instantiate(parent_key)?.requirements(parent)
    }

    fn check_output(&self, decision: &Decision) -> Result<(), GuestError> {
        let count = decision.children.len();
        if count > self.limits.max_children {
            return Err(GuestError::OutputTooLarge(format!(
                "{count} children, at most {} allowed",
                self.limits.max_children
            )));
        }
        let max_object = self.limits.max_object_bytes;
        let objects = decision
            .children
            .iter()
            .enumerate()
            .map(|(i, child)| (format!("child {i}"), child.len()))
            .chain(
                decision
                    .status
                    .as_ref()
                    .map(|s| ("the status".to_string(), s.len())),
            );
        for (what, bytes) in objects {
            if bytes > max_object {
                return Err(GuestError::OutputTooLarge(format!(
                    "{what} is {bytes} bytes of JSON, at most {max_object} allowed per object \
                     (--guest-max-object-kib; the API server refuses objects over about 1.5 MiB)"
                )));
            }
        }
        let bytes = decision.json_bytes();
        if bytes > self.limits.max_output_bytes {
            return Err(GuestError::OutputTooLarge(format!(
                "{bytes} bytes of JSON, at most {} allowed",
                self.limits.max_output_bytes
            )));
        }
        Ok(())
    }

    /// A fresh store and instance for one call, limits armed; `parent_key` labels its log lines.
    /// [`Self::reconcile`] is this and [`GuestInstance::reconcile`]; apart they let a benchmark
    /// time the two halves.
    pub fn instantiate(&self, parent_key: &str) -> Result<GuestInstance<'_>, GuestError> {
        let state = GuestState::new(
            CallLimits::new(self.limits.max_memory_bytes),
            CallLog::new(
                self.manifest.name.clone(),
                parent_key.to_string(),
                Arc::clone(&self.engine.log_budget),
            ),
        );
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|state| &mut state.limits);
        let ticks = self
            .limits
            .timeout
            .as_millis()
            .div_ceil(EPOCH_TICK.as_millis())
            .max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        match self.pre.instantiate(&mut store) {
            Ok(exports) => Ok(GuestInstance {
                guest: self,
                store,
                exports,
            }),
            Err(error) => Err(self.call_failure(error, &store)),
        }
    }

    /// Classifies a failed call. The store is dropped afterwards: one that trapped is never
    /// entered again.
    fn call_failure(&self, error: wasmtime::Error, store: &Store<GuestState>) -> GuestError {
        if store.data().limits.memory_denied {
            return GuestError::OutOfMemory(self.limits.max_memory_bytes);
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => GuestError::Timeout(self.limits.timeout),
            _ => GuestError::Trap(format!("{error:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_is_described_by_size_and_digest_never_its_content() {
        assert_eq!(describe_config(NO_CONFIG), "none");
        let described = describe_config(r#"{"token":"hunter2"}"#);
        assert!(
            described.starts_with("19 bytes of JSON, sha256:"),
            "{described}"
        );
        assert!(!described.contains("hunter2"), "{described}");
        assert_ne!(described, describe_config(r#"{"token":"hunter3"}"#));
    }
}
