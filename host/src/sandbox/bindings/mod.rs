//! The host side of the WIT contract: one `bindgen!` per minor version of
//! `wasm-reconciler:reconciler` the host speaks (`v0_1.rs` for the frozen `wit/0.1.0/`, `v0_2.rs`
//! for `wit/`), the conversions between their generated types and the host's own, and the
//! dispatch of each call to the version a guest was built against. Private to `sandbox/`: the
//! rest of the host speaks [`Observation`](super::Observation), [`Decision`](super::Decision) and
//! [`GuestManifest`](super::GuestManifest), so a change of the WIT stops at this folder.

/// What every version's bindings implement alike: the types are the same in each WIT but distinct
/// Rust types per `bindgen!`, so each version module expands this once after its `bindgen!`
/// (which must bring `GroupVersionKind` and `Level` into scope).
macro_rules! shared_by_every_version {
    () => {
        impl From<GroupVersionKind> for crate::sandbox::manifest::DescribedKind {
            fn from(gvk: GroupVersionKind) -> Self {
                crate::sandbox::manifest::DescribedKind {
                    group: gvk.group,
                    version: gvk.version,
                    kind: gvk.kind,
                }
            }
        }

        impl wasm_reconciler::reconciler::types::Host for GuestState {}

        impl wasm_reconciler::reconciler::log::Host for GuestState {
            fn log(&mut self, level: Level, message: String) {
                let level = match level {
                    Level::Trace => tracing::Level::TRACE,
                    Level::Debug => tracing::Level::DEBUG,
                    Level::Info => tracing::Level::INFO,
                    Level::Warn => tracing::Level::WARN,
                    Level::Error => tracing::Level::ERROR,
                };
                self.log.log(level, message);
            }
        }
    };
}

pub(super) mod v0_1;
pub(super) mod v0_2;

use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};

use super::imports::GuestState;
use super::manifest::Described;
use super::{Decision, GuestError, Observation, Requirement};

/// A minor version of the contract: what a guest was built against. Every host speaks every
/// version listed here (see the compatibility section of `wit/reconciler.wit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Contract {
    /// `wasm-reconciler:reconciler@0.1.0`: parent and children in, children and status out.
    V0_1,
    /// `wasm-reconciler:reconciler@0.2.0`: adds related objects, configuration, Events and
    /// cluster-scoped parents.
    V0_2,
}

impl Contract {
    /// Newest first: the order versions are named in messages.
    pub const ALL: [Contract; 2] = [Contract::V0_2, Contract::V0_1];

    /// `0.2.0`: the version as `status.reconciler.contract`, `check` and logs show it.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.0",
            Contract::V0_2 => "0.2.0",
        }
    }

    /// `wasm-reconciler:reconciler@0.2.0`.
    pub fn package(self) -> String {
        format!("wasm-reconciler:reconciler@{}", self.version())
    }

    /// The `0.y.` prefix of the versions of this contract: a guest exporting `guest@0.2.3` (built
    /// against a later patch of 0.2) speaks 0.2, as wasmtime's semver matching of `0.y` agrees.
    fn minor_prefix(self) -> &'static str {
        match self {
            Contract::V0_1 => "0.1.",
            Contract::V0_2 => "0.2.",
        }
    }

    /// The contract whose `guest` interface `component` exports, if any.
    pub(super) fn exported_by(component: &Component) -> Option<Contract> {
        let engine = component.engine();
        let exports: Vec<String> = component
            .component_type()
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        Self::ALL.into_iter().find(|contract| {
            exports.iter().any(|name| {
                name.strip_prefix("wasm-reconciler:reconciler/guest@")
                    .is_some_and(|version| version.starts_with(contract.minor_prefix()))
            })
        })
    }
}

/// `wasm-reconciler:reconciler@0.2.0 and wasm-reconciler:reconciler@0.1.0`: every version this
/// host speaks, for messages.
pub fn packages() -> String {
    Contract::ALL
        .iter()
        .map(|c| c.package())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Adds the imports of every contract version (`log`, `types`) to the linker.
pub(super) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    v0_1::Reconciler::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    v0_2::Reconciler::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |state| state)?;
    Ok(())
}

/// A guest linked in the version it speaks, ready to instantiate.
pub(super) enum GuestPre {
    V0_1(v0_1::ReconcilerPre<GuestState>),
    V0_2(v0_2::ReconcilerPre<GuestState>),
}

impl GuestPre {
    /// Finds the version of the guest's export (`contract`) and checks the component against it.
    pub fn new(
        contract: Contract,
        instance_pre: InstancePre<GuestState>,
    ) -> wasmtime::Result<Self> {
        Ok(match contract {
            Contract::V0_1 => GuestPre::V0_1(v0_1::ReconcilerPre::new(instance_pre)?),
            Contract::V0_2 => GuestPre::V0_2(v0_2::ReconcilerPre::new(instance_pre)?),
        })
    }

    pub fn contract(&self) -> Contract {
        match self {
            GuestPre::V0_1(_) => Contract::V0_1,
            GuestPre::V0_2(_) => Contract::V0_2,
        }
    }

    pub fn instantiate(&self, store: &mut Store<GuestState>) -> wasmtime::Result<GuestExports> {
        Ok(match self {
            GuestPre::V0_1(pre) => GuestExports::V0_1(pre.instantiate(store)?),
            GuestPre::V0_2(pre) => GuestExports::V0_2(pre.instantiate(store)?),
        })
    }
}

/// One instance's exports, in the version the guest speaks. Each function answers in host types;
/// what an older version lacks is answered as that version's guests behave (no configuration to
/// check, nothing else read).
pub(super) enum GuestExports {
    V0_1(v0_1::Reconciler),
    V0_2(v0_2::Reconciler),
}

/// What a call returns: `Err` when the call itself failed (a trap, the deadline, memory), `Ok`
/// with the guest's own answer otherwise.
pub(super) type Call<T> = wasmtime::Result<T>;

impl GuestExports {
    pub fn describe(&self, store: &mut Store<GuestState>) -> Call<Described> {
        match self {
            GuestExports::V0_1(guest) => v0_1::describe(guest, store),
            GuestExports::V0_2(guest) => v0_2::describe(guest, store),
        }
    }

    /// The guest's verdict on its configuration: `Err(message)` refuses it.
    pub fn configure(
        &self,
        store: &mut Store<GuestState>,
        config: &String,
    ) -> Call<Result<(), String>> {
        match self {
            // A 0.1 guest takes no configuration: the host refuses one before it gets here.
            GuestExports::V0_1(_) => Ok(Ok(())),
            GuestExports::V0_2(guest) => v0_2::configure(guest, store, config),
        }
    }

    pub fn requirements(
        &self,
        store: &mut Store<GuestState>,
        parent: &String,
        config: &String,
    ) -> Call<Result<Vec<Requirement>, GuestError>> {
        match self {
            GuestExports::V0_1(_) => Ok(Ok(Vec::new())),
            GuestExports::V0_2(guest) => v0_2::requirements(guest, store, parent, config),
        }
    }

    pub fn reconcile(
        &self,
        store: &mut Store<GuestState>,
        observation: &Observation,
        config: &String,
    ) -> Call<Result<Decision, GuestError>> {
        match self {
            GuestExports::V0_1(guest) => v0_1::reconcile(guest, store, observation),
            GuestExports::V0_2(guest) => v0_2::reconcile(guest, store, observation, config),
        }
    }
}
