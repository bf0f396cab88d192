//! End to end: `reconciler-host diff` against a real kube-apiserver, over 200 PotatoHeads a host
//! reconciled and then stopped. It reports exactly the parents whose children or status would
//! change (children created, changed field by field, pruned) and the ones the guest fails on, with
//! `kubectl diff`'s exit codes, and writes nothing: the API server's counters of writes to the
//! kinds involved do not move during a diff, and only the children the planning step cannot
//! rule out are sent as dry runs.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use e2e::paths::{host_binary, potatohead_guest, workspace_root};
use e2e::{Scenario, create_sample_potatohead, eventually, potatohead_api, shared_plane};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

const PARENTS: usize = 200;

/// What `reconciler-host diff` printed and how it ended.
struct DiffRun {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `reconciler-host diff <args…>` as the plane's admin.
fn diff(kubeconfig: &std::path::Path, args: &[&str]) -> DiffRun {
    let output = Command::new(host_binary())
        .arg("diff")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("RUST_LOG")
        .output()
        .expect("reconciler-host diff runs");
    DiffRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The API server's count of requests to the kinds a diff could write (PotatoHeads, their
/// children, Events) that change something, `(persisted, dry runs)`.
async fn write_requests(client: &kube::Client) -> (u64, u64) {
    e2e::api_writes::write_requests(
        client,
        &[
            "potatoheads",
            "deployments",
            "services",
            "configmaps",
            "events",
        ],
    )
    .await
}

fn name(i: usize) -> String {
    format!("ph-{i:03}")
}

/// The parents of a JSON report, by name.
fn by_parent(report: &Value) -> BTreeMap<String, Value> {
    report["parents"]
        .as_array()
        .expect("parents")
        .iter()
        .map(|p| {
            let key = p["parent"].as_str().unwrap();
            (key.rsplit('/').next().unwrap().to_owned(), p.clone())
        })
        .collect()
}

/// `(action, kind, name)` of every child change of one parent.
fn actions(parent: &Value) -> Vec<(String, String, String)> {
    parent["children"]
        .as_array()
        .map(|all| {
            all.iter()
                .map(|c| {
                    let text = |f: &str| c[f].as_str().unwrap_or_default().to_owned();
                    (text("action"), text("kind"), text("name"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_reports_what_would_change_on_200_parents_and_writes_nothing() {
    let mut scenario = Scenario::start("diff", &potatohead_guest(), &[]).await;
    let (client, namespace) = (scenario.client.clone(), scenario.namespace.clone());
    let kubeconfig = scenario.plane.kubeconfig.clone();
    for i in 0..PARENTS {
        create_sample_potatohead(&client, &namespace, &name(i)).await;
    }
    let parents = potatohead_api(&client, &namespace);
    eventually(
        Duration::from_secs(240),
        "every PotatoHead is reconciled",
        || async {
            let list = parents
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let ready = list
                .items
                .iter()
                // Reconciled: the status written for this generation (the parts' Pods never run
                // here, so Ready stays False).
                .filter(|p| {
                    p.data["status"]["observedGeneration"] == 1
                        && p.data["status"]["reconciler"]["digest"].is_string()
                })
                .count();
            (ready == PARENTS)
                .then_some(())
                .ok_or(format!("{ready}/{PARENTS} reconciled"))
        },
    )
    .await;
    scenario.host.terminate(Duration::from_secs(20));
    let guest = potatohead_guest().display().to_string();
    let ns = ["--guest", guest.as_str(), "--namespace", namespace.as_str()];

    // The guest that made them: nothing differs, and no child needed a dry run to tell.
    let before = write_requests(&client).await;
    let same = diff(&kubeconfig, &ns);
    assert_eq!(same.code, 0, "no difference: exit 0\n{}", same.stderr);
    assert_eq!(same.stdout, "", "nothing printed when nothing differs");
    assert!(
        same.stderr
            .contains(&format!("{PARENTS} parents: 0 would change, 0 would fail")),
        "{}",
        same.stderr
    );
    assert_eq!(
        write_requests(&client).await,
        before,
        "a diff of unchanged parents sends no write and no dry run"
    );

    // A tag changed, a part removed, a child deleted, an image the guest refuses: each as its own parent.
    let merge = |spec: Value| Patch::Merge(json!({ "spec": spec }));
    let patch = PatchParams::default();
    parents
        .patch(&name(1), &patch, &merge(json!({ "tag": "0.4.0" })))
        .await
        .unwrap();
    let five_parts = json!([{ "name": "entry" }, { "name": "hat" }, { "name": "left-arm" },
        { "name": "right-arm" }, { "name": "left-leg" }]);
    parents
        .patch(&name(2), &patch, &merge(json!({ "parts": five_parts })))
        .await
        .unwrap();
    Api::<Service>::namespaced(client.clone(), &namespace)
        .delete(&format!("{}-hat", name(3)), &DeleteParams::default())
        .await
        .unwrap();
    let spaced = json!([{ "name": "hat", "image": "example.org/hat 1" }]);
    parents
        .patch(&name(4), &patch, &merge(json!({ "parts": spaced })))
        .await
        .unwrap();
    parents
        .patch(
            &name(1),
            &patch,
            &Patch::Merge(json!({ "metadata": { "labels": { "diff": "me" } } })),
        )
        .await
        .unwrap();

    let before = write_requests(&client).await;
    let report = diff(&kubeconfig, &[&ns[..], &["-o", "json"]].concat());
    assert_eq!(report.code, 1, "differences: exit 1\n{}", report.stderr);
    let report: Value = serde_json::from_str(&report.stdout).expect("one JSON document");
    assert_eq!(
        report["summary"],
        json!({ "parents": PARENTS, "differ": 3, "failed": 1 })
    );
    let found = by_parent(&report);
    assert_eq!(found.len(), PARENTS, "every parent is in the JSON report");

    let tag_changed = &found[&name(1)];
    let changed: Vec<_> = actions(tag_changed);
    assert_eq!(changed.len(), 6, "the six Deployments: {changed:?}");
    assert!(
        changed
            .iter()
            .all(|(a, k, _)| a == "change" && k == "Deployment.apps/v1")
    );
    let image = tag_changed["children"][0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "spec.template.spec.containers[0].image")
        .unwrap_or_else(|| panic!("the image field: {tag_changed:#}"));
    assert!(
        image["before"].as_str().unwrap().ends_with(":0.3.0"),
        "{image}"
    );
    assert!(
        image["after"].as_str().unwrap().ends_with(":0.4.0"),
        "{image}"
    );
    assert!(
        !tag_changed["status"].as_array().unwrap().is_empty(),
        "the status changes too"
    );

    let removed = actions(&found[&name(2)]);
    for kind in ["Deployment.apps/v1", "Service.v1"] {
        let pruned = (
            "prune".to_owned(),
            kind.to_owned(),
            format!("{}-right-leg", name(2)),
        );
        assert!(removed.contains(&pruned), "{pruned:?} in {removed:?}");
    }

    let recreated = &found[&name(3)];
    assert_eq!(
        actions(recreated),
        vec![(
            "create".to_owned(),
            "Service.v1".to_owned(),
            format!("{}-hat", name(3))
        )]
    );
    assert_eq!(
        recreated["children"][0]["object"]["spec"]["ports"][0]["port"], 9001,
        "the object as the API server would create it"
    );

    let invalid = &found[&name(4)];
    assert_eq!(invalid["result"], "failed");
    assert!(
        invalid["reason"]
            .as_str()
            .unwrap()
            .contains("contains whitespace"),
        "{invalid}"
    );

    for i in 5..PARENTS {
        let unchanged = &found[&name(i)];
        assert_eq!(unchanged["result"], "decided");
        assert_eq!(actions(unchanged), vec![], "{unchanged}");
    }

    // The same, for people; and a label selector narrows the parents.
    let text = diff(&kubeconfig, &ns);
    assert_eq!(text.code, 1);
    for line in [
        format!("~ PotatoHead {namespace}/{}", name(1)),
        "spec.template.spec.containers[0].image: \"ghcr.io/podtato-head/entry:0.3.0\" -> \"ghcr.io/podtato-head/entry:0.4.0\"".to_owned(),
        format!("- Deployment.apps/v1 {namespace}/{}-right-leg", name(2)),
        format!("+ Service.v1 {namespace}/{}-hat", name(3)),
        format!("! PotatoHead {namespace}/{}: would fail", name(4)),
    ] {
        assert!(text.stdout.contains(&line), "{line:?} in:\n{}", text.stdout);
    }
    assert!(
        !text.stdout.contains(&name(5)),
        "unchanged parents are not printed"
    );
    let selected = diff(&kubeconfig, &[&ns[..], &["-l", "diff=me"]].concat());
    assert_eq!(selected.code, 1);
    assert!(
        selected.stderr.contains("1 parents: 1 would change"),
        "{}",
        selected.stderr
    );

    let after = write_requests(&client).await;
    assert_eq!(
        after.0, before.0,
        "no write reached the API server during the diffs"
    );
    // Each run dry-runs exactly the children it reports created or changed (the selected run
    // only the first parent's 6): none of the 2 600 children the planning step knows are as
    // desired is sent.
    let per_run = found
        .values()
        .flat_map(actions)
        .filter(|(action, _, _)| action != "prune")
        .count();
    assert_eq!(
        after.1 - before.1,
        (2 * per_run + 6) as u64,
        "only the children the planning step cannot rule out are dry-run: {:#}",
        found[&name(2)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_of_a_guest_whose_kind_is_not_served_exits_2_naming_it() {
    // No namespace of its own: the other test counts the writes to the API server.
    let plane = shared_plane().await;
    let tenant = workspace_root().join("target/wasm32-wasip2/release/tenant_guest.wasm");
    let refused = diff(
        &plane.kubeconfig,
        &[
            "--guest",
            tenant.to_str().unwrap(),
            "--allowed-child-kind",
            "v1/Namespace,v1/ResourceQuota,rbac.authorization.k8s.io/v1/RoleBinding",
        ],
    );
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("does not serve Tenant."),
        "{}",
        refused.stderr
    );
    assert_eq!(refused.stdout, "");
}
