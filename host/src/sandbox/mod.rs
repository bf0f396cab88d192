//! The guest sandbox: the only place wasmtime or the WIT's generated types appear.
//!
//! One `Engine` per process ([`GuestEngine`]); each guest file is read ([`GuestFile`]), compiled
//! (or taken from the [`compile_cache`]), linked once and asked to describe itself
//! ([`LoadedGuest`]); every call gets a fresh, limited store ([`GuestLimits`]), so no state leaks
//! between calls and a store that trapped is never reused. The rest of the host hands a guest an
//! [`Observation`] and gets a [`Decision`] or a [`GuestError`] back.
//!
//! # Guarantees
//! - A call never runs longer than [`GuestLimits::timeout`] (plus one epoch tick): epoch
//!   interruption traps it.
//! - A guest's linear memory never grows past [`GuestLimits::max_memory_bytes`].
//! - A guest sees no filesystem, network, environment variables, arguments or stdio: it is linked
//!   against an empty WASI context (Rust's std still imports a few WASI interfaces, e.g. a random
//!   seed for `HashMap`, which must exist to instantiate).

mod bindings;
mod call;
pub mod compile_cache;
mod engine;
mod error;
mod file;
mod imports;
mod limits;
mod load;
mod log;
mod manifest;

use std::time::Duration;

use kube::api::GroupVersionKind;

pub use bindings::{Contract, packages};
pub use call::{GuestInstance, LoadedGuest, NO_CONFIG, describe_config};
pub use compile_cache::{CompileCacheConfig, CompileOrigin};
pub use engine::{CompiledGuest, GuestEngine, GuestInterfaces};
pub use error::{EngineError, GuestError, LoadError};
pub use file::{GUEST_FILE_MAX_BYTES, GuestFile};
pub use limits::{
    GUEST_MAX_OBJECT_KIB, GUEST_MAX_OUTPUT_MIB, GUEST_MAX_RELATED_KIB, GUEST_MAX_RELATED_OBJECTS,
    GUEST_MEMORY_MIB, GUEST_TIMEOUT, GuestLimits,
};
pub use manifest::GuestManifest;

/// What a guest is shown for one parent: the parent and its children as JSON objects (as the API
/// server returns them), the related objects it asked for, and whether the parent is being
/// deleted. Holds the newest contract's record, which older contracts' calls take parts of.
pub struct Observation(bindings::v0_2::Observed);

impl Observation {
    pub fn new(parent: String, children: Vec<String>, finalizing: bool) -> Self {
        Self(bindings::v0_2::Observed {
            parent,
            children,
            related: Vec::new(),
            finalizing,
        })
    }

    /// The same observation with the objects the guest's requirements selected, one set per
    /// requirement, in the order of the requirements.
    pub fn with_related(mut self, related: Vec<(String, Vec<String>)>) -> Self {
        self.0.related = related
            .into_iter()
            .map(|(key, objects)| bindings::v0_2::RelatedObjects { key, objects })
            .collect();
        self
    }

    /// The parent, as JSON.
    pub fn parent(&self) -> &str {
        &self.0.parent
    }

    /// The observed children, each as JSON.
    pub fn children(&self) -> &[String] {
        &self.0.children
    }

    pub fn finalizing(&self) -> bool {
        self.0.finalizing
    }

    /// What a guest of the newest contract is handed: the WIT record, built without copying.
    pub(crate) fn as_wit(&self) -> &bindings::v0_2::Observed {
        &self.0
    }
}

/// What a guest decided for one parent, as it returned it (not yet checked by the output policy).
#[derive(Clone, Debug, Default)]
pub struct Decision {
    /// The desired children, each as JSON text.
    pub children: Vec<String>,
    /// The desired status, as JSON text.
    pub status: Option<String>,
    /// When the guest wants the parent reconciled again.
    pub requeue_after: Option<Duration>,
    /// Events to publish on the parent (contract 0.2 and later; none from a 0.1 guest).
    pub events: Vec<GuestEvent>,
}

impl Decision {
    /// Bytes of JSON the guest returned, children and status together.
    pub fn json_bytes(&self) -> usize {
        self.children.iter().map(String::len).sum::<usize>()
            + self.status.as_ref().map_or(0, String::len)
    }
}

/// `Normal` or `Warning`, as Kubernetes' Event `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// An Event a guest asks the host to publish on its parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestEvent {
    pub event_type: EventType,
    pub reason: String,
    pub message: String,
    /// The child it is about, if any.
    pub about: Option<ChildRef>,
}

/// One of a guest's children, named in an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildRef {
    pub kind: GroupVersionKind,
    pub name: String,
    pub namespace: Option<String>,
}

/// A set of related objects a guest reads for one parent (contract 0.2 `requirement`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// The guest's name for the set.
    pub key: String,
    pub kind: GroupVersionKind,
    /// For a namespaced kind: where to read (none: the parent's namespace, or every namespace for
    /// a cluster-scoped parent).
    pub namespace: Option<String>,
    pub selection: Selection,
}

/// Which objects a [`Requirement`] selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selection {
    Names(Vec<String>),
    /// Kubernetes' label-selector syntax.
    LabelSelector(String),
}
