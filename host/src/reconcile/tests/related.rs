//! Whole reconciles of a guest that reads related objects (the default guest's
//! `spec.configRef`), over the mocked API server: the objects come from the caches, never from
//! a request, and what the guest may be given is bounded.

use std::sync::Arc;

use kube::api::{DynamicObject, GroupVersionKind};
use serde_json::json;

use super::mock_api::accept;
use super::{World, built_guest, count, kind, potatohead};
use crate::reconcile::{ActiveGuest, Failure};
use crate::sandbox::{GuestEngine, GuestLimits};

fn config_map(name: &str, greeting: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": name, "namespace": "ns", "uid": format!("uid-{name}"), "resourceVersion": "3" },
        "data": { "GREETING": greeting },
    }))
    .unwrap()
}

/// `world`'s guest, loaded with `limits`, reading ConfigMaps; the related cache listed with
/// `objects`.
fn reading_config_maps(world: &World, limits: GuestLimits, objects: Vec<DynamicObject>) {
    reading_config_maps_with("guest_potatohead", world, limits, objects);
}

/// The same with the guest `name`.
fn reading_config_maps_with(
    name: &str,
    world: &World,
    limits: GuestLimits,
    objects: Vec<DynamicObject>,
) {
    let config_maps = Arc::new(kind(&GroupVersionKind::gvk("", "v1", "ConfigMap")));
    world
        .ctx
        .related
        .add_listed_kind(Arc::clone(&config_maps), objects);
    let guest = GuestEngine::new(None)
        .unwrap()
        .load_path(&built_guest(name), limits)
        .unwrap();
    let active = world.ctx.slot.current();
    world.ctx.slot.replace(ActiveGuest::new(
        Arc::new(guest),
        active.child_kinds.clone(),
        vec![config_maps],
    ));
}

fn reads_shared() -> serde_json::Value {
    potatohead(Some(json!({
        "tag": "0.3.0",
        "parts": [{ "name": "hat" }],
        "configRef": { "name": "shared" },
    })))
}

#[tokio::test]
async fn a_parent_is_given_what_it_reads_from_the_caches_without_a_request() {
    let mut world = World::new("guest_potatohead", accept);
    reading_config_maps(
        &world,
        GuestLimits::default(),
        vec![config_map("shared", "hello"), config_map("unread", "no")],
    );
    let parent = world.parent(reads_shared());
    world.reconcile(&parent).await.unwrap();
    let requests = world.requests.take();
    let hat = requests
        .iter()
        .find(|r| r.is_child_apply() && r.target() == "deployments/demo-hat")
        .expect("the hat's Deployment is applied");
    assert!(
        hat.body
            .to_string()
            .contains(r#"{"name":"GREETING","value":"hello"}"#),
        "{}",
        hat.body
    );
    // Applies, the status and Events: no request reads a ConfigMap.
    let other = count(&requests, |r| {
        !(r.is_child_apply() || r.is_status_write() || r.is_event())
    });
    assert_eq!(other, 0, "{requests:#?}");
    // The parent is in the reverse index once (one name read), and its requirements are kept for
    // its generation and this guest: the next reconcile of generation 1 asks nothing.
    assert_eq!(world.ctx.related.readers(), (1, 1));
    let guest = world.ctx.slot.current();
    let record = world.ctx.parent_states.of(&parent);
    assert!(record.requirements(1, guest.guest.identity()).is_some());
    assert!(record.requirements(2, guest.guest.identity()).is_none());
}

// Attack: requirements that select more than a guest may be given (a selector matching every
// ConfigMap of a namespace) must fail the reconcile, not hand the guest an unbounded input.
#[tokio::test]
async fn more_related_objects_than_the_limits_fail_the_reconcile_with_nothing_written() {
    let mut world = World::new("guest_potatohead", accept);
    let limits = GuestLimits {
        max_related_bytes: 64,
        ..GuestLimits::default()
    };
    reading_config_maps(&world, limits, vec![config_map("shared", "hello")]);
    let parent = world.parent(reads_shared());
    let failed = world.reconcile(&parent).await.unwrap_err();
    assert!(
        matches!(&failed, Failure::RelatedTooLarge(m) if m.contains("--guest-max-related-kib")),
        "{failed:?}"
    );
    let requests = world.requests.take();
    assert_eq!(count(&requests, |r| r.is_child_apply()), 0, "{requests:#?}");
    assert_eq!(count(&requests, |r| r.is_delete()), 0, "{requests:#?}");
}

// Attack: requirements that name the clock, so the guest reads something other than its parent
// says. Caught on the first parent asked (asked twice), and no parent of that guest decides
// anything more.
#[tokio::test]
async fn a_guest_whose_requirements_wander_is_caught_and_decides_nothing() {
    let guest = "wandering_requirements_guest";
    let mut world = World::new(guest, accept);
    reading_config_maps_with(guest, &world, GuestLimits::default(), Vec::new());
    assert_eq!(
        world.ctx.slot.current().guest.contract(),
        crate::sandbox::Contract::V0_2,
        "{guest} must be built on its own (`make test-guests`): built beside the 0.1 test guests, \
         cargo unifies guest-kit's contract-0-1 feature into it"
    );
    for name in ["first", "second"] {
        let mut object = potatohead(Some(json!({ "parts": [{ "name": "hat" }] })));
        object["metadata"]["name"] = json!(name);
        object["metadata"]["uid"] = json!(format!("uid-{name}"));
        let parent = world.parent(object);
        let failed = world.reconcile(&parent).await.unwrap_err();
        assert!(
            matches!(&failed, Failure::Unsettled(m) if m.contains("differed between two calls")),
            "{name}: {failed:?}"
        );
    }
    let requests = world.requests.take();
    assert_eq!(count(&requests, |r| r.is_child_apply()), 0, "{requests:#?}");
    assert_eq!(
        world.ctx.related.readers(),
        (0, 0),
        "nothing recorded as read"
    );
}
