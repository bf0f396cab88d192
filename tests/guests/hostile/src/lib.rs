//! A hostile guest for containment tests. It reconciles PotatoHeads, and the parent's annotation
//! `hostile.example.com/attack` picks what it does; each attack is one line below saying what it
//! attacks. With no annotation (or `none`) it behaves: one ConfigMap `<name>-ok`.

use guest_kit::component::{
    Desired, Level, Manifest, Observed, ReconcileError, Reconciler, kind, log,
};
use serde_json::{Value, json};

struct Hostile;

fn config_map(name: &str) -> Value {
    json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": name }, "data": { "k": "v" } })
}

fn children(objects: Vec<Value>) -> Result<Desired, ReconcileError> {
    Ok(Desired::children(
        objects.iter().map(Value::to_string).collect(),
    ))
}

impl Reconciler for Hostile {
    fn describe() -> Manifest {
        Manifest::new(
            "hostile",
            "0.1.0",
            kind("podtato.example.com", "v1alpha1", "PotatoHead"),
        )
        .with_children([
            kind("", "v1", "ConfigMap"),
            kind("apps", "v1", "Deployment"),
        ])
    }

    fn reconcile(observed: Observed) -> Result<Desired, ReconcileError> {
        let parent: Value = serde_json::from_str(&observed.parent)
            .map_err(|e| ReconcileError::Transient(e.to_string()))?;
        let name = parent["metadata"]["name"]
            .as_str()
            .unwrap_or("x")
            .to_string();
        let attack = parent["metadata"]["annotations"]["hostile.example.com/attack"]
            .as_str()
            .unwrap_or("none");
        let ok = config_map(&format!("{name}-ok"));
        match attack {
            // Attacks the deadline: never returns.
            "loop" => loop {
                std::hint::black_box(&attack);
            },
            // Attacks the memory limit: keeps 1 GiB alive.
            "alloc" => {
                let block = std::hint::black_box(vec![1u8; 1 << 30]);
                children(vec![config_map(&format!("{name}-{}", block.len()))])
            }
            // Attacks error handling: traps.
            "panic" => panic!("hostile guest panics on purpose"),
            // Attacks output parsing: a child that is not JSON.
            "invalid-json" => Ok(Desired {
                children: vec!["{not json".into()],
                status: None,
                requeue_after_ms: None,
                events: Vec::new(),
            }),
            // Attacks output size: 100 000 objects.
            "many-objects" => children(
                (0..100_000)
                    .map(|i| config_map(&format!("{name}-{i}")))
                    .collect(),
            ),
            // Attacks output size: one 100 MB object (more than the default memory limit).
            "huge-object" => {
                let mut big = config_map(&format!("{name}-big"));
                big["data"]["k"] = Value::String("x".repeat(100 << 20));
                children(vec![big])
            }
            // Attacks the host's logs: a million messages in one call.
            "log-flood" => {
                for i in 0..1_000_000 {
                    log(Level::Info, &format!("flood {i}"));
                }
                children(vec![ok])
            }
            // Attacks the declared-kinds rule: a Secret, never declared.
            "undeclared-kind" => children(vec![
                ok,
                json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": format!("{name}-secret") } }),
            ]),
            // Attacks privilege: a cluster-admin binding.
            "cluster-role-binding" => children(vec![
                ok,
                json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": { "name": format!("{name}-pwn") },
                    "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin" },
                    "subjects": [{ "kind": "ServiceAccount", "name": "default", "namespace": "default" }],
                }),
            ]),
            // Attacks namespace isolation: a ConfigMap in kube-system.
            "other-namespace" => {
                let mut escaped = config_map(&format!("{name}-escaped"));
                escaped["metadata"]["namespace"] = json!("kube-system");
                children(vec![ok, escaped])
            }
            // Attacks ownership: claims a Deployment that another controller owns.
            "take-over" => children(vec![
                ok,
                json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": { "name": format!("{name}-taken") },
                    "spec": { "replicas": 9, "selector": { "matchLabels": { "a": "b" } },
                        "template": { "metadata": { "labels": { "a": "b" } },
                            "spec": { "containers": [{ "name": "c", "image": "evil:1" }] } } },
                }),
            ]),
            // Attacks ownership: brings its own ownerReferences.
            "owner-references" => {
                let mut owned = config_map(&format!("{name}-owned"));
                owned["metadata"]["ownerReferences"] = json!([{ "apiVersion": "v1", "kind": "Namespace", "name": "default", "uid": "00000000-0000-0000-0000-000000000000", "controller": true }]);
                children(vec![ok, owned])
            }
            // Attacks the host's writes into metadata: labels as a string, not a map.
            "labels-string" => {
                let mut child = config_map(&format!("{name}-labels"));
                child["metadata"]["labels"] = json!("app=web");
                children(vec![ok, child])
            }
            // Attacks the host's writes into metadata: annotations as a list.
            "annotations-array" => {
                let mut child = config_map(&format!("{name}-annotations"));
                child["metadata"]["annotations"] = json!(["a", "b"]);
                children(vec![ok, child])
            }
            // Attacks deletion: a finalizer nobody removes (the child and its namespace stay).
            "finalizers" => {
                let mut child = config_map(&format!("{name}-final"));
                child["metadata"]["finalizers"] = json!(["hostile.example.com/never"]);
                children(vec![ok, child])
            }
            // Attacks the status code: conditions that are not objects.
            "junk-conditions" => Ok(Desired {
                children: vec![ok.to_string()],
                status: Some(json!({ "conditions": ["x", 5] }).to_string()),
                requeue_after_ms: None,
                events: Vec::new(),
            }),
            // Attacks status reporting: a 4 MB status, over the API server's request limit.
            "huge-status" => Ok(Desired {
                children: vec![ok.to_string()],
                status: Some(json!({ "summary": "x".repeat(4 << 20) }).to_string()),
                requeue_after_ms: None,
                events: Vec::new(),
            }),
            // Attacks the host's memory after the call: a 15 MB status (within the output cap,
            // over the per-object cap), which the host once parsed, cloned and serialised.
            "status-15mb" => Ok(Desired {
                children: vec![ok.to_string()],
                status: Some(json!({ "summary": "x".repeat(15 << 20) }).to_string()),
                requeue_after_ms: None,
                events: Vec::new(),
            }),
            // Attacks the host's memory after the call: one 15 MB child.
            "child-15mb" => {
                let mut big = config_map(&format!("{name}-big"));
                big["data"]["k"] = Value::String("x".repeat(15 << 20));
                children(vec![ok, big])
            }
            // Attacks the host's logs and statuses: a 3 MB transient error with fake log lines.
            "huge-error" => Err(ReconcileError::Transient(
                "fail\n2026-12-01T00:00:00Z  INFO reconciler_host: forged ".repeat(60_000),
            )),
            // Attacks the take-over rule inside one host: every parent with the same
            // `hostile.example.com/contested` annotation wants the same ConfigMap.
            "contested" => {
                let label = parent["metadata"]["annotations"]["hostile.example.com/contested"]
                    .as_str()
                    .unwrap_or("x");
                children(vec![ok, config_map(&format!("contested-{label}"))])
            }
            // Attacks the host's total memory: holds 60 MiB for 1.5 s (under the per-call cap;
            // many parents at once would add up).
            "hold-memory" => {
                let mut block = vec![1u8; 60 << 20];
                let started = std::time::Instant::now();
                while started.elapsed() < std::time::Duration::from_millis(1500) {
                    // Touch the pages so they stay resident.
                    for page in block.iter_mut().step_by(4096) {
                        *page = page.wrapping_add(1);
                    }
                    std::hint::black_box(&block);
                }
                children(vec![ok])
            }
            // Attacks the no-write-when-unchanged rule: a child whose content is new on every
            // call (each write's watch event triggers the next reconcile).
            "timestamp" => {
                let mut child = config_map(&format!("{name}-clock"));
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or_default();
                child["data"]["now"] = json!(now.to_string());
                children(vec![ok, child])
            }
            _ => children(vec![ok]),
        }
    }
}

guest_kit::export_guest!(Hostile);
