//! Property test: 10 000 random PotatoHead specs, most of them wrong in some way, through the
//! real guest `.wasm` in-process (fresh store per call, as in production). Whatever the spec, no
//! trap or timeout escapes: the guest either renders children the API server would accept
//! (names, ports, replicas in range) or returns an invalid-spec error naming the wrong field.

mod common;

use std::sync::OnceLock;

use proptest::prelude::*;
use reconciler_host::sandbox::{GuestEngine, GuestError, GuestLimits, LoadedGuest, Observation};
use serde_json::{Value, json};

fn guest() -> &'static LoadedGuest {
    static GUEST: OnceLock<LoadedGuest> = OnceLock::new();
    GUEST.get_or_init(|| {
        let path = common::built_guest("guest_potatohead");
        let engine = GuestEngine::new(None).expect("engine builds");
        engine
            .load_path(&path, GuestLimits::default())
            .unwrap_or_else(|e| panic!("{}: {e} (run `make guest`)", path.display()))
    })
}

fn part_name() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => prop::sample::select(vec!["entry", "hat", "left-arm", "right-arm", "left-leg", "right-leg"]).prop_map(Value::from),
        1 => "[a-z-]{0,12}".prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
    ]
}

fn env_var() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        6 => "[A-Z_][A-Z0-9_]{0,10}",
        1 => Just("PODTATO_PORT".to_string()),
        1 => ".{0,8}",
    ];
    (name, ".{0,8}").prop_map(|(name, value)| json!({ "name": name, "value": value }))
}

fn part() -> impl Strategy<Value = Value> {
    (
        part_name(),
        prop::option::of(prop_oneof![".{0,20}", Just(String::new())]),
        prop::option::of(
            prop_oneof![4 => -3..10i64, 1 => any::<i32>().prop_map(i64::from), 1 => any::<i64>()],
        ),
        prop::option::of(prop::collection::vec(env_var(), 0..4)),
        prop::option::of(prop::sample::select(vec![
            "ClusterIP",
            "NodePort",
            "LoadBalancer",
            "Bogus",
        ])),
        prop::option::of(prop_oneof![
            4 => 1..65536i64,
            2 => prop::sample::select(vec![-1i64, 0, 65536, 100_000]),
            1 => any::<i32>().prop_map(i64::from),
            1 => any::<i64>(),
        ]),
    )
        .prop_map(|(name, image, replicas, env, service_type, port)| {
            let mut part = json!({ "name": name });
            let mut set = |key: &str, value: Option<Value>| {
                if let Some(value) = value {
                    part[key] = value;
                }
            };
            set("image", image.map(Value::from));
            set("replicas", replicas.map(Value::from));
            set("env", env.map(Value::from));
            set("serviceType", service_type.map(Value::from));
            set("port", port.map(Value::from));
            part
        })
}

fn parent() -> impl Strategy<Value = Value> {
    (
        prop_oneof![8 => "[a-z][a-z0-9-]{0,20}", 1 => "[0-9][a-z]{0,4}", 1 => "[a-z]{50,60}"],
        prop::option::of(prop_oneof!["[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,10}", ".{0,6}"]),
        prop::collection::vec(part(), 0..8),
        any::<bool>(),
    )
        .prop_map(|(name, tag, parts, with_spec)| {
            let mut spec = json!({ "parts": parts });
            if let Some(tag) = tag {
                spec["tag"] = Value::from(tag);
            }
            let mut parent = json!({ "apiVersion": "podtato.example.com/v1alpha1", "kind": "PotatoHead", "metadata": { "name": name } });
            if with_spec {
                parent["spec"] = spec;
            }
            parent
        })
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]

    #[test]
    fn any_spec_renders_valid_children_or_names_the_wrong_field(parent in parent()) {
        let observed = Observation::new(parent.to_string(), vec![], false);
        match guest().reconcile(&observed, "random/spec") {
            Ok(desired) => {
                for child in &desired.children {
                    let child: Value = serde_json::from_str(child).unwrap();
                    let name = child["metadata"]["name"].as_str().unwrap();
                    prop_assert!(is_dns_label(name), "child name {name:?}");
                    match child["kind"].as_str().unwrap() {
                        "Deployment" => {
                            prop_assert!(child["spec"]["replicas"].as_i64().unwrap() >= 0);
                            let image = child["spec"]["template"]["spec"]["containers"][0]["image"].as_str().unwrap();
                            prop_assert!(!image.trim().is_empty());
                        }
                        "Service" => {
                            let port = child["spec"]["ports"][0]["port"].as_i64().unwrap();
                            prop_assert!((1..=65535).contains(&port));
                        }
                        "ConfigMap" => {}
                        other => prop_assert!(false, "unexpected kind {other}"),
                    }
                }
            }
            Err(GuestError::InvalidSpec(reason)) => {
                prop_assert!(reason.starts_with("spec") || reason.starts_with("metadata.name"), "{reason}");
            }
            Err(other) => prop_assert!(false, "a failure escaped the guest: {other}"),
        }
    }
}
