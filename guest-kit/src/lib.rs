//! What this workspace's Rust guests share, so each guest holds only its own decisions:
//! - [`status`]: the parts of a status the host completes (`conditions`, `reconciler`), typed as
//!   the CRDs declare them;
//! - [`observed`]: reading the observed children the host hands over, and when a Deployment
//!   counts as ready.
//!
//! A plain library (no component glue), so a guest links only what it uses.

pub mod observed;
pub mod status;
