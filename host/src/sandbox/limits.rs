//! What one guest call may use ([`GuestLimits`]), and the resource limiter that holds a store to
//! it.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// The guest limits a flag or a guest's settings file may set.
pub const GUEST_TIMEOUT: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_secs(3600);
pub const GUEST_MEMORY_MIB: std::ops::RangeInclusive<usize> = 1..=4096;
pub const GUEST_MAX_OUTPUT_MIB: std::ops::RangeInclusive<usize> = 1..=1024;
pub const GUEST_MAX_OBJECT_KIB: std::ops::RangeInclusive<usize> = 1..=(1024 << 10);
pub const GUEST_MAX_RELATED_OBJECTS: std::ops::RangeInclusive<usize> = 1..=100_000;
pub const GUEST_MAX_RELATED_KIB: std::ops::RangeInclusive<usize> = 1..=(1024 << 10);

/// Per-call limits of a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestLimits {
    /// Wall time one call may take.
    pub timeout: Duration,
    /// Largest linear memory a guest instance may have.
    pub max_memory_bytes: usize,
    /// Most children one reconcile may return.
    pub max_children: usize,
    /// Most bytes of JSON (children and status together) one reconcile may return.
    pub max_output_bytes: usize,
    /// Most bytes of JSON one child, or the status, may be. Checked before anything is parsed:
    /// the API server refuses objects over about 1.5 MiB anyway (etcd's request limit), and a
    /// 15 MB status parsed, checked and serialised took a host from 68 MB to 1 GB resident.
    pub max_object_bytes: usize,
    /// Most related objects one reconcile is given (contract 0.2 `requirements`).
    pub max_related_objects: usize,
    /// Most bytes of JSON of related objects one reconcile is given.
    pub max_related_bytes: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            max_memory_bytes: 64 << 20,
            max_children: 1000,
            max_output_bytes: 16 << 20,
            max_object_bytes: 1 << 20,
            max_related_objects: 256,
            max_related_bytes: 4 << 20,
        }
    }
}

/// Most table elements (function references) a guest may have; far above what compilers emit.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The per-call resource limiter: caps each linear memory and table, and remembers whether a
/// memory growth was refused so the failure can be reported as what it is.
pub(super) struct CallLimits {
    pub max_memory_bytes: usize,
    pub memory_denied: bool,
}

impl CallLimits {
    pub fn new(max_memory_bytes: usize) -> Self {
        Self {
            max_memory_bytes,
            memory_denied: false,
        }
    }
}

impl ResourceLimiter for CallLimits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.memory_denied = true;
            // Trapping (rather than letting memory.grow return -1) stops the guest at once,
            // instead of leaving it to an allocator's abort path.
            return Err(wasmtime::Error::msg(format!(
                "memory limit: growing to {desired} bytes exceeds {} bytes",
                self.max_memory_bytes
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
