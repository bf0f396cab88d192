//! The parent kinds the child caches serve, and how a child event reaches its parent: a child's
//! controller owner reference names the parent's kind and name; when that kind is served, the
//! parent is sent to that kind's controller as a reconcile request. One set of child caches can
//! so serve every parent kind of the host.

use futures::channel::mpsc::UnboundedSender;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::ObjectRef;

use super::child_cache::{ChildCaches, ServedParentKind};
use super::kinds::ResolvedKind;
use super::ownership::{Holder, ResourceName};

fn key(resource: &ApiResource) -> (String, String) {
    (resource.api_version.clone(), resource.kind.clone())
}

fn resource_name(kind: &ResolvedKind, namespace: &str, name: &str) -> ResourceName {
    ResourceName {
        group: kind.gvk.group.clone(),
        kind: kind.gvk.kind.clone(),
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

impl ChildCaches {
    /// Sends the parents of `kind` touched by child events to `triggers`.
    pub fn serve_parent_kind(
        &self,
        kind: &ResolvedKind,
        triggers: UnboundedSender<ObjectRef<DynamicObject>>,
    ) {
        let served = ServedParentKind {
            resource: kind.resource.clone(),
            namespaced: kind.namespaced,
            triggers,
        };
        self.parents
            .write()
            .expect("parent kinds lock poisoned")
            .insert(key(&kind.resource), served);
    }

    /// Stops sending reconcile requests for `resource`'s kind (its controller stopped).
    pub fn stop_serving_parent_kind(&self, resource: &ApiResource) {
        self.parents
            .write()
            .expect("parent kinds lock poisoned")
            .remove(&key(resource));
    }

    /// The parent that `holder` names, when its kind is served: in `namespace` (a namespaced
    /// parent's children live in its own), or in none for a cluster-scoped parent kind.
    pub(super) fn parent_ref(
        &self,
        holder: &Holder,
        namespace: &str,
    ) -> Option<ObjectRef<DynamicObject>> {
        let Holder::Controller {
            api_version,
            kind,
            name,
            ..
        } = holder
        else {
            return None;
        };
        let parents = self.parents.read().expect("parent kinds lock poisoned");
        let served = parents.get(&(api_version.clone(), kind.clone()))?;
        let parent = ObjectRef::new_with(name, served.resource.clone());
        Some(if served.namespaced {
            parent.within(namespace)
        } else {
            parent
        })
    }

    /// The served parent controlling `child`, if any.
    pub(super) fn parent_of(&self, child: &DynamicObject) -> Option<ObjectRef<DynamicObject>> {
        self.parent_ref(
            &Holder::of(&child.metadata),
            child.metadata.namespace.as_deref().unwrap_or_default(),
        )
    }

    /// Asks the controller of `parent`'s kind to reconcile it.
    pub(super) fn reconcile_parent(&self, parent: ObjectRef<DynamicObject>) {
        let parents = self.parents.read().expect("parent kinds lock poisoned");
        if let Some(served) = parents.get(&key(&parent.dyntype)) {
            // The receiver only goes away when that controller shuts down.
            let _ = served.triggers.unbounded_send(parent);
        }
    }

    /// Reconciles `parent` again as soon as the object `namespace/name` of `kind` is deleted,
    /// whether the host's child of another parent or an object the host does not manage.
    pub fn wait_for_name(
        &self,
        kind: &ResolvedKind,
        namespace: &str,
        name: &str,
        parent: ObjectRef<DynamicObject>,
    ) {
        self.waiters
            .wait(resource_name(kind, namespace, name), parent);
    }

    /// Reconciles the parents that waited for `namespace/name` of `kind`.
    pub(super) fn name_freed(&self, kind: &ResolvedKind, namespace: &str, name: &str) {
        for parent in self.waiters.freed(&resource_name(kind, namespace, name)) {
            self.reconcile_parent(parent);
        }
    }
}
