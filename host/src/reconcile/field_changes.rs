//! The field-level difference between two objects, as a list of fields with their values before
//! and after. The differences are found by the `json-patch` crate (a JSON Patch, RFC 6902); each
//! operation of the patch is one field changed.

use serde::Serialize;
use serde_json::Value;

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// How people write the field: `spec.template.spec.containers[0].image`,
    /// `metadata.labels["app.kubernetes.io/name"]`.
    pub path: String,
    /// Its value before; `None`: absent.
    pub before: Option<Value>,
    /// Its value after; `None`: removed.
    pub after: Option<Value>,
}

/// The changes from `before` to `after`, in the order of the patch that makes one into the
/// other; empty when they are equal.
pub fn changes(before: &Value, after: &Value) -> Vec<FieldChange> {
    let patch = json_patch::diff(before, after);
    let mut working = before.clone();
    let mut changes = Vec::with_capacity(patch.0.len());
    for operation in patch.0 {
        let text = serde_json::to_value(&operation).expect("a patch operation serializes");
        let pointer = text["path"].as_str().unwrap_or_default().to_owned();
        // Each operation's path is into the document as the operations before it left it (an
        // array shrinks as its elements are removed), so the value before is read from there.
        let was = working.pointer(&pointer).cloned();
        let path = readable(&working, &pointer);
        if json_patch::patch(&mut working, std::slice::from_ref(&operation)).is_err() {
            // `diff` makes a patch that applies; should it not, the change is still shown.
            changes.push(FieldChange {
                path,
                before: was,
                after: text.get("value").cloned(),
            });
            continue;
        }
        let now = working.pointer(&pointer).cloned();
        changes.push(FieldChange {
            path,
            before: was,
            after: now,
        });
    }
    changes
}

/// `pointer` (`/spec/containers/0/image`) as people write paths, reading `document` to tell an
/// array index from a map key made of digits.
fn readable(document: &Value, pointer: &str) -> String {
    let mut path = String::new();
    let mut at = Some(document);
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        match at {
            Some(Value::Array(items)) => {
                path.push_str(&format!("[{token}]"));
                at = token.parse::<usize>().ok().and_then(|i| items.get(i));
            }
            _ => {
                let plain = !token.is_empty()
                    && token
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if plain {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&token);
                } else {
                    path.push_str(&format!("[{}]", Value::String(token.clone())));
                }
                at = at.and_then(|value| value.get(&token));
            }
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_changed_image_is_one_change_with_both_values() {
        let before = json!({ "spec": { "containers": [{ "name": "a", "image": "x:1" }] } });
        let after = json!({ "spec": { "containers": [{ "name": "a", "image": "x:2" }] } });
        assert_eq!(
            changes(&before, &after),
            vec![FieldChange {
                path: "spec.containers[0].image".into(),
                before: Some(json!("x:1")),
                after: Some(json!("x:2")),
            }]
        );
        assert!(changes(&before, &before).is_empty());
    }

    #[test]
    fn keys_with_dots_or_slashes_are_quoted_and_additions_and_removals_have_one_side() {
        let before = json!({ "metadata": { "labels": { "app.kubernetes.io/name": "a" } } });
        let after = json!({ "metadata": { "annotations": { "k": "v" }, "labels": {} } });
        let found = changes(&before, &after);
        assert!(found.contains(&FieldChange {
            path: r#"metadata.labels["app.kubernetes.io/name"]"#.into(),
            before: Some(json!("a")),
            after: None,
        }));
        assert!(found.contains(&FieldChange {
            path: "metadata.annotations".into(),
            before: None,
            after: Some(json!({ "k": "v" })),
        }));
    }

    #[test]
    fn removing_array_elements_reads_each_value_where_it_was() {
        let before = json!({ "ports": [1, 2, 3] });
        let after = json!({ "ports": [1] });
        let removed: Vec<Option<Value>> = changes(&before, &after)
            .into_iter()
            .map(|c| c.before)
            .collect();
        assert_eq!(removed.len(), 2);
        assert!(removed.contains(&Some(json!(2))) && removed.contains(&Some(json!(3))));
    }
}
