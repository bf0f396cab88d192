//! How a diff is printed: text for people (only the parents that would change, as `kubectl diff`
//! prints only what differs), or one JSON document for tools; a summary line on stderr.

use serde::Serialize;
use serde_json::Value;

use super::compare::{Action, ChildChange, ParentDiff, Verdict};
use crate::reconcile::field_changes::FieldChange;

/// Counts of a diff's parents.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub parents: usize,
    /// Parents whose children or status would change.
    pub differ: usize,
    /// Parents for which the reconcile would fail.
    pub failed: usize,
}

impl Summary {
    pub fn of(diffs: &[ParentDiff]) -> Self {
        let failed = diffs
            .iter()
            .filter(|d| matches!(d.outcome, Verdict::Failed { .. }))
            .count();
        Self {
            parents: diffs.len(),
            differ: diffs.iter().filter(|d| d.differs()).count() - failed,
            failed,
        }
    }

    /// `200 parents: 3 would change, 1 would fail, 196 unchanged`.
    pub fn to_text(&self) -> String {
        format!(
            "{} parents: {} would change, {} would fail, {} unchanged",
            self.parents,
            self.differ,
            self.failed,
            self.parents - self.differ - self.failed
        )
    }
}

/// The text report of the parents that differ, `kind` naming the parents' kind.
pub fn text(kind: &str, diffs: &[ParentDiff]) -> String {
    let mut out = String::new();
    for diff in diffs.iter().filter(|d| d.differs()) {
        match &diff.outcome {
            Verdict::Failed { reason } => {
                out.push_str(&format!("! {kind} {}: would fail: {reason}\n", diff.parent));
            }
            Verdict::Decided {
                children,
                status,
                finalizing,
                ..
            } => {
                let deleting = if *finalizing { " (being deleted)" } else { "" };
                out.push_str(&format!("~ {kind} {}{deleting}\n", diff.parent));
                for child in children {
                    child_text(&mut out, child);
                }
                if !status.is_empty() {
                    out.push_str("  ~ status\n");
                    fields_text(&mut out, status);
                }
            }
        }
    }
    out
}

fn child_text(out: &mut String, child: &ChildChange) {
    let sign = match child.action {
        Action::Create => '+',
        Action::Change => '~',
        Action::Prune => '-',
    };
    let at = if child.namespace.is_empty() {
        child.name.clone()
    } else {
        format!("{}/{}", child.namespace, child.name)
    };
    out.push_str(&format!("  {sign} {} {at}\n", child.kind));
    fields_text(out, &child.fields);
    if let Some(object) = &child.object {
        let yaml = serde_saphyr::to_string(object).expect("JSON values serialize to YAML");
        for line in yaml.lines() {
            out.push_str(&format!("      + {line}\n"));
        }
    }
}

fn fields_text(out: &mut String, fields: &[FieldChange]) {
    let show = |value: &Option<Value>| match value {
        Some(value) => value.to_string(),
        None => "(none)".into(),
    };
    for field in fields {
        out.push_str(&format!(
            "      {}: {} -> {}\n",
            field.path,
            show(&field.before),
            show(&field.after)
        ));
    }
}

/// The JSON report: every parent, including those that would not change, and the summary.
pub fn json(kind: &str, guest: &str, diffs: &[ParentDiff]) -> String {
    #[derive(Serialize)]
    struct Report<'a> {
        kind: &'a str,
        guest: &'a str,
        summary: Summary,
        parents: &'a [ParentDiff],
    }
    serde_json::to_string_pretty(&Report {
        kind,
        guest,
        summary: Summary::of(diffs),
        parents: diffs,
    })
    .expect("a diff serializes")
}
