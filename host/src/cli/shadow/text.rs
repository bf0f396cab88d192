//! The shadow report for people: per guest, its candidate and counts, then each parent it
//! diverges or fails on, with the children and fields that differ.

use std::fmt::Write as _;

use serde_json::Value;

/// Whether any guest's candidate diverges or fails on a parent.
pub fn any_disagreement(report: &Value) -> bool {
    guests(report).any(|(_, candidate)| {
        let counts = &candidate["counts"];
        counts["diverge"].as_u64().unwrap_or(0) + counts["fail"].as_u64().unwrap_or(0) > 0
    })
}

fn guests(report: &Value) -> impl Iterator<Item = (&String, &Value)> {
    report["guests"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, candidate)| !candidate.is_null())
}

/// The report as text.
pub fn text(report: &Value) -> String {
    let mut out = String::new();
    let all = report["guests"].as_object();
    if all.is_none_or(|all| all.values().all(Value::is_null)) {
        out.push_str("no shadow candidate: put NAME.candidate.wasm beside a guest's NAME.wasm\n");
    }
    for (guest, candidate) in guests(report) {
        let code = &candidate["candidate"];
        let counts = &candidate["counts"];
        let _ = writeln!(
            out,
            "guest {guest}: candidate {} {} ({}): {} agree, {} diverge, {} fail",
            str_of(&code["name"]),
            str_of(&code["version"]),
            str_of(&code["digest"]),
            counts["agree"],
            counts["diverge"],
            counts["fail"],
        );
        for parent in candidate["parents"].as_array().into_iter().flatten() {
            write_parent(&mut out, parent);
        }
        let more = candidate["not_detailed"].as_u64().unwrap_or(0);
        if more > 0 {
            let _ = writeln!(out, "  … and {more} more parents not kept in detail");
        }
    }
    out
}

fn write_parent(out: &mut String, parent: &Value) {
    let key = str_of(&parent["parent"]);
    match parent["verdict"].as_str() {
        Some("fails") => {
            let _ = writeln!(out, "  ! {key}: fails: {}", str_of(&parent["reason"]));
        }
        _ => {
            let _ = writeln!(out, "  ~ {key}");
            if let Some(reason) = parent["active_fails"].as_str() {
                let _ = writeln!(out, "      succeeds where the active guest fails: {reason}");
            }
            for child in parent["children"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "      {} {}",
                    str_of(&child["change"]),
                    str_of(&child["child"])
                );
                write_fields(out, &child["fields"], "        ");
            }
            if let Some(more) = parent["more_children"].as_u64() {
                let _ = writeln!(out, "      … and {more} more children");
            }
            if parent["status"].is_array() {
                let _ = writeln!(out, "      status");
                write_fields(out, &parent["status"], "        ");
            }
        }
    }
}

fn write_fields(out: &mut String, fields: &Value, indent: &str) {
    for field in fields.as_array().into_iter().flatten() {
        let value = |v: &Value| {
            if v.is_null() {
                "(none)".to_owned()
            } else {
                v.to_string()
            }
        };
        let _ = writeln!(
            out,
            "{indent}{}: {} → {}",
            str_of(&field["path"]),
            value(&field["before"]),
            value(&field["after"])
        );
    }
}

fn str_of(value: &Value) -> &str {
    value.as_str().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn diverging_parents_are_shown_field_by_field_and_agreement_is_exit_zero() {
        let report = json!({ "guests": {
            "potatohead": {
                "candidate": { "name": "potatohead", "version": "0.2.0", "digest": "sha256:ab" },
                "counts": { "agree": 1, "diverge": 1, "fail": 0 },
                "parents": [{
                    "parent": "ns/ph", "generation": 2, "verdict": "diverges",
                    "children": [{ "child": "Deployment ph-hat", "change": "changes",
                        "fields": [{ "path": "spec.replicas", "before": 1, "after": 2 }] }]
                }],
                "not_detailed": 0
            },
            "other": null
        }});
        let text = text(&report);
        assert!(
            text.contains("guest potatohead: candidate potatohead 0.2.0 (sha256:ab): 1 agree, 1 diverge, 0 fail"),
            "{text}"
        );
        assert!(
            text.contains(
                "  ~ ns/ph\n      changes Deployment ph-hat\n        spec.replicas: 1 → 2\n"
            ),
            "{text}"
        );
        assert!(any_disagreement(&report));
        let agreeing = json!({ "guests": { "potatohead": {
            "candidate": {}, "counts": { "agree": 3, "diverge": 0, "fail": 0 }, "parents": []
        }}});
        assert!(!any_disagreement(&agreeing));
        assert!(super::text(&json!({ "guests": {} })).starts_with("no shadow candidate"));
    }
}
