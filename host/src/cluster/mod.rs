//! Reading the API server: discovery of kinds, and the watches and caches the reconciles read
//! instead of asking the server (children by controlling parent, unmanaged names, writes not yet
//! seen).
//!
//! One set of caches serves every parent kind (`parent_kinds.rs`): children are indexed by their
//! controller's UID, whatever its kind. Beside them, the caches of related objects that guests
//! read (`related/`), with the reverse index from each object to its readers. Never imports `sandbox/` or `reconcile/`: what the caches
//! hold is Kubernetes objects, whoever decides about them.

mod child_cache;
mod child_watch;
pub mod kinds;
mod name_waiters;
pub mod ownership;
mod parent_kinds;
mod pending;
pub mod related;
mod relist;
mod unmanaged;
mod watch_scope;

pub use child_cache::{ChildCaches, ObservedChild};
pub use kinds::{DiscoveryError, ResolvedKind, display_gvk};
pub use ownership::{Holder, MANAGED_BY_LABEL, ObjectName, ParentRef, ResourceName, object_name};
pub use related::RelatedCaches;
pub use watch_scope::WatchScope;
