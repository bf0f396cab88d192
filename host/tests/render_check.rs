//! `reconciler-host render` and `check` on the real guest `.wasm`: the guest author's offline
//! tools. A golden file catches unintended changes to what the default guest renders.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::built_guest;
use serde_json::Value;

fn host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_reconciler-host"))
        .args(args)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .expect("binary runs")
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn guest() -> String {
    built_guest("guest_potatohead").display().to_string()
}

fn sample() -> String {
    workspace()
        .join("deploy/samples/potatohead.yaml")
        .display()
        .to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Replaces what changes from run to run or build to build (condition times, the guest's
/// digest) so the golden file holds only what the guest decides.
fn normalized(yaml: &str) -> String {
    yaml.lines()
        .map(|line| {
            // Keys may follow a list item's `- `.
            let trimmed = line.trim_start().trim_start_matches("- ");
            let indent = &line[..line.len() - trimmed.len()];
            if trimmed.starts_with("lastTransitionTime:") {
                format!("{indent}lastTransitionTime: <now>")
            } else if trimmed.starts_with("digest: sha256:") {
                format!("{indent}digest: sha256:<guest digest>")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// `render` of the default guest for a parent given as YAML text.
fn render_parent_text(yaml: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("parent.yaml");
    std::fs::write(&parent, yaml).unwrap();
    host(&[
        "render",
        "--guest",
        &guest(),
        "--parent",
        parent.to_str().unwrap(),
    ])
}

fn documents(yaml: &str) -> Vec<Value> {
    let documents: Vec<Value> = serde_saphyr::from_str_multiple(yaml).unwrap();
    documents.into_iter().filter(|d| !d.is_null()).collect()
}

#[test]
fn render_prints_the_samples_13_children_and_status_as_in_the_golden_file() {
    let output = host(&["render", "--guest", &guest(), "--parent", &sample()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let yaml = text(&output.stdout);
    let objects = documents(&yaml);
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    let count = |kind: &str| kinds.iter().filter(|k| **k == kind).count();
    assert_eq!(
        (count("Deployment"), count("Service"), count("ConfigMap")),
        (6, 6, 1)
    );
    assert_eq!(objects.len(), 14, "13 children, then the parent's status");
    let parent = objects.last().unwrap();
    assert_eq!(parent["kind"], "PotatoHead");
    assert_eq!(parent["status"]["reconciler"]["name"], "potatohead");
    for child in &objects[..13] {
        assert_eq!(
            child["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "wasm-reconciler"
        );
        assert_eq!(child["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(child["metadata"]["namespace"], "default");
    }

    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/potatohead-sample.yaml");
    let rendered = normalized(&yaml);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &rendered).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    assert!(
        rendered == expected,
        "render output differs from {} (UPDATE_GOLDEN=1 cargo test -p reconciler-host --test \
         render_check rewrites it; review the diff):\n{rendered}",
        golden.display()
    );
}

#[test]
fn render_as_json_is_one_list_with_the_same_objects() {
    let output = host(&[
        "render",
        "--guest",
        &guest(),
        "--parent",
        &sample(),
        "-o",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 14);
}

#[test]
fn render_takes_observed_children_into_account() {
    // The guest's status counts ready parts from the observed Deployments: none observed, 0/6;
    // all six observed ready (given as a folder of files), 6/6.
    let rendered = host(&["render", "--guest", &guest(), "--parent", &sample()]);
    let dir = tempfile::tempdir().unwrap();
    for (n, mut child) in documents(&text(&rendered.stdout))
        .into_iter()
        .filter(|c| c["kind"] == "Deployment")
        .enumerate()
    {
        child["metadata"]["generation"] = 1.into();
        child["status"] = serde_json::json!({ "observedGeneration": 1, "readyReplicas": 1 });
        let file = dir.path().join(format!("deployment-{n}.yaml"));
        std::fs::write(file, serde_saphyr::to_string(&child).unwrap()).unwrap();
    }
    let folder = dir.path().display().to_string();
    for (extra, summary) in [
        (vec![], "0/6"),
        (vec!["--children", folder.as_str()], "6/6"),
    ] {
        let guest = guest();
        let sample = sample();
        let mut args = vec!["render", "--guest", &guest, "--parent", &sample];
        args.extend(extra);
        let output = host(&args);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let objects = documents(&text(&output.stdout));
        assert_eq!(
            objects.last().unwrap()["status"]["summary"],
            summary,
            "{args:?}"
        );
    }
}

#[test]
fn render_of_an_invalid_spec_prints_the_guests_reason_and_exits_1() {
    let output = render_parent_text(
        "apiVersion: podtato.example.com/v1alpha1\nkind: PotatoHead\nmetadata:\n  name: bad\nspec:\n  parts:\n  - name: hat\n    env:\n    - name: PODTATO_PORT\n      value: \"1\"\n",
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "nothing rendered");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("the guest rejected the spec")
            && stderr.contains("spec.parts[0].env[0].name"),
        "{stderr}"
    );
}

#[test]
fn render_of_another_kind_or_a_missing_file_is_an_input_error_exiting_2() {
    let output =
        render_parent_text("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n");
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("the parent is a Deployment.apps/v1, but the guest reconciles PotatoHead.podtato.example.com/v1alpha1"),
        "{stderr}"
    );
    let output = host(&[
        "render",
        "--guest",
        &guest(),
        "--parent",
        "/nonexistent.yaml",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("cannot read /nonexistent.yaml"));
}

#[test]
fn check_describes_the_default_guest() {
    let output = host(&["check", "--guest", &guest()]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for expected in [
        "guest:         potatohead 0.1.0",
        "WIT package:   wasm-reconciler:reconciler@0.2.0",
        "exports:       wasm-reconciler:reconciler/guest@0.2.0",
        "parent kind:   PotatoHead.podtato.example.com/v1alpha1",
        "child kinds:   Deployment.apps/v1, Service.v1, ConfigMap.v1",
        "related kinds: ConfigMap.v1",
        "compile time:",
        "verdict:       usable by this host",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing in:\n{stdout}"
        );
    }
}

#[test]
fn check_reports_every_guest_in_a_folder_and_refuses_a_second_guest_for_one_parent_kind() {
    let dir = tempfile::tempdir().unwrap();
    let copy = |from: &std::path::Path, name: &str| {
        std::fs::copy(from, dir.path().join(name)).unwrap();
    };
    copy(
        &common::built_guest("guest_potatohead"),
        "a-potatohead.wasm",
    );
    copy(
        &common::built_guest("guest_podtatohead"),
        "b-podtatohead.wasm",
    );
    std::fs::write(dir.path().join("notes.txt"), "not a guest").unwrap();
    let folder = dir.path().to_str().unwrap();
    let output = host(&["check", "--guest", folder]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    for expected in [
        "guest:         potatohead 0.1.0",
        "guest:         podtatohead 0.1.0",
        "parent kind:   PodTatoHead.crd.demo.com/v1alpha1",
        ": 2 guests, 2 usable",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing in:\n{stdout}"
        );
    }

    copy(
        &common::built_guest("guest_potatohead"),
        "c-potatohead-again.wasm",
    );
    std::fs::write(dir.path().join("d-garbage.wasm"), b"not wasm").unwrap();
    let output = host(&["check", "--guest", folder]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("verdict:       refused: it reconciles PotatoHead.podtato.example.com/v1alpha1, which the guest a-potatohead of this host already reconciles"),
        "{stdout}"
    );
    assert!(stdout.contains("is not a WebAssembly file"), "{stdout}");
    assert!(stdout.contains(": 4 guests, 2 usable"), "{stdout}");

    // A guest's settings file: limits shown, kinds it may not declare refused, bad keys named.
    std::fs::remove_file(dir.path().join("c-potatohead-again.wasm")).unwrap();
    std::fs::remove_file(dir.path().join("d-garbage.wasm")).unwrap();
    std::fs::write(
        dir.path().join("a-potatohead.yaml"),
        "timeout: 500ms\nallowed-child-kinds: [apps/v1/Deployment]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b-podtatohead.yaml"), "memory-mib: 32\n").unwrap();
    let output = host(&["check", "--guest", folder]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("settings:      timeout 500ms, memory 64 MiB")
            && stdout.contains("declares child kind Service.v1, which its settings ")
            && stdout.contains("a-potatohead.yaml does not allow (allowed: Deployment.apps/v1)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("settings:      timeout 2s, memory 32 MiB"),
        "{stdout}"
    );
    assert!(stdout.contains(": 2 guests, 1 usable"), "{stdout}");
    std::fs::write(dir.path().join("a-potatohead.yaml"), "timeout: soon\n").unwrap();
    let stdout = text(&host(&["check", "--guest", folder]).stdout);
    assert!(
        stdout.contains("a-potatohead.yaml: timeout: \"soon\" is not a duration"),
        "{stdout}"
    );
}

#[test]
fn check_refuses_garbage_and_a_component_for_another_wit_version() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"not wasm").unwrap();
    let output = host(&["check", "--guest", garbage.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).contains("unusable: ")
            && text(&output.stdout).contains("is not a WebAssembly file"),
        "{}",
        text(&output.stdout)
    );

    let future = dir.path().join("future.wasm");
    std::fs::write(&future, common::future_wit_component()).unwrap();
    let output = host(&["check", "--guest", future.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("exports:       wasm-reconciler:reconciler/guest@9.0.0")
            && stdout.contains(
                "not compatible with this host, which implements wasm-reconciler:reconciler@0.2.0 and wasm-reconciler:reconciler@0.1.0"
            ),
        "{stdout}"
    );
}

#[test]
fn the_greeting_decided_in_rust_and_in_javascript_renders_the_same() {
    let sample = workspace().join("examples/greeting-js/sample.yaml");
    let js = workspace().join("target/examples/greeting_js.wasm");
    assert!(
        js.exists(),
        "{} is missing: run `make example-guests`",
        js.display()
    );
    let render = |guest: &Path| {
        let output = host(&[
            "render",
            "--guest",
            guest.to_str().unwrap(),
            "--parent",
            sample.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let mut objects = documents(&text(&output.stdout));
        let mut parent = objects.pop().unwrap();
        let stamp = parent["status"]
            .as_object_mut()
            .unwrap()
            .remove("reconciler")
            .unwrap();
        (objects, parent, stamp["name"].clone())
    };
    let (rust_children, rust_parent, rust_name) = render(&built_guest("greeting_rust_guest"));
    let (js_children, js_parent, js_name) = render(&js);
    assert_eq!(
        (rust_name.as_str(), js_name.as_str()),
        (Some("greeting-rust"), Some("greeting-js"))
    );
    assert_eq!(rust_children.len(), 2);
    assert_eq!(rust_children, js_children);
    let strip_times = |mut parent: Value| {
        for condition in parent["status"]["conditions"].as_array_mut().unwrap() {
            condition
                .as_object_mut()
                .unwrap()
                .remove("lastTransitionTime");
        }
        parent
    };
    assert_eq!(strip_times(rust_parent), strip_times(js_parent));
}

#[test]
fn the_guest_built_with_cargo_component_renders_like_the_wasip2_build() {
    let component = workspace().join("target/wasm32-wasip1/release/guest_potatohead.wasm");
    assert!(
        component.exists(),
        "{} is missing: run `make guest-component`",
        component.display()
    );
    let check = host(&["check", "--guest", component.to_str().unwrap()]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));
    let render = |guest: &str| {
        let output = host(&["render", "--guest", guest, "--parent", &sample()]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        normalized(&text(&output.stdout))
    };
    assert_eq!(render(component.to_str().unwrap()), render(&guest()));
}

#[test]
fn a_cluster_scoped_parent_renders_with_cluster_scoped_and_is_refused_without() {
    let dir = tempfile::tempdir().unwrap();
    let parent = dir.path().join("tenant.yaml");
    std::fs::write(
        &parent,
        "apiVersion: examples.wasm-reconciler.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: team-a\nspec:\n  admins: [alice]\n",
    )
    .unwrap();
    let guest = built_guest("tenant_guest").display().to_string();
    let render = |extra: &[&str]| {
        let args = [
            &[
                "render",
                "--guest",
                &guest,
                "--parent",
                parent.to_str().unwrap(),
                "-o",
                "json",
            ][..],
            extra,
        ]
        .concat();
        host(&args)
    };
    let output = render(&["--cluster-scoped"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let placed: Vec<(String, Value)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] != "Tenant")
        .map(|o| {
            (
                o["kind"].as_str().unwrap().to_string(),
                o["metadata"]["namespace"].clone(),
            )
        })
        .collect();
    assert_eq!(
        placed,
        [
            ("Namespace".to_string(), Value::Null),
            ("ResourceQuota".to_string(), Value::from("team-a")),
            ("RoleBinding".to_string(), Value::from("team-a")),
        ]
    );
    // As a namespaced parent it could own neither a Namespace nor objects elsewhere.
    let output = render(&[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("is cluster-scoped"),
        "{}",
        text(&output.stderr)
    );
}
