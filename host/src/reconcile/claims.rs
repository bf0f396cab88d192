//! Names this host is about to create, so that two parents reconciled at the same time that want
//! the same child name end with one owner. The take-over rule reads the caches, which show a
//! child only once the watch delivers it: two concurrent reconciles both saw the name free, both
//! applied, and the second silently took the first's child (its owner reference flipped).
//!
//! # Guarantees
//! - A parent claims every name it will create, all or none, under one lock; a name claimed by
//!   another parent within [`CLAIM_TTL`] is refused to it. By then the claimant's write has
//!   reached the caches, which answer from then on.
//! - Memory is bounded by the names claimed in the last [`CLAIM_TTL`]: stale claims are dropped
//!   on every call.
//!
//! `cluster/name_waiters.rs` is the other half: a parent refused a name (held by another parent
//! or by someone else) waits for it, and is reconciled as soon as the watch sees that object
//! deleted, instead of at its next backoff retry (up to five minutes later).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::cluster::ResourceName;

/// How long a claim holds without the caches confirming it: well beyond an apply's round trip
/// and the watch event that follows it.
pub const CLAIM_TTL: Duration = Duration::from_secs(60);

struct Claim {
    parent_uid: String,
    at: Instant,
}

/// The claims of one host.
#[derive(Default)]
pub struct NameClaims {
    by_name: Mutex<HashMap<ResourceName, Claim>>,
}

impl NameClaims {
    /// Claims every one of `names` for `parent_uid`, or none of them.
    ///
    /// # Errors
    /// The first name another parent claimed within [`CLAIM_TTL`], with that parent's UID.
    pub fn claim_all(
        &self,
        names: &[ResourceName],
        parent_uid: &str,
    ) -> Result<(), (ResourceName, String)> {
        self.claim_all_at(names, parent_uid, Instant::now())
    }

    fn claim_all_at(
        &self,
        names: &[ResourceName],
        parent_uid: &str,
        now: Instant,
    ) -> Result<(), (ResourceName, String)> {
        let mut claims = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        claims.retain(|_, claim| now.duration_since(claim.at) < CLAIM_TTL);
        for name in names {
            if let Some(claim) = claims.get(name)
                && claim.parent_uid != parent_uid
            {
                return Err((name.clone(), claim.parent_uid.clone()));
            }
        }
        for name in names {
            claims.insert(
                name.clone(),
                Claim {
                    parent_uid: parent_uid.to_string(),
                    at: now,
                },
            );
        }
        Ok(())
    }

    /// Claims held now (for tests of the bound).
    pub fn len(&self) -> usize {
        self.by_name
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no claim is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ownership::fixtures::config_map_name as name;

    #[test]
    fn the_first_parent_to_claim_a_name_keeps_it() {
        let claims = NameClaims::default();
        let now = Instant::now();
        assert!(claims.claim_all_at(&[name("x")], "a", now).is_ok());
        assert_eq!(
            claims.claim_all_at(&[name("x")], "b", now),
            Err((name("x"), "a".to_string()))
        );
        assert!(
            claims.claim_all_at(&[name("x")], "a", now).is_ok(),
            "the owner again"
        );
    }

    #[test]
    fn claims_are_all_or_nothing() {
        let claims = NameClaims::default();
        let now = Instant::now();
        claims.claim_all_at(&[name("y")], "b", now).unwrap();
        assert!(
            claims
                .claim_all_at(&[name("x"), name("y")], "a", now)
                .is_err()
        );
        assert!(
            claims.claim_all_at(&[name("x")], "b", now).is_ok(),
            "a's failed claim left x free"
        );
    }

    #[test]
    fn claims_expire() {
        let claims = NameClaims::default();
        let now = Instant::now();
        claims.claim_all_at(&[name("x")], "a", now).unwrap();
        let later = now + CLAIM_TTL + Duration::from_secs(1);
        assert!(claims.claim_all_at(&[name("x")], "b", later).is_ok());
        claims
            .claim_all_at(&[], "c", later + CLAIM_TTL + Duration::from_secs(1))
            .unwrap();
        assert!(claims.is_empty());
    }
}
