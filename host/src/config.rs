//! The settings the process runs with: what `cli/` fills from the flags (and their environment
//! variables) once they are validated, and what the runtime below it reads. Nothing below the
//! command line parses a flag or imports `cli/`.

use std::path::PathBuf;
use std::time::Duration;

use crate::guests::HostRules;
use crate::leader::ElectionSettings;
use crate::reconcile::placement::ProtectedNamespaces;
use crate::sandbox::CompileCacheConfig;

/// Where the host's guests come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestSource {
    /// One guest file (`--guest`) and its configuration (`--guest-config`, compact JSON).
    File {
        path: PathBuf,
        config: Option<String>,
    },
    /// A folder of guests (`--guests`).
    Folder(PathBuf),
}

/// Validated settings of `run`.
#[derive(Clone, Debug)]
pub struct RunSettings {
    pub guests: GuestSource,
    pub namespace: Option<String>,
    /// Where no cluster-scoped parent's child may be written.
    pub protected_namespaces: ProtectedNamespaces,
    pub field_manager: String,
    /// What the flags allow every guest: limits, kinds, file size.
    pub rules: HostRules,
    /// Bytes all guest calls running at once may use together.
    pub guest_memory_budget_bytes: usize,
    pub resync: Duration,
    pub concurrency: u16,
    /// Parents of a guest in flight at once in the sweep after its hot swap.
    pub swap_concurrency: u16,
    pub guest_poll_interval: Duration,
    pub metrics_bind_address: std::net::SocketAddr,
    pub pod_name: Option<String>,
    pub allow_parent_kind_change: bool,
    /// `None`: no compile cache.
    pub compile_cache: Option<CompileCacheConfig>,
    /// Write a perf map of JIT-compiled guest code (`--guest-perf-map`).
    pub guest_perf_map: bool,
    /// `None`: no leader election, this process reconciles.
    pub leader_election: Option<ElectionSettings>,
    /// When a swapped-in guest is rolled back by itself.
    pub rollback: crate::reconcile::rollback::RollbackRule,
}
