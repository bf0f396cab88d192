//! Catching a guest whose requirements are not a function of its parent (they name the clock, a
//! random number, a counter). The host asks a guest's requirements once per parent generation and
//! keeps the answer, so such a guest cannot make the host churn, but it would read something
//! other than what its parent says and be reconciled for changes of the wrong objects.
//!
//! Asking twice on every reconcile would double the cost of reading related objects. Instead the
//! first [`PROBES`] parents a guest (one file and configuration) is asked about are asked twice,
//! and the answers compared. A difference marks the guest: from then on every reconcile of its
//! parents that reads related objects fails as an unsettled output (`OutputUnsettled`, retried
//! with backoff, nothing decided, applied or pruned) until the guest is replaced. The cost is
//! [`PROBES`] extra calls per guest loaded, whatever the number of parents.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Parents whose requirements are asked twice, per guest loaded.
pub const PROBES: u32 = 8;

/// One active guest's probes, and its verdict once one of them disagreed.
pub struct RequirementsProbe {
    left: AtomicU32,
    verdict: OnceLock<String>,
}

impl Default for RequirementsProbe {
    fn default() -> Self {
        Self {
            left: AtomicU32::new(PROBES),
            verdict: OnceLock::new(),
        }
    }
}

impl RequirementsProbe {
    /// Why this guest's requirements cannot be used, once a probe disagreed.
    pub fn verdict(&self) -> Option<&str> {
        self.verdict.get().map(String::as_str)
    }

    /// Whether the requirements being asked should be asked twice (a probe is left; taken).
    pub fn take(&self) -> bool {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                left.checked_sub(1)
            })
            .is_ok()
    }

    /// Records that two calls for `parent` disagreed and returns the verdict (the first one
    /// recorded, if two parents disagree at once).
    pub fn disagreed(&self, parent: &str) -> &str {
        self.verdict.get_or_init(|| {
            format!(
                "the guest's requirements for {parent} differed between two calls: they must be \
                 a function of the parent's name, namespace and spec and of the configuration \
                 (not of the clock or a random number); nothing is decided until the guest is \
                 replaced"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_is_probed_a_bounded_number_of_times_and_keeps_its_first_verdict() {
        let probe = RequirementsProbe::default();
        let taken = (0..PROBES * 3).filter(|_| probe.take()).count();
        assert_eq!(taken, PROBES as usize);
        assert_eq!(probe.verdict(), None);
        let first = probe.disagreed("ns/a").to_string();
        assert!(first.contains("ns/a"));
        probe.disagreed("ns/b");
        assert_eq!(probe.verdict(), Some(first.as_str()));
    }
}
