//! Refuses, before anything is written, a guest whose output does not settle: one child to be
//! written with new content again and again while the parent did not change (a timestamp or a
//! random value in the output). Without this the parent stayed Ready while the host wrote
//! without end.

use std::time::Instant;

use super::apply::Write;
use super::error::Failure;
use super::parent_state::{ParentRecord, UNSETTLED_WINDOW};

/// Records the writes this reconcile is about to send and refuses them when they do not settle.
///
/// # Errors
/// [`Failure::Unsettled`], naming the child.
pub fn check(record: &ParentRecord<'_>, writes: &[Write<'_>]) -> Result<(), Failure> {
    let sending: Vec<(String, String)> = writes
        .iter()
        .filter(|w| w.send)
        .map(|w| (w.child.to_text(), w.child.digest.clone()))
        .collect();
    let Some((child, contents)) = record.record_writes(&sending, Instant::now()) else {
        return Ok(());
    };
    Err(Failure::Unsettled(format!(
        "the guest's output does not settle: {child} was to be written with {contents} \
         different contents within {}s while the parent did not change (a timestamp or a \
         random value in the output?); retrying with backoff",
        UNSETTLED_WINDOW.as_secs()
    )))
}
