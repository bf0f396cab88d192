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
//!
//! A guest is built against contract 0.2.0. With the feature `contract-0-1` (for the test guests
//! that prove 0.1 guests still run) it is built against the frozen 0.1.0 instead: what 0.1 lacks
//! (configuration, related objects, Events) is then neither asked for nor sent. Cargo unifies
//! features per build, so build 0.1 guests in a `cargo build` of their own.

/// What both versions' glue does alike: the bindings' types are the same in each WIT but distinct
/// Rust types per `generate!`, so each version module expands this once (with the version's
/// `GroupVersionKind` and `wit_log` in scope).
#[cfg(target_arch = "wasm32")]
macro_rules! shared_by_every_version {
    () => {
        fn gvk(kind: super::Kind) -> GroupVersionKind {
            GroupVersionKind {
                group: kind.group,
                version: kind.version,
                kind: kind.kind,
            }
        }

        pub fn log(level: super::Level, message: &str) {
            use super::Level;
            let level = match level {
                Level::Trace => wit_log::Level::Trace,
                Level::Debug => wit_log::Level::Debug,
                Level::Info => wit_log::Level::Info,
                Level::Warn => wit_log::Level::Warn,
                Level::Error => wit_log::Level::Error,
            };
            wit_log::log(level, message);
        }
    };
}

#[cfg(all(target_arch = "wasm32", not(feature = "contract-0-1")))]
#[doc(hidden)]
#[path = "wit.rs"]
pub mod wit;

#[cfg(all(target_arch = "wasm32", feature = "contract-0-1"))]
#[doc(hidden)]
#[path = "wit_v0_1.rs"]
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

/// What a guest is (WIT `manifest`): its name and version, the parent kind it reconciles, every
/// kind it may return as a child and every other kind it may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub parent: Kind,
    pub children: Vec<Kind>,
    pub related: Vec<Kind>,
}

impl Manifest {
    /// A guest with no child kinds yet; add them with [`Manifest::with_children`].
    pub fn new(name: &str, version: &str, parent: Kind) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            parent,
            children: Vec::new(),
            related: Vec::new(),
        }
    }

    pub fn with_children(mut self, children: impl IntoIterator<Item = Kind>) -> Self {
        self.children.extend(children);
        self
    }

    /// Kinds the guest may ask to read in [`Reconciler::requirements`].
    pub fn with_related(mut self, related: impl IntoIterator<Item = Kind>) -> Self {
        self.related.extend(related);
        self
    }
}

/// Which objects a [`Requirement`] selects (WIT `selection`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The objects with these names.
    Names(Vec<String>),
    /// Every object whose labels match this selector (`app=web,tier in (db,cache)`).
    LabelSelector(String),
}

/// A set of related objects a guest reads for one parent (WIT `requirement`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The guest's name for the set; [`Observed::related`] answers under it.
    pub key: String,
    pub kind: Kind,
    /// Where a namespaced kind is read: none for the parent's own namespace (or, for a
    /// cluster-scoped parent, every namespace).
    pub namespace: Option<String>,
    pub selection: Selection,
}

impl Requirement {
    /// The objects of `kind` named `names`, in the parent's namespace.
    pub fn names(key: &str, kind: Kind, names: impl IntoIterator<Item = String>) -> Self {
        Self {
            key: key.into(),
            kind,
            namespace: None,
            selection: Selection::Names(names.into_iter().collect()),
        }
    }
}

/// The objects one requirement selected (WIT `related-objects`): empty when none matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedObjects {
    pub key: String,
    pub objects: Vec<String>,
}

/// What the host observed (WIT `observed`): the parent and its controlled children as JSON text,
/// the related objects the guest asked for, and the guest's configuration (the second argument
/// of the WIT `reconcile`, JSON text, `null` when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub parent: String,
    pub children: Vec<String>,
    pub related: Vec<RelatedObjects>,
    pub config: String,
    pub finalizing: bool,
}

impl Observed {
    /// The objects of the requirement `key`: `None` when it was not asked for, empty when the
    /// host looked and found none.
    pub fn related(&self, key: &str) -> Option<&[String]> {
        self.related
            .iter()
            .find(|set| set.key == key)
            .map(|set| set.objects.as_slice())
    }
}

/// `Normal` or `Warning` (WIT `event-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// One of the guest's children, named by an [`Event`] (WIT `child-ref`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRef {
    pub kind: Kind,
    pub name: String,
    pub namespace: Option<String>,
}

/// An Event for the host to publish on the parent (WIT `event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_type: EventType,
    /// UpperCamelCase, at most 128 bytes.
    pub reason: String,
    /// For a person, at most 1024 bytes.
    pub message: String,
    pub about: Option<ChildRef>,
}

impl Event {
    pub fn normal(reason: &str, message: impl Into<String>) -> Self {
        Self {
            event_type: EventType::Normal,
            reason: reason.into(),
            message: message.into(),
            about: None,
        }
    }

    pub fn warning(reason: &str, message: impl Into<String>) -> Self {
        Self {
            event_type: EventType::Warning,
            ..Self::normal(reason, message)
        }
    }
}

/// What the guest wants (WIT `desired`): every child that should exist, the parent's new status
/// (none leaves it as it is), an optional early call-back and Events to publish.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub children: Vec<String>,
    pub status: Option<String>,
    pub requeue_after_ms: Option<u64>,
    pub events: Vec<Event>,
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

/// A guest's decisions, as the WIT interface `guest` asks for them. Only `describe` and
/// `reconcile` are required: by default a guest takes no configuration and reads nothing else.
pub trait Reconciler {
    /// Must be cheap and always give the same answer for the same guest file.
    fn describe() -> Manifest;

    /// Accepts or refuses the guest's configuration (JSON text, `null` when none); the error is
    /// shown to the admin. By default only `null` is accepted, so a configuration given to a
    /// guest that has none is refused instead of ignored.
    fn configure(config: &str) -> Result<(), String> {
        if config.trim() == "null" {
            Ok(())
        } else {
            Err("this guest takes no configuration; remove `config` from its settings".into())
        }
    }

    /// What else the guest reads for this parent (JSON text), given its configuration. Must be a
    /// function of the parent's name, namespace and spec. By default nothing.
    fn requirements(parent: &str, config: &str) -> Result<Vec<Requirement>, ReconcileError> {
        let _ = (parent, config);
        Ok(Vec::new())
    }

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
        $crate::__export_guest_wit!($guest);
    };
}
