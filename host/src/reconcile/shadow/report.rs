//! What one shadow candidate decided so far, parent by parent: a verdict per parent (bounded by
//! the parents that exist, which the host holds anyway), the details of at most
//! [`MAX_DETAILED`] diverging or failing parents, and at most one announcement (a log line and an
//! Event) per parent, [`MAX_ANNOUNCED`] in all: a candidate that diverges everywhere costs a
//! bounded report and a bounded number of Events, however many parents and reconciles there are.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use serde_json::{Value, json};

use crate::metrics::ShadowVerdict;

use super::compare::Verdict;

/// Most parents whose divergence or failure is kept in detail.
pub const MAX_DETAILED: usize = 50;
/// Most parents announced (log line and Event) per candidate.
pub const MAX_ANNOUNCED: usize = 100;

/// Parents by verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub agree: usize,
    pub diverge: usize,
    pub fail: usize,
}

impl Counts {
    pub fn of(&self, verdict: ShadowVerdict) -> usize {
        match verdict {
            ShadowVerdict::Agree => self.agree,
            ShadowVerdict::Diverge => self.diverge,
            ShadowVerdict::Fail => self.fail,
        }
    }

    fn slot(&mut self, verdict: ShadowVerdict) -> &mut usize {
        match verdict {
            ShadowVerdict::Agree => &mut self.agree,
            ShadowVerdict::Diverge => &mut self.diverge,
            ShadowVerdict::Fail => &mut self.fail,
        }
    }
}

/// What recording a verdict changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Recorded {
    pub counts: Counts,
    /// Whether this parent is to be announced now: its first divergence or failure, within
    /// [`MAX_ANNOUNCED`].
    pub announce: bool,
}

/// One candidate's verdicts.
#[derive(Debug, Default)]
pub struct ShadowReport {
    /// The last verdict per parent UID.
    verdicts: HashMap<String, ShadowVerdict>,
    counts: Counts,
    /// Diverging or failing parents in detail, by `namespace/name`: (UID, generation, verdict).
    detailed: BTreeMap<String, (String, i64, Verdict)>,
    /// Diverging or failing parents not kept in detail (the report is full).
    undetailed: HashSet<String>,
    announced: HashSet<String>,
}

impl ShadowReport {
    /// Records `verdict` for the parent of UID `uid`, `key` (`namespace/name`) at `generation`.
    pub fn record(&mut self, uid: &str, key: &str, generation: i64, verdict: Verdict) -> Recorded {
        let label = verdict.label();
        if let Some(previous) = self.verdicts.insert(uid.to_owned(), label) {
            *self.counts.slot(previous) -= 1;
        }
        *self.counts.slot(label) += 1;
        let announce = if label == ShadowVerdict::Agree {
            self.detailed.remove(key);
            self.undetailed.remove(uid);
            false
        } else {
            if self.detailed.contains_key(key) || self.detailed.len() < MAX_DETAILED {
                self.detailed
                    .insert(key.to_owned(), (uid.to_owned(), generation, verdict));
            } else {
                self.undetailed.insert(uid.to_owned());
            }
            self.announced.len() < MAX_ANNOUNCED && self.announced.insert(uid.to_owned())
        };
        Recorded {
            counts: self.counts,
            announce,
        }
    }

    /// Forgets a parent that is gone; the counts that remain.
    pub fn forget(&mut self, uid: &str) -> Counts {
        if let Some(previous) = self.verdicts.remove(uid) {
            *self.counts.slot(previous) -= 1;
        }
        self.detailed.retain(|_, (of, _, _)| of != uid);
        self.undetailed.remove(uid);
        self.counts
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The report as JSON: the counts and the parents kept in detail.
    pub fn to_json(&self) -> Value {
        let parents: Vec<Value> = self
            .detailed
            .iter()
            .map(|(key, (_, generation, verdict))| {
                let mut entry = serde_json::to_value(verdict).unwrap_or(Value::Null);
                entry["parent"] = json!(key);
                entry["generation"] = json!(generation);
                entry
            })
            .collect();
        json!({
            "counts": self.counts,
            "parents": parents,
            "not_detailed": self.undetailed.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::shadow::compare::Divergence;

    fn diverges() -> Verdict {
        Verdict::Diverges(Divergence::default())
    }

    #[test]
    fn each_parent_counts_once_with_its_last_verdict() {
        let mut report = ShadowReport::default();
        report.record("u1", "ns/a", 1, Verdict::Agrees);
        report.record("u2", "ns/b", 1, diverges());
        let recorded = report.record("u2", "ns/b", 2, Verdict::Agrees);
        assert_eq!(
            recorded.counts,
            Counts {
                agree: 2,
                diverge: 0,
                fail: 0
            }
        );
        assert_eq!(report.to_json()["parents"], json!([]));
        assert_eq!(report.forget("u1").agree, 1);
    }

    #[test]
    fn a_parent_is_announced_once() {
        let mut report = ShadowReport::default();
        assert!(report.record("u", "ns/a", 1, diverges()).announce);
        assert!(!report.record("u", "ns/a", 2, diverges()).announce);
        let failing = Verdict::Fails {
            reason: "trap".into(),
        };
        assert!(!report.record("u", "ns/a", 3, failing).announce);
        assert_eq!(report.to_json()["parents"][0]["verdict"], "fails");
        assert_eq!(report.to_json()["parents"][0]["generation"], 3);
    }

    // Attack: a candidate that diverges on 10 000 parents must not keep 10 000 details or
    // publish 10 000 Events.
    #[test]
    fn details_and_announcements_are_bounded() {
        let mut report = ShadowReport::default();
        let announced = (0..10_000)
            .filter(|i| {
                report
                    .record(&format!("u{i}"), &format!("ns/p{i}"), 1, diverges())
                    .announce
            })
            .count();
        assert_eq!(announced, MAX_ANNOUNCED);
        let json = report.to_json();
        assert_eq!(json["parents"].as_array().unwrap().len(), MAX_DETAILED);
        assert_eq!(json["not_detailed"], 10_000 - MAX_DETAILED);
        assert_eq!(report.counts().diverge, 10_000);
    }
}
