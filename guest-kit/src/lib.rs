//! What this workspace's Rust guests share, so each guest holds only its own decisions:
//! - [`status`]: the parts of a status the host completes (`conditions`, `reconciler`), typed as
//!   the CRDs declare them;
//! - [`observed`]: reading the observed children the host hands over, and when a Deployment
//!   counts as ready;
//! - [`component`]: the component glue (WIT bindings, export, the contract's types), so a guest
//!   is a [`component::Reconciler`] and one [`export_guest!`] call.

pub mod component;
pub mod observed;
pub mod status;
