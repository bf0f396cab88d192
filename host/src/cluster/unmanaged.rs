//! Who holds the names the host does not manage: for one child kind, every object in scope that
//! does *not* carry the host's managed-by label, with its controller, from a metadata-only watch.
//!
//! The take-over rule of the output policy needs to know, before a child is created, whether an
//! object of that name already exists. Asking the API server costs one GET per new child (13 000
//! extra requests when 1 000 PotatoHeads are created); this index answers from memory instead.
//! The host's own children are not in it (the label selector `managed-by!=<field manager>` leaves
//! them to the child caches), so it stays as small as the unrelated objects of the kinds, and it
//! keeps only a name and a controller per object.
//!
//! # Guarantees
//! - [`UnmanagedNames::holder`] answers only once the first list has completed; until then the
//!   caller must ask the API server.
//! - A relist replaces the index atomically at `InitDone` (see `relist.rs`), so an answer never
//!   comes from a half-listed index.
//!
//! Like the GET it replaces, the answer can be stale by the watch's latency: an object created by
//! someone else in the moment before the host's own create may be taken over.

use std::collections::HashMap;

use futures::StreamExt;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use super::ownership::{Holder, ObjectName, object_name};
use super::relist::{Index, RelistingIndex, map_event};

/// Name → controller of the unmanaged objects of one kind.
#[derive(Default)]
pub struct Holders(HashMap<ObjectName, Holder>);

impl Index for Holders {
    type Entry = (ObjectName, Holder);

    fn upsert(&mut self, (name, holder): Self::Entry) {
        self.0.insert(name, holder);
    }

    fn remove(&mut self, (name, _): &Self::Entry) {
        self.0.remove(name);
    }
}

/// The unmanaged objects of one child kind.
#[derive(Default)]
pub struct UnmanagedNames {
    index: RelistingIndex<Holders>,
}

impl UnmanagedNames {
    /// `None` until the first list completed; then who holds the name, if anything does.
    pub fn holder(&self, namespace: &str, name: &str) -> Option<Option<Holder>> {
        self.index.read(|holders| {
            holders
                .0
                .get(&(namespace.to_string(), name.to_string()))
                .cloned()
        })
    }

    /// Applies one watch event; `freed` hears of every deleted object (namespace, name).
    fn handle(&self, event: Event<PartialObjectMeta<DynamicObject>>, freed: &impl Fn(&str, &str)) {
        let deleted = match &event {
            Event::Delete(object) => Some(object_name(&object.metadata)),
            _ => None,
        };
        self.index.handle(map_event(event, |object| {
            (object_name(&object.metadata), Holder::of(&object.metadata))
        }));
        if let Some((namespace, name)) = deleted {
            freed(&namespace, &name);
        }
    }

    /// Lists nothing, as if the kind had no unmanaged objects: for tests of what reads the caches.
    #[cfg(test)]
    pub(crate) fn mark_listed(&self) {
        self.index.handle(Event::Init);
        self.index.handle(Event::InitDone);
    }

    /// Watches the kind's objects without the host's label until the task is aborted; `freed`
    /// hears of every deleted one.
    pub async fn watch(
        &self,
        api: Api<PartialObjectMeta<DynamicObject>>,
        label_selector: &str,
        kind: &str,
        freed: impl Fn(&str, &str),
    ) {
        let config = watcher::Config::default().labels(label_selector);
        // An `Api` of `PartialObjectMeta` makes metadata-only requests.
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => self.handle(event, &freed),
                Err(error) => {
                    tracing::warn!(%kind, %error, "watch of unmanaged objects failed; retrying with backoff")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use kube::api::{ApiResource, GroupVersionKind, ObjectMeta};

    use super::*;

    fn parent() -> ApiResource {
        ApiResource::from_gvk(&GroupVersionKind::gvk(
            "podtato.example.com",
            "v1alpha1",
            "PotatoHead",
        ))
    }

    fn object(name: &str, controller: Option<(&str, &str)>) -> PartialObjectMeta<DynamicObject> {
        let mut meta = ObjectMeta {
            name: Some(name.into()),
            namespace: Some("ns".into()),
            ..Default::default()
        };
        if let Some((kind, uid)) = controller {
            let api_version = if kind == "PotatoHead" {
                parent().api_version
            } else {
                "apps/v1".into()
            };
            meta.owner_references = Some(vec![OwnerReference {
                api_version,
                kind: kind.into(),
                name: format!("owner-{uid}"),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]);
        }
        PartialObjectMeta {
            types: None,
            metadata: meta,
            _phantom: Default::default(),
        }
    }

    #[test]
    fn nothing_is_answered_before_the_first_list_completes() {
        let names = UnmanagedNames::default();
        names.handle(Event::Init, &|_, _| {});
        names.handle(Event::InitApply(object("a", None)), &|_, _| {});
        assert_eq!(names.holder("ns", "a"), None);
        names.handle(Event::InitDone, &|_, _| {});
        assert_eq!(names.holder("ns", "a"), Some(Some(Holder::Uncontrolled)));
        assert_eq!(names.holder("ns", "b"), Some(None));
    }

    #[test]
    fn holders_are_told_apart_by_controller() {
        let names = UnmanagedNames::default();
        names.handle(Event::Init, &|_, _| {});
        names.handle(Event::InitDone, &|_, _| {});
        names.handle(
            Event::Apply(object("a", Some(("PotatoHead", "p1")))),
            &|_, _| {},
        );
        names.handle(
            Event::Apply(object("b", Some(("ReplicaSet", "r1")))),
            &|_, _| {},
        );
        let a = names.holder("ns", "a").unwrap().unwrap();
        assert_eq!(a.uid(), Some("p1"));
        assert_eq!(a.to_text(), r#"PotatoHead "owner-p1""#);
        let b = names.holder("ns", "b").unwrap().unwrap();
        assert_eq!(b.to_text(), r#"ReplicaSet "owner-r1""#);
        let freed = std::cell::RefCell::new(Vec::new());
        names.handle(Event::Delete(object("b", None)), &|ns, name| {
            freed.borrow_mut().push(format!("{ns}/{name}"))
        });
        assert_eq!(names.holder("ns", "b"), Some(None));
        assert_eq!(freed.into_inner(), ["ns/b"], "a deletion frees the name");
    }

    #[test]
    fn a_relist_replaces_the_index_when_complete() {
        let names = UnmanagedNames::default();
        names.handle(Event::Init, &|_, _| {});
        names.handle(Event::InitApply(object("a", None)), &|_, _| {});
        names.handle(Event::InitDone, &|_, _| {});
        names.handle(Event::Init, &|_, _| {});
        names.handle(Event::InitApply(object("b", None)), &|_, _| {});
        // Until InitDone the previous, complete index answers.
        assert!(names.holder("ns", "a").unwrap().is_some());
        assert!(names.holder("ns", "b").unwrap().is_none());
        names.handle(Event::InitDone, &|_, _| {});
        assert!(names.holder("ns", "a").unwrap().is_none());
        assert!(names.holder("ns", "b").unwrap().is_some());
    }
}
