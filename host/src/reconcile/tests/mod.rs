//! The reconcile tier: whole reconciles of one parent, with the real default guest (its built
//! `.wasm`), child caches fed by hand, and a mocked API server that records every request. These
//! pin down what the reconcile *asks* of the API server in the cases that matter most: nothing
//! when nothing changed, nothing pruned after a failed apply, a status written once for an
//! invalid spec, nothing but the status for a policy violation, no applies for a parent being
//! deleted.

mod mock_api;
mod related;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

use super::events::EventPublisher;
use super::parent_state::ParentStates;
use super::{ActiveGuest, Context, Failure, GuestSlot, Settings, reconcile};
use crate::cluster::{ChildCaches, ResolvedKind, WatchScope};
use crate::metrics::{GuestMetrics, Metrics};
use crate::reconcile::budget::SharedBudget;
use crate::reconcile::rollback::RollbackWatch;
use crate::reconcile::shadow::CandidateSlot;
use crate::sandbox::{GuestEngine, GuestLimits};
use mock_api::{Answer, Request, Requests, accept, failure};

const RESYNC: std::time::Duration = std::time::Duration::from_secs(600);

/// A built guest of this workspace (`make guest test-guests`).
fn built_guest(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../target/wasm32-wasip2/release/{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `make guest test-guests`",
        path.display()
    );
    path
}

fn kind(gvk: &GroupVersionKind) -> ResolvedKind {
    ResolvedKind {
        gvk: gvk.clone(),
        resource: ApiResource::from_gvk(gvk),
        namespaced: true,
    }
}

/// One parent's world: the context a controller would build, over the mocked API server.
struct World {
    ctx: Arc<Context>,
    requests: Requests,
    parents: Writer<DynamicObject>,
    child_kinds: Vec<Arc<ResolvedKind>>,
}

impl World {
    /// The guest `guest` (a built guest's name), every child kind listed and empty.
    fn new(guest: &str, answer: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Self {
        let (client, requests) = mock_api::client(answer);
        let engine = GuestEngine::new(None).unwrap();
        let guest = Arc::new(
            engine
                .load_path(&built_guest(guest), GuestLimits::default())
                .unwrap(),
        );
        let parent_kind = kind(&guest.manifest().parent);
        let child_kinds: Vec<Arc<ResolvedKind>> = guest
            .manifest()
            .children
            .iter()
            .map(|gvk| Arc::new(kind(gvk)))
            .collect();
        let (triggers, _) = futures::channel::mpsc::unbounded();
        let scope = WatchScope {
            client: client.clone(),
            namespace: None,
            managed_by: "wasm-reconciler".into(),
        };
        let children = ChildCaches::new(scope.clone());
        let related = crate::cluster::RelatedCaches::new(scope, Arc::clone(&children));
        children.serve_parent_kind(&parent_kind, triggers);
        for kind in &child_kinds {
            children.add_listed_kind(Arc::clone(kind));
        }
        let parents = Writer::new(parent_kind.resource.clone());
        let metrics = GuestMetrics::new(&Arc::new(Metrics::default()), "potatohead");
        let ctx = Context {
            events: EventPublisher::new(client.clone(), "wasm-reconciler".into(), None),
            parent_states: ParentStates::new(parents.as_reader(), parent_kind.resource.clone()),
            client,
            slot: Arc::new(GuestSlot::new(ActiveGuest::new(
                guest,
                child_kinds.clone(),
                Vec::new(),
            ))),
            candidate: Arc::new(CandidateSlot::new(metrics.clone())),
            rollback: Arc::new(RollbackWatch::new(Default::default())),
            parent_kind,
            children,
            related,
            settings: Settings {
                field_manager: "wasm-reconciler".into(),
                resync: RESYNC,
                protected_namespaces: Default::default(),
            },
            metrics,
            guest_memory: SharedBudget::of_memory(256 << 20).share(),
            reconcile_slots: SharedBudget::new(32).share(),
            claims: Default::default(),
            stopping: tokio::sync::watch::channel(false).1,
        };
        Self {
            ctx: Arc::new(ctx),
            requests,
            parents,
            child_kinds,
        }
    }

    /// A parent as the API server hands it over (and as the parent cache holds it).
    fn parent(&mut self, object: Value) -> Arc<DynamicObject> {
        let parent: DynamicObject = serde_json::from_value(object).unwrap();
        self.parents
            .apply_watcher_event(&Event::Apply(parent.clone()));
        Arc::new(parent)
    }

    /// `object` as the child watch delivers it, with the server's UID and version.
    fn observe_child(&self, mut object: Value) {
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        object["metadata"]["uid"] = json!(format!("uid-{name}"));
        object["metadata"]["resourceVersion"] = json!("1");
        let kind = self
            .child_kinds
            .iter()
            .find(|k| k.resource.kind == object["kind"])
            .unwrap();
        let object: DynamicObject = serde_json::from_value(object).unwrap();
        self.ctx.children.feed(kind, Event::Apply(object));
    }

    async fn reconcile(&self, parent: &Arc<DynamicObject>) -> Result<Action, Failure> {
        reconcile(Arc::clone(parent), Arc::clone(&self.ctx)).await
    }
}

/// The committed PotatoHead sample as the API server hands it over.
fn potatohead(spec: Option<Value>) -> Value {
    let sample = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/samples/potatohead.yaml"
    ))
    .unwrap();
    let mut parent: Value = serde_saphyr::from_str(&sample).unwrap();
    let metadata = &mut parent["metadata"];
    metadata["namespace"] = json!("ns");
    metadata["uid"] = json!("parent-uid");
    metadata["generation"] = json!(1);
    metadata["resourceVersion"] = json!("7");
    if let Some(spec) = spec {
        parent["spec"] = spec;
    }
    parent
}

/// `parent` with the status the last status write put on it.
fn with_written_status(mut parent: Value, requests: &[Request]) -> Value {
    let written = requests
        .iter()
        .rfind(|r| r.is_status_write())
        .expect("a status was written");
    parent["status"] = written.body["status"].clone();
    parent
}

fn count(requests: &[Request], which: impl Fn(&Request) -> bool) -> usize {
    requests.iter().filter(|r| which(r)).count()
}

#[tokio::test]
async fn a_parent_in_its_steady_state_sends_no_request() {
    let mut world = World::new("guest_potatohead", accept);
    let parent = world.parent(potatohead(None));
    world.reconcile(&parent).await.unwrap();
    let first = world.requests.take();
    assert_eq!(count(&first, Request::is_child_apply), 13, "{first:#?}");
    assert_eq!(count(&first, Request::is_status_write), 1);

    // The watches deliver what was written; the parent watch, the status.
    for apply in first.iter().filter(|r| r.is_child_apply()) {
        world.observe_child(apply.body.clone());
    }
    let parent = world.parent(with_written_status(potatohead(None), &first));
    let next = world.reconcile(&parent).await.unwrap();
    assert_eq!(next, Action::requeue(RESYNC));
    let second = world.requests.take();
    assert!(
        second.is_empty(),
        "requests in the steady state: {second:#?}"
    );
}

#[tokio::test]
async fn a_failed_apply_prunes_nothing() {
    let failing = Arc::new(AtomicBool::new(true));
    let mut world = World::new("guest_potatohead", {
        let failing = Arc::clone(&failing);
        move |request: &Request| {
            if failing.load(Ordering::Relaxed)
                && request.is_child_apply()
                && request.target() == "deployments/demo-hat"
            {
                failure(500, "etcd is unhappy")
            } else {
                accept(request)
            }
        }
    });
    // A child of this parent the guest no longer wants.
    let parent_value = potatohead(None);
    world.observe_child(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": "leftover", "namespace": "ns",
            "labels": { "app.kubernetes.io/managed-by": "wasm-reconciler" },
            "ownerReferences": [{
                "apiVersion": "podtato.example.com/v1alpha1", "kind": "PotatoHead",
                "name": "demo", "uid": "parent-uid", "controller": true,
            }],
        },
    }));
    let parent = world.parent(parent_value);
    let failed = world.reconcile(&parent).await.unwrap_err();
    assert!(
        matches!(&failed, Failure::Write { message, .. } if message.contains("etcd is unhappy")),
        "{failed:?}"
    );
    let requests = world.requests.take();
    assert_eq!(count(&requests, Request::is_delete), 0, "{requests:#?}");
    let status = requests.iter().find(|r| r.is_status_write()).unwrap();
    let ready = &status.body["status"]["conditions"][0];
    assert_eq!(
        (ready["type"].as_str(), ready["reason"].as_str()),
        (Some("Ready"), Some("ApplyFailed"))
    );

    // Once every apply succeeds, the leftover goes: it was kept only because one failed.
    failing.store(false, Ordering::Relaxed);
    let parent = world.parent(with_written_status(potatohead(None), &requests));
    world.reconcile(&parent).await.unwrap();
    let requests = world.requests.take();
    let deletes: Vec<String> = requests
        .iter()
        .filter(|r| r.is_delete())
        .map(Request::target)
        .collect();
    assert_eq!(deletes, ["configmaps/leftover"]);
}

#[tokio::test]
async fn an_invalid_spec_writes_the_status_once_and_waits_for_a_change() {
    let mut world = World::new("guest_potatohead", accept);
    let invalid = json!({ "tag": "0.3.0", "parts": [{ "name": "hat.with.dots" }] });
    let parent = world.parent(potatohead(Some(invalid.clone())));
    let next = world.reconcile(&parent).await.unwrap();
    assert_eq!(next, Action::await_change(), "not retried");
    let first = world.requests.take();
    assert_eq!(count(&first, Request::is_status_write), 1, "{first:#?}");
    assert_eq!(count(&first, Request::is_child_apply), 0);
    assert_eq!(count(&first, Request::is_delete), 0);
    let ready =
        &first.iter().find(|r| r.is_status_write()).unwrap().body["status"]["conditions"][0];
    assert_eq!(ready["reason"], "InvalidSpec");

    // Reconciled again (a resync, a restart): the status says so already; nothing is written.
    let parent = world.parent(with_written_status(potatohead(Some(invalid)), &first));
    assert_eq!(
        world.reconcile(&parent).await.unwrap(),
        Action::await_change()
    );
    let again = world.requests.take();
    assert!(again.is_empty(), "{again:#?}");
}

#[tokio::test]
async fn a_policy_violation_writes_nothing_but_the_status() {
    let mut world = World::new("hostile_guest", accept);
    let parent = world.parent(json!({
        "apiVersion": "podtato.example.com/v1alpha1", "kind": "PotatoHead",
        "metadata": {
            "name": "p", "namespace": "ns", "uid": "parent-uid", "generation": 1,
            "annotations": { "hostile.example.com/attack": "other-namespace" },
        },
    }));
    let failed = world.reconcile(&parent).await.unwrap_err();
    assert!(matches!(failed, Failure::Policy(_)), "{failed:?}");
    let requests = world.requests.take();
    let writes: Vec<&Request> = requests.iter().filter(|r| !r.is_event()).collect();
    assert_eq!(writes.len(), 1, "{writes:#?}");
    assert!(writes[0].is_status_write());
    assert_eq!(
        writes[0].body["status"]["conditions"][0]["reason"],
        "PolicyViolation"
    );
}

#[tokio::test]
async fn a_parent_being_deleted_gets_no_applies_and_no_prunes() {
    let mut world = World::new("guest_potatohead", accept);
    let parent = world.parent(potatohead(None));
    world.reconcile(&parent).await.unwrap();
    let first = world.requests.take();
    for apply in first.iter().filter(|r| r.is_child_apply()) {
        world.observe_child(apply.body.clone());
    }
    let mut deleting = with_written_status(potatohead(None), &first);
    deleting["metadata"]["deletionTimestamp"] = json!("2026-12-01T00:00:00Z");
    deleting["metadata"]["finalizers"] = json!(["example.com/keep"]);
    // Fewer parts: outside deletion, five children would be pruned.
    deleting["spec"]["parts"] = json!([{ "name": "entry" }]);
    let parent = world.parent(deleting);
    assert_eq!(
        world.reconcile(&parent).await.unwrap(),
        Action::await_change()
    );
    let requests = world.requests.take();
    assert_eq!(
        count(&requests, Request::is_child_apply),
        0,
        "{requests:#?}"
    );
    assert_eq!(count(&requests, Request::is_delete), 0, "{requests:#?}");
}
