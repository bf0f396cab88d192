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

pub use bindings::WIT_PACKAGE;
pub use call::{GuestInstance, LoadedGuest};
pub use compile_cache::{CompileCacheConfig, CompileOrigin};
pub use engine::{CompiledGuest, GuestEngine, GuestInterfaces};
pub use error::{EngineError, GuestError, LoadError};
pub use file::{GUEST_FILE_MAX_BYTES, GuestFile};
pub use limits::{
    GUEST_MAX_OBJECT_KIB, GUEST_MAX_OUTPUT_MIB, GUEST_MEMORY_MIB, GUEST_TIMEOUT, GuestLimits,
};
pub use manifest::GuestManifest;

/// What a guest is shown for one parent: the parent and its children as JSON objects (as the API
/// server returns them), and whether the parent is being deleted.
pub struct Observation(bindings::Observed);

impl Observation {
    pub fn new(parent: String, children: Vec<String>, finalizing: bool) -> Self {
        Self(bindings::observed(parent, children, finalizing))
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
}

impl Decision {
    /// Bytes of JSON the guest returned, children and status together.
    pub fn json_bytes(&self) -> usize {
        self.children.iter().map(String::len).sum::<usize>()
            + self.status.as_ref().map_or(0, String::len)
    }
}
