//! The component glue every Rust guest of this workspace would otherwise repeat: the WIT
//! bindings, the export, and plain Rust types for what crosses the contract. A guest implements
//! [`Reconciler`] and calls [`export_guest!`](crate::export_guest) once:
//!
//! ```ignore
//! use guest_kit::component::{Desired, Manifest, Observed, ReconcileError, Reconciler, kind};
//!
//! struct Echo;
//!
//! impl Reconciler for Echo {
//!     fn describe() -> Manifest {
//!         Manifest::new("echo", "0.1.0", kind("", "v1", "ConfigMap"))
//!             .with_children([kind("", "v1", "ServiceAccount")])
//!     }
//!
//!     fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
//!         Ok(Desired::children(vec![/* JSON text of each child */]))
//!     }
//! }
//!
//! guest_kit::export_guest!(Echo);
//! ```
//!
//! The types mirror the records of `wit/reconciler.wit` field for field (the WIT comments are the
//! reference for what each means); only the WebAssembly build links the bindings, so natively a
//! guest is a plain library whose `reconcile` its unit tests call directly.

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wit;

/// A kind of Kubernetes object (WIT `group-version-kind`); `group` is empty for the core group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// `kind("apps", "v1", "Deployment")`: the short way to name a [`Kind`].
pub fn kind(group: &str, version: &str, kind: &str) -> Kind {
    Kind {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
    }
}

/// What a guest is (WIT `manifest`): its name and version, the parent kind it reconciles and
/// every kind it may return as a child.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub parent: Kind,
    pub children: Vec<Kind>,
}

impl Manifest {
    /// A guest with no child kinds yet; add them with [`Manifest::with_children`].
    pub fn new(name: &str, version: &str, parent: Kind) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            parent,
            children: Vec::new(),
        }
    }

    pub fn with_children(mut self, children: impl IntoIterator<Item = Kind>) -> Self {
        self.children.extend(children);
        self
    }
}

/// What the host observed (WIT `observed`): the parent and its controlled children as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub parent: String,
    pub children: Vec<String>,
    pub finalizing: bool,
}

/// What the guest wants (WIT `desired`): every child that should exist, the parent's new status
/// (none leaves it as it is) and an optional early call-back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub children: Vec<String>,
    pub status: Option<String>,
    pub requeue_after_ms: Option<u64>,
}

impl Desired {
    /// These children, the status left as it is, no early call-back.
    pub fn children(children: Vec<String>) -> Self {
        Self {
            children,
            ..Self::default()
        }
    }
}

/// Why a guest could not decide (WIT `reconcile-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileError {
    /// The parent's spec is wrong; the message names the field. Not retried until it changes.
    InvalidSpec(String),
    /// Something temporary went wrong; the host retries with backoff.
    Transient(String),
}

/// A guest's two decisions, as the WIT interface `guest` asks for them.
pub trait Reconciler {
    /// Must be cheap and always give the same answer for the same guest file.
    fn describe() -> Manifest;
    /// Must be a pure function of `observed`: each call runs in a fresh instance.
    fn reconcile(observed: Observed) -> Result<Desired, ReconcileError>;
}

/// Severity of a guest's log message (WIT `log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Writes one message to the host's log, which names the guest and the parent beside it.
/// In a native build (a guest's unit tests) it goes to standard error.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    wit::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{level:?}: {message}");
}

/// Exports a [`Reconciler`] as the guest of this component. Call it once, in the crate that
/// builds the `.wasm` (its `cdylib`); a library that other guests depend on must not call it,
/// or the two exports clash. Natively it expands to nothing.
#[macro_export]
macro_rules! export_guest {
    ($guest:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct Component;

            impl $crate::component::wit::bindings::exports::wasm_reconciler::reconciler::guest::Guest
                for Component
            {
                fn describe() -> $crate::component::wit::bindings::exports::wasm_reconciler::reconciler::guest::Manifest {
                    $crate::component::wit::describe::<$guest>()
                }

                fn reconcile(
                    observed: $crate::component::wit::bindings::exports::wasm_reconciler::reconciler::guest::Observed,
                ) -> ::core::result::Result<
                    $crate::component::wit::bindings::exports::wasm_reconciler::reconciler::guest::Desired,
                    $crate::component::wit::bindings::exports::wasm_reconciler::reconciler::guest::ReconcileError,
                > {
                    $crate::component::wit::reconcile::<$guest>(observed)
                }
            }

            $crate::component::wit::bindings::export_reconciler!(Component);
        };
    };
}
