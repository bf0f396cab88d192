//! Host tests that load the real default guest `.wasm` (built by `make guest`) and call it with
//! fixtures, without a cluster.

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use reconciler_host::sandbox::{
    Contract, GuestEngine, GuestError, GuestLimits, LoadError, Observation,
};
use serde_json::{Value, json};

fn default_guest_path() -> PathBuf {
    common::built_guest("guest_potatohead")
}

fn engine() -> Arc<GuestEngine> {
    GuestEngine::new(None).expect("engine builds")
}

fn sample_parent(spec: Value) -> String {
    json!({
        "apiVersion": "podtato.example.com/v1alpha1",
        "kind": "PotatoHead",
        "metadata": { "name": "demo", "namespace": "default", "uid": "u-1", "generation": 1 },
        "spec": spec,
    })
    .to_string()
}

fn observed(spec: Value) -> Observation {
    Observation::new(sample_parent(spec), vec![], false)
}

fn all_parts() -> Value {
    json!({ "tag": "0.3.0", "parts": [
        {"name": "entry"}, {"name": "hat"}, {"name": "left-arm"},
        {"name": "right-arm"}, {"name": "left-leg"}, {"name": "right-leg"}
    ]})
}

#[test]
fn default_guest_describes_potatohead_and_its_child_kinds() {
    let guest = engine()
        .load_path(&default_guest_path(), GuestLimits::default())
        .unwrap();
    let manifest = guest.manifest();
    assert_eq!(manifest.name, "potatohead");
    assert_eq!(
        (
            manifest.parent.group.as_str(),
            manifest.parent.version.as_str(),
            manifest.parent.kind.as_str()
        ),
        ("podtato.example.com", "v1alpha1", "PotatoHead")
    );
    let kinds: Vec<&str> = manifest.children.iter().map(|g| g.kind.as_str()).collect();
    assert_eq!(kinds, ["Deployment", "Service", "ConfigMap"]);
    assert!(guest.digest().starts_with("sha256:"));
}

#[test]
fn default_guest_renders_thirteen_children_for_the_sample() {
    let guest = engine()
        .load_path(&default_guest_path(), GuestLimits::default())
        .unwrap();
    let desired = guest
        .reconcile(&observed(all_parts()), "default/demo")
        .unwrap();
    assert_eq!(desired.children.len(), 13);
    let children: Vec<Value> = desired
        .children
        .iter()
        .map(|c| serde_json::from_str(c).unwrap())
        .collect();
    let hat = children
        .iter()
        .find(|c| c["kind"] == "Deployment" && c["metadata"]["name"] == "demo-hat")
        .unwrap();
    assert_eq!(
        hat["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/podtato-head/hat:0.3.0"
    );
    let status: Value = serde_json::from_str(desired.status.as_deref().unwrap()).unwrap();
    assert_eq!(status["summary"], "0/6");
}

#[test]
fn default_guest_rejects_an_invalid_spec_naming_the_field() {
    let guest = engine()
        .load_path(&default_guest_path(), GuestLimits::default())
        .unwrap();
    let spec = json!({ "parts": [{"name": "hat", "replicas": -1}] });
    match guest.reconcile(&observed(spec), "default/demo") {
        Err(GuestError::InvalidSpec(reason)) => {
            assert!(reason.starts_with("spec.parts[0].replicas"), "{reason}")
        }
        other => panic!("expected an invalid-spec error, got {other:?}"),
    }
}

#[test]
fn a_store_that_trapped_is_never_reused() {
    // wasmtime refuses to enter an instance again after a trap, so calls after a trap only
    // succeed if each one gets a fresh store.
    let guest = engine()
        .load_path(
            &common::built_guest("hostile_guest"),
            GuestLimits::default(),
        )
        .unwrap();
    let with_attack = |attack: &str| {
        Observation::new(
            json!({ "metadata": { "name": "p", "annotations": { "hostile.example.com/attack": attack } } }).to_string(),
            vec![],
            false,
        )
    };
    for _ in 0..3 {
        let trapped = guest.reconcile(&with_attack("panic"), "ns/p");
        assert!(matches!(trapped, Err(GuestError::Trap(_))), "{trapped:?}");
        let next = guest.reconcile(&with_attack("none"), "ns/p").unwrap();
        assert_eq!(next.children.len(), 1);
    }
}

#[test]
fn a_missing_guest_file_is_a_clear_read_error() {
    let err = engine()
        .load_path("/nonexistent/guest.wasm".as_ref(), GuestLimits::default())
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::Read { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/guest.wasm"), "{err}");
}

#[test]
fn garbage_bytes_are_refused_as_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.wasm");
    std::fs::write(&path, b"this is not wasm at all").unwrap();
    let err = engine()
        .load_path(&path, GuestLimits::default())
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::NotWasm { .. }), "{err}");
}

#[test]
fn a_truncated_component_is_refused_as_not_compilable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("truncated.wasm");
    let bytes = std::fs::read(default_guest_path()).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = engine()
        .load_path(&path, GuestLimits::default())
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::Compile { .. }), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
}

#[test]
fn a_core_module_is_refused_with_a_hint_to_build_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core.wasm");
    std::fs::write(&path, wat::parse_str("(module)").unwrap()).unwrap();
    let err = engine()
        .load_path(&path, GuestLimits::default())
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err}");
}

#[test]
fn a_component_for_another_wit_version_is_refused_as_incompatible() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.wasm");
    std::fs::write(&path, common::future_wit_component()).unwrap();
    let err = engine()
        .load_path(&path, GuestLimits::default())
        .err()
        .unwrap();
    assert!(matches!(err, LoadError::Incompatible { .. }), "{err}");
    let message = reconciler_host::error_text::error_chain(&err);
    assert!(
        message.contains(
            "implements wasm-reconciler:reconciler@0.2.0 and wasm-reconciler:reconciler@0.1.0"
        ),
        "{message}"
    );
    assert!(
        message.contains("no exported instance named `wasm-reconciler:reconciler/guest@0.2.0`"),
        "{message}"
    );
}

/// The promise of the contract's compatibility section: a guest built against 0.1.0, before 0.2
/// existed, runs unchanged, byte for byte, and decides what it always decided.
#[test]
fn a_contract_0_1_build_kept_byte_for_byte_decides_as_the_current_default_guest() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/contract-0.1.0/guest_potatohead.wasm");
    let old = engine()
        .load_path(&fixture, GuestLimits::default())
        .unwrap();
    let current = engine()
        .load_path(&default_guest_path(), GuestLimits::default())
        .unwrap();
    assert_eq!(old.contract(), Contract::V0_1);
    assert_eq!(old.manifest().contract, Contract::V0_1);
    assert_eq!(current.contract(), Contract::V0_2);
    assert_eq!(old.manifest().children, current.manifest().children);
    for spec in [
        all_parts(),
        json!({ "tag": "0.3.0", "parts": [{"name": "hat"}] }),
    ] {
        let before = old.reconcile(&observed(spec.clone()), "demo").unwrap();
        let now = current.reconcile(&observed(spec), "demo").unwrap();
        assert!(!before.children.is_empty());
        assert_eq!(before.children, now.children);
        assert_eq!(before.status, now.status);
        assert_eq!(before.requeue_after, now.requeue_after);
    }
    let invalid = json!({ "tag": "0.3.0", "parts": [{"name": "tail"}] });
    let refused = old.reconcile(&observed(invalid), "demo").unwrap_err();
    assert!(matches!(refused, GuestError::InvalidSpec(_)), "{refused}");
}

/// Contract 0.2's configuration: the guest checks it at load (refusing it with its own message)
/// and every reconcile is given the one it accepted.
#[test]
fn the_default_guest_takes_a_registry_from_its_configuration_and_refuses_a_bad_one() {
    let file = reconciler_host::sandbox::GuestFile::read(&default_guest_path()).unwrap();
    let engine = engine();
    let mirror = engine
        .load_configured(
            &file,
            GuestLimits::default(),
            r#"{"registry":"mirror.example.com/podtato"}"#,
        )
        .unwrap();
    let decision = mirror.reconcile(&observed(all_parts()), "demo").unwrap();
    let images: Vec<String> = decision
        .children
        .iter()
        .map(|child| serde_json::from_str::<Value>(child).unwrap())
        .filter(|child| child["kind"] == "Deployment")
        .map(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].to_string())
        .collect();
    assert_eq!(images.len(), 6);
    assert!(
        images
            .iter()
            .all(|image| image.starts_with("\"mirror.example.com/podtato/")),
        "{images:?}"
    );

    let refused = engine
        .load_configured(&file, GuestLimits::default(), r#"{"registry":"x.io/"}"#)
        .err()
        .expect("a trailing / is refused");
    let message = refused.to_string();
    assert!(matches!(refused, LoadError::Config { .. }), "{message}");
    assert!(
        message.contains("refused its configuration: config.registry: \"x.io/\" ends with `/`"),
        "{message}"
    );

    // A 0.1 guest cannot take a configuration; it is refused rather than silently ignoring it.
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/contract-0.1.0/guest_potatohead.wasm");
    let old = reconciler_host::sandbox::GuestFile::read(&fixture).unwrap();
    let refused = engine
        .load_configured(&old, GuestLimits::default(), r#"{"registry":"x.io"}"#)
        .err()
        .expect("0.1 takes no configuration");
    assert!(
        refused
            .to_string()
            .contains("speaks contract 0.1.0, which takes no configuration"),
        "{refused}"
    );
}
