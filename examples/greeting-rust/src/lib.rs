//! The Greeting guest of `docs/writing-a-guest.md`: for each recipient of a Greeting, a
//! ConfigMap holding the greeting. The same resource and decisions as `examples/greeting-js`.
//!
//! The decisions are plain functions with native unit tests; at the bottom, `guest-kit` names
//! them to the contract (`Reconciler` and one `export_guest!` call).

use guest_kit::component::{Desired, Manifest, Observed, ReconcileError, Reconciler, kind};
use serde_json::{Value, json};

/// What the guest wants for one Greeting.
#[derive(Debug, PartialEq)]
pub struct Decision {
    pub children: Vec<Value>,
    pub status: Value,
}

/// Decides the children and status of `greeting`, given the children the host observed.
///
/// # Errors
/// The reason the spec is invalid, naming the field.
pub fn decide(greeting: &Value, observed: &[Value]) -> Result<Decision, String> {
    let spec = &greeting["spec"];
    let message = spec["message"]
        .as_str()
        .filter(|m| !m.trim().is_empty())
        .ok_or("spec.message: must be a non-empty string")?;
    if message.chars().count() > 200 {
        return Err(format!(
            "spec.message: at most 200 characters, not {}",
            message.chars().count()
        ));
    }
    let mut recipients: Vec<&str> = Vec::new();
    for (i, recipient) in spec["recipients"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let recipient = recipient
            .as_str()
            .filter(|r| is_dns_label(r) && r.len() <= 40)
            .ok_or_else(|| {
                format!(
                    "spec.recipients[{i}]: {recipient} is not a lowercase DNS label of at most 40 characters"
                )
            })?;
        if recipients.contains(&recipient) {
            return Err(format!("spec.recipients[{i}]: {recipient} is listed twice"));
        }
        recipients.push(recipient);
    }
    let name = greeting["metadata"]["name"].as_str().unwrap_or_default();
    let children = recipients
        .iter()
        .map(|recipient| {
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": format!("{name}-{recipient}"),
                    "labels": {
                        "app.kubernetes.io/name": "greeting",
                        "app.kubernetes.io/instance": name,
                    },
                },
                "data": { "recipient": recipient, "message": format!("{message}, {recipient}!") },
            })
        })
        .collect();
    let delivered = observed
        .iter()
        .filter(|child| {
            child["data"]["recipient"]
                .as_str()
                .is_some_and(|r| recipients.contains(&r))
        })
        .count();
    Ok(Decision {
        children,
        status: json!({
            "recipients": recipients.len(),
            "delivered": delivered,
            "observedGeneration": greeting["metadata"]["generation"],
        }),
    })
}

fn is_dns_label(text: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    edge(text.chars().next())
        && edge(text.chars().last())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The guest: [`decide`] over the contract's types.
pub struct Greeting;

impl Reconciler for Greeting {
    fn describe() -> Manifest {
        Manifest::new(
            "greeting-rust",
            env!("CARGO_PKG_VERSION"),
            kind("examples.wasm-reconciler.io", "v1alpha1", "Greeting"),
        )
        .with_children([kind("", "v1", "ConfigMap")])
    }

    fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
        let parse = |text: &str| serde_json::from_str(text).unwrap_or_default();
        let children: Vec<_> = observed.children.iter().map(|c| parse(c)).collect();
        let decision =
            decide(&parse(&observed.parent), &children).map_err(ReconcileError::InvalidSpec)?;
        Ok(Desired {
            children: decision.children.iter().map(Value::to_string).collect(),
            status: Some(decision.status.to_string()),
            requeue_after_ms: None,
            events: Vec::new(),
        })
    }
}

guest_kit::export_guest!(Greeting);

#[cfg(test)]
mod tests {
    use super::*;

    fn greeting(spec: Value) -> Value {
        json!({ "metadata": { "name": "hello", "generation": 3 }, "spec": spec })
    }

    #[test]
    fn one_config_map_per_recipient() {
        let decision = decide(
            &greeting(json!({ "message": "Hi", "recipients": ["alice", "bob"] })),
            &[],
        )
        .unwrap();
        assert_eq!(decision.children.len(), 2);
        assert_eq!(decision.children[1]["metadata"]["name"], "hello-bob");
        assert_eq!(decision.children[1]["data"]["message"], "Hi, bob!");
        assert_eq!(decision.status["recipients"], 2);
        assert_eq!(decision.status["delivered"], 0);
    }

    #[test]
    fn invalid_specs_name_the_field() {
        let reason = |spec| decide(&greeting(spec), &[]).unwrap_err();
        assert!(reason(json!({ "message": "" })).starts_with("spec.message"));
        assert_eq!(
            reason(json!({ "message": "Hi", "recipients": ["a", "a"] })),
            "spec.recipients[1]: a is listed twice"
        );
        assert!(
            reason(json!({ "message": "Hi", "recipients": ["Bob"] }))
                .starts_with("spec.recipients[0]")
        );
    }
}
