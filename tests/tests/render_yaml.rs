//! `reconciler-host render` prints YAML that means the same to kubectl as to the host: strings a
//! YAML 1.1 reader (kubectl 1.20's go-yaml) would take for booleans, octal or floating-point
//! numbers stay strings through a render and a `kubectl apply`.

use std::process::Command;

use e2e::deploy::kubectl;
use e2e::paths::{host_binary, potatohead_guest};
use e2e::sample_potatohead;
use serde_json::{Value, json};

/// Values YAML 1.1 reads as something else when unquoted: booleans, an octal, a float, null.
const TRICKY: [&str; 7] = ["on", "yes", "No", "0755", "1e3", "~", "2026-12-01"];

#[tokio::test(flavor = "multi_thread")]
async fn strings_that_look_like_other_types_stay_strings_through_render_and_kubectl_apply() {
    let (plane, _, namespace) = e2e::scenario::namespace("render-yaml").await;

    let mut parent = serde_json::to_value(sample_potatohead(&namespace, "yaml")).unwrap();
    parent["spec"]["parts"][1]["env"] = TRICKY
        .iter()
        .enumerate()
        .map(|(n, value)| json!({ "name": format!("V{n}"), "value": value }))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let parent_file = dir.path().join("parent.json");
    std::fs::write(&parent_file, parent.to_string()).unwrap();
    let render = Command::new(host_binary())
        .arg("render")
        .arg("--guest")
        .arg(potatohead_guest())
        .arg("--parent")
        .arg(&parent_file)
        .output()
        .unwrap();
    assert!(
        render.status.success(),
        "{}",
        String::from_utf8_lossy(&render.stderr)
    );
    let rendered = String::from_utf8(render.stdout).unwrap();

    // The children as printed (the parent's document carries a status and no real UID).
    let children: String = rendered
        .split("---\n")
        .filter(|doc| !doc.trim().is_empty() && !doc.lines().any(|l| l == "kind: PotatoHead"))
        .map(|doc| format!("---\n{doc}"))
        .collect();
    let children_file = dir.path().join("children.yaml");
    std::fs::write(&children_file, &children).unwrap();
    let applied = Command::new(kubectl())
        .arg(format!("--kubeconfig={}", plane.kubeconfig.display()))
        .args(["apply", "--dry-run=server", "-o", "json", "-f"])
        .arg(&children_file)
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "kubectl apply: {}\n{children}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let objects: Value = serde_json::from_slice(&applied.stdout).unwrap();
    let hat = objects["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "yaml-hat")
        .expect("the hat's Deployment");
    let env = hat["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    for (n, value) in TRICKY.iter().enumerate() {
        let found = env
            .iter()
            .find(|e| e["name"] == format!("V{n}"))
            .unwrap_or_else(|| panic!("V{n} missing: {env:?}"));
        assert_eq!(
            found["value"],
            Value::String(value.to_string()),
            "{children}"
        );
    }
}
