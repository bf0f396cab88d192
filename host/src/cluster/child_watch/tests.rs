//! The child caches fed by hand: indexing, relists, writes in flight.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{GroupVersionKind, ObjectMeta};

use super::*;

fn parent_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "podtato.example.com",
        "v1alpha1",
        "PotatoHead",
    ))
}

fn parent_kind(resource: ApiResource) -> ResolvedKind {
    ResolvedKind {
        gvk: GroupVersionKind::gvk(
            resource.group.as_str(),
            resource.version.as_str(),
            resource.kind.as_str(),
        ),
        resource,
        namespaced: true,
    }
}

fn deployment_kind() -> Arc<ResolvedKind> {
    let gvk = GroupVersionKind::gvk("apps", "v1", "Deployment");
    Arc::new(ResolvedKind {
        resource: ApiResource::from_gvk(&gvk),
        gvk,
        namespaced: true,
    })
}

/// Caches with one Deployment cache, fed by hand (no watch task).
fn children() -> (Arc<ChildCaches>, Arc<KindCache>) {
    let (triggers, _) = futures::channel::mpsc::unbounded();
    let client =
        kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap())).unwrap();
    let scope = WatchScope {
        client,
        namespace: None,
        managed_by: "test".into(),
    };
    let children = ChildCaches::new(scope);
    children.serve_parent_kind(&parent_kind(parent_resource()), triggers);
    let cache = Arc::new(KindCache::new(deployment_kind()));
    children.caches.write().unwrap().push(Arc::clone(&cache));
    (children, cache)
}

fn child(name: &str, owner_uid: Option<&str>, controller: bool) -> DynamicObject {
    let mut object = DynamicObject {
        types: None,
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            ..Default::default()
        },
        data: serde_json::Value::Null,
    };
    if let Some(uid) = owner_uid {
        object.metadata.owner_references = Some(vec![OwnerReference {
            api_version: parent_resource().api_version,
            kind: parent_resource().kind,
            name: format!("parent-{uid}"),
            uid: uid.into(),
            controller: Some(controller),
            block_owner_deletion: None,
        }]);
    }
    object
}

fn names(children: &ChildCaches, uid: &str) -> Vec<String> {
    children
        .owned_by(uid, |ns| ns == "ns", &[deployment_kind()])
        .iter()
        .map(|c| c.object.metadata.name.clone().unwrap())
        .collect()
}

#[tokio::test]
async fn children_are_found_by_their_controller_uid_only() {
    let (children, cache) = children();
    let triggered = children.handle(&cache, Event::Apply(child("a", Some("p1"), true)));
    assert_eq!(triggered[0].name, "parent-p1");
    assert_eq!(triggered[0].namespace.as_deref(), Some("ns"));
    children.handle(&cache, Event::Apply(child("b", Some("p2"), true)));
    assert!(
        children
            .handle(&cache, Event::Apply(child("c", Some("p1"), false)))
            .is_empty()
    );
    children.handle(&cache, Event::Apply(child("d", None, false)));
    // Labelled and pointing at p1, but in another namespace: not p1's child.
    let mut elsewhere = child("e", Some("p1"), true);
    elsewhere.metadata.namespace = Some("other".into());
    children.handle(&cache, Event::Apply(elsewhere));
    assert_eq!(names(&children, "p1"), ["a"]);
    assert_eq!(names(&children, "p2"), ["b"]);
}

#[tokio::test]
async fn a_child_whose_controller_changes_moves_between_parents() {
    let (children, cache) = children();
    children.handle(&cache, Event::Apply(child("a", Some("p1"), true)));
    children.handle(&cache, Event::Apply(child("a", Some("p2"), true)));
    assert!(names(&children, "p1").is_empty());
    assert_eq!(names(&children, "p2"), ["a"]);
    children.handle(&cache, Event::Delete(child("a", Some("p2"), true)));
    assert!(names(&children, "p2").is_empty());
}

#[tokio::test]
async fn a_relist_replaces_the_index_only_when_it_is_complete() {
    let (children, cache) = children();
    assert!(!children.synced(&[deployment_kind()]));
    children.handle(&cache, Event::Init);
    children.handle(&cache, Event::InitApply(child("a", Some("p1"), true)));
    children.handle(&cache, Event::InitDone);
    assert!(children.synced(&[deployment_kind()]));
    assert_eq!(names(&children, "p1"), ["a"]);

    // A relist in which "a" is gone: until InitDone the old, complete index is served.
    children.handle(&cache, Event::Init);
    children.handle(&cache, Event::InitApply(child("b", Some("p1"), true)));
    assert_eq!(names(&children, "p1"), ["a"]);
    let triggered = children.handle(&cache, Event::InitDone);
    assert_eq!(names(&children, "p1"), ["b"]);
    // The parent of the vanished child is told.
    assert_eq!(
        triggered
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["parent-p1"]
    );
}

#[tokio::test]
async fn a_write_is_in_flight_until_the_childs_next_event() {
    let (children, cache) = children();
    let key = ("ns".to_string(), "a".to_string());
    let kind = deployment_kind();
    children.wrote(&kind, key.clone(), Some("5".into()), "d1".into());
    assert!(children.write_in_flight(&kind, &key, Some("5"), "d1"));
    assert!(
        !children.write_in_flight(&kind, &key, Some("5"), "d2"),
        "another desired state"
    );
    assert!(
        !children.write_in_flight(&kind, &key, Some("7"), "d1"),
        "the cache moved on"
    );
    children.handle(&cache, Event::Apply(child("a", Some("p1"), true)));
    assert!(!children.write_in_flight(&kind, &key, Some("5"), "d1"));

    // A create (nothing cached) until the object shows up, or a relist.
    children.wrote(&kind, key.clone(), None, "d1".into());
    assert!(children.write_in_flight(&kind, &key, None, "d1"));
    children.handle(&cache, Event::InitDone);
    assert!(!children.write_in_flight(&kind, &key, None, "d1"));
}

#[tokio::test]
async fn kinds_not_asked_for_are_not_returned_and_can_be_dropped() {
    let (children, cache) = children();
    children.handle(&cache, Event::Apply(child("a", Some("p1"), true)));
    assert!(children.owned_by("p1", |ns| ns == "ns", &[]).is_empty());
    children.retain_kinds("test", &[]);
    assert!(
        children
            .owned_by("p1", |ns| ns == "ns", &[deployment_kind()])
            .is_empty()
    );
    assert!(!children.synced(&[deployment_kind()]));
}

#[tokio::test]
async fn listed_children_get_the_kind_list_items_lack_and_lose_managed_fields() {
    let (children, cache) = children();
    // `child` makes objects without apiVersion/kind, as list responses carry them.
    children.handle(&cache, Event::Init);
    let mut listed = child("a", Some("p1"), true);
    listed.metadata.managed_fields = Some(vec![Default::default()]);
    children.handle(&cache, Event::InitApply(listed));
    children.handle(&cache, Event::InitDone);
    let cached = children.owned_by("p1", |ns| ns == "ns", &[deployment_kind()]);
    assert_eq!(cached[0].object.metadata.managed_fields, None);
    let types = cached[0]
        .object
        .types
        .clone()
        .expect("apiVersion and kind filled in");
    assert_eq!(
        (types.api_version.as_str(), types.kind.as_str()),
        ("apps/v1", "Deployment")
    );
}

fn podtatohead_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "crd.demo.com",
        "v1alpha1",
        "PodTatoHead",
    ))
}

/// `child` controlled by a parent of `resource`'s kind.
fn child_of(name: &str, resource: &ApiResource, uid: &str) -> DynamicObject {
    let mut object = child(name, Some(uid), true);
    let owner = &mut object.metadata.owner_references.as_mut().unwrap()[0];
    owner.api_version = resource.api_version.clone();
    owner.kind = resource.kind.clone();
    object
}

#[tokio::test]
async fn one_cache_serves_several_parent_kinds_and_routes_each_event_to_its_kind() {
    let (children, cache) = children();
    let (podtato_triggers, mut podtato_requests) = futures::channel::mpsc::unbounded();
    children.serve_parent_kind(&parent_kind(podtatohead_resource()), podtato_triggers);
    children.handle(&cache, Event::Apply(child("a", Some("p1"), true)));
    let touched = children.handle(
        &cache,
        Event::Apply(child_of("b", &podtatohead_resource(), "q1")),
    );
    assert_eq!(touched[0].dyntype.kind, "PodTatoHead");
    assert_eq!(names(&children, "p1"), ["a"]);
    assert_eq!(
        names(&children, "q1"),
        ["b"],
        "indexed by UID whatever the kind"
    );
    for parent in touched {
        children.reconcile_parent(parent);
    }
    let request = podtato_requests.try_recv().unwrap();
    assert_eq!(
        (request.name.as_str(), request.dyntype.kind.as_str()),
        ("parent-q1", "PodTatoHead")
    );

    // A kind no longer served triggers nothing, but its children stay indexed.
    children.stop_serving_parent_kind(&podtatohead_resource());
    let touched = children.handle(
        &cache,
        Event::Apply(child_of("c", &podtatohead_resource(), "q1")),
    );
    assert!(touched.is_empty());
    assert_eq!(names(&children, "q1"), ["b", "c"]);
}

#[tokio::test]
async fn a_freed_name_reconciles_the_waiting_parent_of_its_own_kind() {
    let (children, cache) = children();
    let (podtato_triggers, mut podtato_requests) = futures::channel::mpsc::unbounded();
    children.serve_parent_kind(&parent_kind(podtatohead_resource()), podtato_triggers);
    let waiting = ObjectRef::new_with("second", podtatohead_resource()).within("ns");
    children.wait_for_name(&deployment_kind(), "ns", "a", waiting.clone());
    children.handle(&cache, Event::Apply(child("a", Some("p1"), true)));
    assert!(podtato_requests.try_recv().is_err(), "not freed yet");
    children.handle(&cache, Event::Delete(child("a", Some("p1"), true)));
    assert_eq!(podtato_requests.try_recv().unwrap(), waiting);
}

#[tokio::test]
async fn a_child_kind_is_watched_once_and_kept_while_any_user_needs_it() {
    let (children, _) = children();
    children.retain_kinds("nobody", &[]);
    assert!(children.caches().is_empty());
    let kinds = [deployment_kind()];
    let quick = Duration::from_millis(10);
    // Nothing answers at 127.0.0.1:1: the watches never list, so both calls time out.
    assert!(children.watch_kinds("a", &kinds, quick).await.is_err());
    assert!(children.watch_kinds("b", &kinds, quick).await.is_err());
    assert_eq!(children.caches().len(), 1, "one watch for both users");
    children.retain_kinds("a", &[]);
    assert_eq!(children.caches().len(), 1, "b still needs it");
    children.retain_kinds("b", &[]);
    assert!(children.caches().is_empty());
}

// Attack: a child kind's CRD deleted while the host runs; its cache still held every object,
// and the guests that own the kind went on deciding (and pruning) on it.
#[tokio::test]
async fn a_failing_child_watch_is_not_decided_on_until_it_has_listed_again() {
    let (children, cache) = children();
    children.handle(&cache, Event::Init);
    children.handle(&cache, Event::InitDone);
    let kinds = [deployment_kind()];
    assert!(children.synced(&kinds));
    assert!(children.failing(&kinds).is_empty());
    children.watch_failed(&cache);
    assert!(
        !children.synced(&kinds),
        "a failing watch's cache is not decided on"
    );
    assert_eq!(children.failing(&kinds), ["Deployment.apps/v1"]);
    children.handle(&cache, Event::Init);
    children.handle(&cache, Event::InitApply(child("d", Some("p"), true)));
    assert!(
        !children.synced(&kinds),
        "not before the relist is complete"
    );
    children.handle(&cache, Event::InitDone);
    assert!(children.synced(&kinds));
    assert!(children.failing(&kinds).is_empty());
}
