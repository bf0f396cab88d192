//! The reverse index of related objects: from each object a parent reads back to the parents
//! that read it, so a change of that object reconciles exactly those parents. (Listing every
//! parent on each related-object event, as Metacontroller does, makes the cost of one change grow
//! with every unrelated parent.)
//!
//! A parent reads objects by name (an exact key here) or by label selector (kept per kind and
//! namespace, and matched against the changed object's old and new labels, so an object that
//! stops matching is seen too). Entries are replaced whole each time a parent's requirements
//! are recorded, and removed when the parent goes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kube::api::{ApiResource, DynamicObject};
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::ObjectRef;

/// Which objects of one kind a parent reads, where.
#[derive(Clone, Debug)]
pub struct Reading {
    /// The kind, as `group/version/Kind` (the caches' key).
    pub kind: Arc<str>,
    /// For a namespaced kind: the namespace read (`None`: every namespace the host watches);
    /// `Some("")` for a cluster-scoped kind.
    pub namespace: Option<String>,
    pub selection: Selection,
}

/// Names, or a label selector.
#[derive(Clone, Debug)]
pub enum Selection {
    Names(Vec<String>),
    Labels(Selector),
}

/// One changed object, as the index matches it.
pub struct Change<'a> {
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    /// Its labels before and after the change; `None` when it did not exist then (created,
    /// deleted). An object without labels has an empty map.
    pub labels_before: Option<&'a BTreeMap<String, String>>,
    pub labels_after: Option<&'a BTreeMap<String, String>>,
}

type NameKey = (Arc<str>, String, String);
type SelectorKey = (Arc<str>, Option<String>);

/// The index itself; the caller holds it under a lock.
#[derive(Default)]
pub struct Readers {
    by_name: HashMap<NameKey, HashSet<Arc<str>>>,
    by_selector: HashMap<SelectorKey, HashMap<Arc<str>, Vec<Selector>>>,
    /// What each parent (by UID) reads, to replace or remove it, and how to reconcile it.
    of_parent: HashMap<Arc<str>, ParentReads>,
    /// The parent kinds, shared by their parents' entries (a kind's `ApiResource` is five
    /// strings: held once, not once per parent).
    kinds: Vec<Arc<ApiResource>>,
}

struct ParentReads {
    /// How to reconcile the parent: its kind, name and namespace.
    kind: Arc<ApiResource>,
    name: Box<str>,
    namespace: Option<Box<str>>,
    names: Vec<NameKey>,
    selectors: Vec<SelectorKey>,
}

impl Readers {
    /// Records that the parent `uid` (reconciled as `parent`) reads `readings`, replacing what
    /// it read before.
    pub fn record(&mut self, uid: &str, parent: ObjectRef<DynamicObject>, readings: &[Reading]) {
        self.forget(uid);
        if readings.is_empty() {
            return;
        }
        let uid: Arc<str> = Arc::from(uid);
        let kind = self.kind_of(&parent.dyntype);
        let mut reads = ParentReads {
            kind,
            name: parent.name.into(),
            namespace: parent.namespace.map(Into::into),
            names: Vec::new(),
            selectors: Vec::new(),
        };
        for reading in readings {
            let namespace = reading.namespace.clone();
            match &reading.selection {
                Selection::Names(names) => {
                    for name in names {
                        let key = (
                            Arc::clone(&reading.kind),
                            namespace.clone().unwrap_or_default(),
                            name.clone(),
                        );
                        self.by_name
                            .entry(key.clone())
                            .or_default()
                            .insert(Arc::clone(&uid));
                        reads.names.push(key);
                    }
                }
                Selection::Labels(selector) => {
                    let key = (Arc::clone(&reading.kind), namespace);
                    self.by_selector
                        .entry(key.clone())
                        .or_default()
                        .entry(Arc::clone(&uid))
                        .or_default()
                        .push(selector.clone());
                    if !reads.selectors.contains(&key) {
                        reads.selectors.push(key);
                    }
                }
            }
        }
        self.of_parent.insert(uid, reads);
    }

    /// Forgets what the parent `uid` reads (it was deleted, or reads nothing now).
    pub fn forget(&mut self, uid: &str) {
        let Some(reads) = self.of_parent.remove(uid) else {
            return;
        };
        // A map keeps the capacity it once grew to: after most parents went (a namespace of
        // them deleted), give the memory back rather than hold the peak for good.
        shrink_if_mostly_empty(&mut self.of_parent);
        shrink_if_mostly_empty(&mut self.by_name);
        for key in reads.names {
            if let Some(parents) = self.by_name.get_mut(&key) {
                parents.remove(uid);
                if parents.is_empty() {
                    self.by_name.remove(&key);
                }
            }
        }
        for key in reads.selectors {
            if let Some(parents) = self.by_selector.get_mut(&key) {
                parents.remove(uid);
                if parents.is_empty() {
                    self.by_selector.remove(&key);
                }
            }
        }
    }

    /// Forgets every parent of `resource`'s kind.
    pub fn forget_kind(&mut self, resource: &kube::api::ApiResource) {
        let uids: Vec<Arc<str>> = self
            .of_parent
            .iter()
            .filter(|(_, reads)| {
                reads.kind.api_version == resource.api_version && reads.kind.kind == resource.kind
            })
            .map(|(uid, _)| Arc::clone(uid))
            .collect();
        for uid in uids {
            self.forget(&uid);
        }
    }

    /// The parents that read the changed object: those naming it, and those whose selector
    /// matched it before or matches it now. Costs a lookup for the names and a match per
    /// selector reading that kind in that namespace (or in every namespace): never a walk over
    /// the parents.
    pub fn readers_of(&self, change: &Change<'_>) -> Vec<ObjectRef<DynamicObject>> {
        let mut uids: HashSet<&Arc<str>> = HashSet::new();
        let name_key: NameKey = (
            Arc::from(change.kind),
            change.namespace.to_owned(),
            change.name.to_owned(),
        );
        if let Some(parents) = self.by_name.get(&name_key) {
            uids.extend(parents);
        }
        let matches = |selector: &Selector| {
            [change.labels_before, change.labels_after]
                .into_iter()
                .flatten()
                .any(|labels| selector.matches(labels))
        };
        let scopes = [
            (Arc::clone(&name_key.0), Some(change.namespace.to_owned())),
            (Arc::clone(&name_key.0), None),
        ];
        for scope in &scopes {
            let Some(parents) = self.by_selector.get(scope) else {
                continue;
            };
            for (uid, selectors) in parents {
                if selectors.iter().any(matches) {
                    uids.insert(uid);
                }
            }
        }
        uids.into_iter()
            .filter_map(|uid| self.of_parent.get(uid))
            .map(ParentReads::request)
            .collect()
    }

    /// Parents with at least one reading, and (parent, object name or selector) pairs recorded.
    pub fn size(&self) -> (usize, usize) {
        let pairs = self
            .of_parent
            .values()
            .map(|reads| reads.names.len() + reads.selectors.len())
            .sum();
        (self.of_parent.len(), pairs)
    }
}

impl Readers {
    /// The shared `ApiResource` of a parent kind.
    fn kind_of(&mut self, resource: &ApiResource) -> Arc<ApiResource> {
        if let Some(kind) = self.kinds.iter().find(|kind| ***kind == *resource) {
            return Arc::clone(kind);
        }
        let kind = Arc::new(resource.clone());
        self.kinds.push(Arc::clone(&kind));
        kind
    }
}

impl ParentReads {
    /// The parent's reconcile request.
    fn request(&self) -> ObjectRef<DynamicObject> {
        let request = ObjectRef::new_with(&self.name, (*self.kind).clone());
        match &self.namespace {
            Some(namespace) => request.within(namespace),
            None => request,
        }
    }
}

/// Halves `map`'s capacity once it is less than a quarter full (and not small): amortised,
/// like its growth.
fn shrink_if_mostly_empty<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    const SMALL: usize = 1024;
    if map.capacity() > SMALL && map.len() * 4 < map.capacity() {
        map.shrink_to(map.capacity() / 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(name: &str) -> ObjectRef<DynamicObject> {
        let resource = ApiResource {
            group: "x.io".into(),
            version: "v1".into(),
            api_version: "x.io/v1".into(),
            kind: "Site".into(),
            plural: "sites".into(),
        };
        ObjectRef::new_with(name, resource).within("ns")
    }

    fn names(names: &[&str]) -> Reading {
        Reading {
            kind: Arc::from("/v1/ConfigMap"),
            namespace: Some("ns".into()),
            selection: Selection::Names(names.iter().map(|n| n.to_string()).collect()),
        }
    }

    fn labels(selector: &str, namespace: Option<&str>) -> Reading {
        Reading {
            kind: Arc::from("/v1/ConfigMap"),
            namespace: namespace.map(str::to_owned),
            selection: Selection::Labels(super::super::selector::parse(selector).unwrap()),
        }
    }

    fn change<'a>(
        namespace: &'a str,
        name: &'a str,
        before: Option<&'a BTreeMap<String, String>>,
        after: Option<&'a BTreeMap<String, String>>,
    ) -> Change<'a> {
        Change {
            kind: "/v1/ConfigMap",
            namespace,
            name,
            labels_before: before,
            labels_after: after,
        }
    }

    fn who(readers: &Readers, change: &Change<'_>) -> Vec<String> {
        let mut names: Vec<String> = readers
            .readers_of(change)
            .into_iter()
            .map(|p| p.name)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_change_reaches_exactly_the_parents_that_read_the_object() {
        let mut readers = Readers::default();
        readers.record("u-a", parent("a"), &[names(&["shared", "only-a"])]);
        readers.record("u-b", parent("b"), &[names(&["shared"])]);
        for i in 0..1000 {
            readers.record(
                &format!("u-{i}"),
                parent(&format!("other-{i}")),
                &[names(&[&format!("cm-{i}")])],
            );
        }
        assert_eq!(
            who(&readers, &change("ns", "shared", None, None)),
            ["a", "b"]
        );
        assert_eq!(who(&readers, &change("ns", "only-a", None, None)), ["a"]);
        assert!(who(&readers, &change("other-ns", "shared", None, None)).is_empty());
        assert!(who(&readers, &change("ns", "nobody-reads", None, None)).is_empty());
    }

    #[test]
    fn recording_again_replaces_and_forgetting_removes_every_entry() {
        let mut readers = Readers::default();
        readers.record(
            "u-a",
            parent("a"),
            &[names(&["one"]), labels("team=x", Some("ns"))],
        );
        readers.record("u-a", parent("a"), &[names(&["two"])]);
        assert!(who(&readers, &change("ns", "one", None, None)).is_empty());
        assert_eq!(who(&readers, &change("ns", "two", None, None)), ["a"]);
        readers.forget("u-a");
        assert!(who(&readers, &change("ns", "two", None, None)).is_empty());
        assert!(readers.by_name.is_empty() && readers.by_selector.is_empty());
        assert_eq!(readers.size(), (0, 0));
    }

    #[test]
    fn a_selector_sees_objects_that_start_or_stop_matching() {
        let mut readers = Readers::default();
        readers.record("u-a", parent("a"), &[labels("team=x", Some("ns"))]);
        readers.record("u-all", parent("all"), &[labels("team=x", None)]);
        let x: BTreeMap<String, String> = [("team".to_string(), "x".to_string())].into();
        let y: BTreeMap<String, String> = [("team".to_string(), "y".to_string())].into();
        assert_eq!(
            who(&readers, &change("ns", "c", None, Some(&x))),
            ["a", "all"]
        );
        assert_eq!(
            who(&readers, &change("ns", "c", Some(&x), Some(&y))),
            ["a", "all"]
        );
        assert!(who(&readers, &change("ns", "c", Some(&y), Some(&y))).is_empty());
        assert_eq!(
            who(&readers, &change("elsewhere", "c", None, Some(&x))),
            ["all"]
        );
    }
}
