//! One call into a guest: a fresh store with its limits armed, the call, the size check of the
//! answer, and the classification of a failure (deadline, memory, trap).

use std::sync::Arc;

use wasmtime::{Store, Trap};

use super::bindings::{self, ReconcilerPre};
use super::compile_cache::CompileOrigin;
use super::engine::{EPOCH_TICK, GuestEngine};
use super::imports::GuestState;
use super::limits::CallLimits;
use super::log::{CallLog, MAX_GUEST_ERROR_BYTES, guest_text};
use super::manifest::{GuestManifest, check_manifest};
use super::{Decision, GuestError, GuestFile, GuestLimits, LoadError, Observation};

/// A compiled, linked guest, ready to be called. Cheap to share; each call gets its own store.
pub struct LoadedGuest {
    engine: Arc<GuestEngine>,
    pre: ReconcilerPre<GuestState>,
    limits: GuestLimits,
    digest: String,
    origin: CompileOrigin,
    manifest: GuestManifest,
}

/// One instance of a guest in a store of its own, good for one call: a store is never entered
/// twice, so no state (or trap) of one reconcile reaches the next.
pub struct GuestInstance<'a> {
    guest: &'a LoadedGuest,
    store: Store<GuestState>,
    exports: bindings::Reconciler,
}

impl GuestInstance<'_> {
    /// Calls `reconcile` and checks the size of the answer. Blocking.
    pub fn reconcile(mut self, observation: &Observation) -> Result<Decision, GuestError> {
        let guest = self.guest;
        let answer = self
            .exports
            .wasm_reconciler_reconciler_guest()
            .call_reconcile(&mut self.store, observation.as_wit())
            .map_err(|e| guest.call_failure(e, &self.store))?;
        let desired = answer.map_err(|e| match e {
            // Bounded here, once: the message reaches the status, an Event and the logs.
            bindings::ReconcileError::InvalidSpec(reason) => {
                GuestError::InvalidSpec(guest_text(&reason, MAX_GUEST_ERROR_BYTES))
            }
            bindings::ReconcileError::Transient(reason) => {
                GuestError::Transient(guest_text(&reason, MAX_GUEST_ERROR_BYTES))
            }
        })?;
        let decision = Decision::from(desired);
        guest.check_output(&decision)?;
        Ok(decision)
    }
}

impl LoadedGuest {
    /// Links are made by [`GuestEngine::link`]: the guest describes itself, and its manifest is
    /// checked, before anyone can call it.
    pub(super) fn from_linked(
        engine: Arc<GuestEngine>,
        pre: ReconcilerPre<GuestState>,
        limits: GuestLimits,
        file: &GuestFile,
        origin: CompileOrigin,
    ) -> Result<Self, LoadError> {
        let path = file.path.as_path();
        let mut guest = LoadedGuest {
            engine,
            pre,
            limits,
            digest: file.digest.clone(),
            origin,
            manifest: GuestManifest::placeholder(),
        };
        let GuestInstance {
            guest: _,
            mut store,
            exports,
        } = guest
            .instantiate("describe")
            .map_err(|source| LoadError::Describe {
                path: path.into(),
                source,
            })?;
        let manifest = exports
            .wasm_reconciler_reconciler_guest()
            .call_describe(&mut store)
            .map_err(|e| LoadError::Describe {
                path: path.into(),
                source: guest.call_failure(e, &store),
            })?;
        guest.manifest = check_manifest(&manifest).map_err(|reason| LoadError::Manifest {
            path: path.into(),
            reason,
        })?;
        Ok(guest)
    }

    /// What the guest reconciles.
    pub fn manifest(&self) -> &GuestManifest {
        &self.manifest
    }

    /// SHA-256 of the guest file, identifying exactly which logic runs.
    pub fn digest(&self) -> &str {
        &self.digest
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
