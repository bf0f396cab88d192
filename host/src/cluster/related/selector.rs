//! Kubernetes' label-selector text (`app=web,tier in (db,cache),!legacy`), parsed into kube's
//! [`Selector`] so that cached objects can be matched against it.
//!
//! Hand-rolled because kube-core matches selectors but parses only the structured
//! `LabelSelector`, not the text form a guest returns (which the API server would parse, but the
//! host matches from its caches without asking it). The grammar is the one of
//! `k8s.io/apimachinery/pkg/labels`: comma-separated requirements, each `key`, `!key`,
//! `key=value`, `key==value`, `key!=value`, `key in (v1,v2)` or `key notin (v1,v2)`. Keys and
//! values are checked only for the characters labels may hold; the API server's length rules
//! do not matter for matching.

use std::collections::BTreeSet;

use kube::core::{Expression, Selector};

/// Longest selector text accepted.
const MAX_SELECTOR_BYTES: usize = 4096;

/// Parses `text`; an empty text selects everything.
///
/// # Errors
/// What is wrong, for the guest's author.
pub fn parse(text: &str) -> Result<Selector, String> {
    if text.len() > MAX_SELECTOR_BYTES {
        return Err(format!(
            "label selector of {} bytes, at most {MAX_SELECTOR_BYTES} allowed",
            text.len()
        ));
    }
    let mut expressions = Vec::new();
    for requirement in split_requirements(text)? {
        let requirement = requirement.trim();
        if requirement.is_empty() {
            if text.trim().is_empty() {
                continue;
            }
            return Err(format!("label selector {text:?} has an empty requirement"));
        }
        expressions
            .push(expression(requirement).map_err(|e| format!("label selector {text:?}: {e}"))?);
    }
    Ok(expressions.into_iter().collect())
}

/// Splits at the commas outside parentheses.
fn split_requirements(text: &str) -> Result<Vec<&str>, String> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    format!("label selector {text:?} closes a `)` it never opened")
                })?;
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("label selector {text:?} leaves a `(` open"));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn expression(requirement: &str) -> Result<Expression, String> {
    if let Some(key) = requirement.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(key_of(key.trim())?));
    }
    if let Some((key, value)) = requirement.split_once("!=") {
        return Ok(Expression::NotEqual(
            key_of(key.trim())?,
            value_of(value.trim())?,
        ));
    }
    if let Some((key, value)) = requirement
        .split_once("==")
        .or_else(|| requirement.split_once('='))
    {
        return Ok(Expression::Equal(
            key_of(key.trim())?,
            value_of(value.trim())?,
        ));
    }
    let mut words = requirement.splitn(2, char::is_whitespace);
    let key = key_of(words.next().unwrap_or_default())?;
    let Some(rest) = words.next().map(str::trim) else {
        return Ok(Expression::Exists(key));
    };
    let (operator, set) = rest
        .split_once(|c: char| c.is_whitespace() || c == '(')
        .map(|(operator, _)| (operator, &rest[operator.len()..]))
        .ok_or_else(|| {
            format!("{requirement:?}: expected `in (…)` or `notin (…)` after the key")
        })?;
    let values = set_of(set.trim(), requirement)?;
    match operator {
        "in" => Ok(Expression::In(key, values)),
        "notin" => Ok(Expression::NotIn(key, values)),
        other => Err(format!(
            "{requirement:?}: unknown operator {other:?}; use =, ==, !=, in, notin, or a key alone"
        )),
    }
}

fn set_of(set: &str, requirement: &str) -> Result<BTreeSet<String>, String> {
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("{requirement:?}: expected a set of values in parentheses"))?;
    let values: BTreeSet<String> = inner
        .split(',')
        .map(|value| value_of(value.trim()))
        .collect::<Result<_, _>>()?;
    if values.is_empty() || inner.trim().is_empty() {
        return Err(format!("{requirement:?}: the set of values is empty"));
    }
    Ok(values)
}

fn key_of(key: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
    if key.is_empty() || !key.chars().all(allowed) {
        return Err(format!("{key:?} is not a label key"));
    }
    Ok(key.to_owned())
}

fn value_of(value: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !value.chars().all(allowed) {
        return Err(format!("{value:?} is not a label value"));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::core::SelectorExt;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selects(selector: &str, pairs: &[(&str, &str)]) -> bool {
        parse(selector).unwrap().matches(&labels(pairs))
    }

    #[test]
    fn every_operator_matches_as_kubernetes_does() {
        let web = [("app", "web"), ("tier", "db")];
        assert!(selects("", &web));
        assert!(selects("app=web", &web));
        assert!(selects("app==web", &web));
        assert!(!selects("app!=web", &web));
        assert!(selects("app!=api", &[]), "!= holds when the key is absent");
        assert!(selects("tier in (db, cache)", &web));
        assert!(!selects("tier notin (db,cache)", &web));
        assert!(selects("app", &web));
        assert!(!selects("!app", &web));
        assert!(selects("app=web, tier in (db,cache), !legacy", &web));
        assert!(!selects("app=web,legacy", &web));
        assert!(selects("example.com/team=a", &[("example.com/team", "a")]));
    }

    #[test]
    fn malformed_selectors_say_what_is_wrong() {
        for (text, expected) in [
            ("app=web,", "has an empty requirement"),
            ("tier in (db", "leaves a `(` open"),
            ("tier in db)", "closes a `)` it never opened"),
            ("tier in ()", "the set of values is empty"),
            ("tier among (a)", "unknown operator \"among\""),
            ("a b=c", "is not a label key"),
            ("app=we b", "is not a label value"),
            ("tier in db", "expected a set of values in parentheses"),
        ] {
            let message = parse(text).unwrap_err();
            assert!(message.contains(expected), "{text}: {message}");
        }
        assert!(
            parse(&"a".repeat(5000))
                .unwrap_err()
                .contains("at most 4096")
        );
    }
}
