//! The kinds the guests of one host reconcile and create, as a graph: parent kind → child kinds,
//! over every guest. Two rules are checked on it, because each guest can be legal alone and the
//! pair still harmful:
//! - **No cycle.** Guest A (Probe → Gizmo) and guest B (Gizmo → Probe): every Probe makes a
//!   Gizmo, which makes a Probe, which makes a Gizmo… without end (a fork loop).
//! - **One resource, one name.** Kubernetes serves some resources under two API groups (Ingress
//!   as `networking.k8s.io` and, up to 1.21, `extensions`; Event as core `v1` and
//!   `events.k8s.io`). One object then shows up in two caches; a guest that declared both would
//!   see its own Ingress as an undesired `extensions` Ingress and prune it, and apply it again,
//!   without end. Kinds are therefore compared as *resources*: group (aliases resolved through
//!   [`ALIASES`]) and kind, never version.
//!
//! The alias table is written out rather than discovered: the guests' kinds are checked before a
//! cluster is asked (`check` runs offline), and the aliases are a closed list of Kubernetes'
//! own history (custom resources have one group each).

use std::collections::{HashMap, VecDeque};

use kube::api::GroupVersionKind;

/// Resources Kubernetes serves under more than one API group: (the other group, kind, the group
/// the resource belongs to now). From the API deprecation guide
/// (<https://kubernetes.io/docs/reference/using-api/deprecation-guide/>) and the core/`events.k8s.io`
/// Event pair.
pub const ALIASES: [(&str, &str, &str); 7] = [
    ("extensions", "Ingress", "networking.k8s.io"),
    ("extensions", "NetworkPolicy", "networking.k8s.io"),
    ("extensions", "Deployment", "apps"),
    ("extensions", "DaemonSet", "apps"),
    ("extensions", "ReplicaSet", "apps"),
    ("extensions", "PodSecurityPolicy", "policy"),
    ("events.k8s.io", "Event", ""),
];

/// One resource, whatever group or version a guest names it by.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    pub group: String,
    pub kind: String,
}

impl Resource {
    /// The resource `gvk` names, aliases resolved.
    pub fn of(gvk: &GroupVersionKind) -> Self {
        let group = ALIASES
            .iter()
            .find(|(alias, kind, _)| *alias == gvk.group && *kind == gvk.kind)
            .map_or(gvk.group.as_str(), |(_, _, canonical)| canonical);
        Self {
            group: group.to_owned(),
            kind: gvk.kind.clone(),
        }
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.kind)
        } else {
            write!(f, "{}.{}", self.kind, self.group)
        }
    }
}

/// Whether `a` and `b` name one resource under two groups (an alias; the same group is not).
pub fn aliases(a: &GroupVersionKind, b: &GroupVersionKind) -> bool {
    a.group != b.group && Resource::of(a) == Resource::of(b)
}

/// What one guest reconciles and creates.
#[derive(Clone, Debug)]
pub struct GuestKinds {
    pub guest: String,
    pub parent: GroupVersionKind,
    pub children: Vec<GroupVersionKind>,
}

/// One step of a cycle: `guest` reconciles `parent` and creates `child`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub guest: String,
    pub parent: Resource,
    pub child: Resource,
}

/// The cycle `new` would close with `others` (which have none among themselves), as the steps
/// from `new`'s parent kind back to it; `None` when it closes none.
pub fn cycle_closed_by(new: &GuestKinds, others: &[GuestKinds]) -> Option<Vec<Step>> {
    let start = Resource::of(&new.parent);
    let mut edges: HashMap<Resource, Vec<Step>> = HashMap::new();
    for guest in std::iter::once(new).chain(others) {
        let parent = Resource::of(&guest.parent);
        for child in &guest.children {
            edges.entry(parent.clone()).or_default().push(Step {
                guest: guest.guest.clone(),
                parent: parent.clone(),
                child: Resource::of(child),
            });
        }
    }
    // Breadth first, so the cycle reported is a shortest one.
    let mut came_by: HashMap<Resource, Step> = HashMap::new();
    let mut queue = VecDeque::from([start.clone()]);
    while let Some(at) = queue.pop_front() {
        for step in edges.get(&at).into_iter().flatten() {
            if step.child == start {
                let mut path = vec![step.clone()];
                let mut from = step.parent.clone();
                while from != start {
                    let previous = came_by[&from].clone();
                    from = previous.parent.clone();
                    path.push(previous);
                }
                path.reverse();
                return Some(path);
            }
            if !came_by.contains_key(&step.child) {
                came_by.insert(step.child.clone(), step.clone());
                queue.push_back(step.child.clone());
            }
        }
    }
    None
}

/// A cycle as people read it: `Probe (guest a) → Gizmo (guest b) → Probe`.
pub fn describe_cycle(steps: &[Step]) -> String {
    let mut text = String::new();
    for step in steps {
        text.push_str(&format!("{} (guest {}) → ", step.parent, step.guest));
    }
    if let Some(last) = steps.last() {
        text.push_str(&last.child.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(guest: &str, parent: (&str, &str), children: &[(&str, &str)]) -> GuestKinds {
        let gvk = |(group, kind): (&str, &str)| GroupVersionKind::gvk(group, "v1", kind);
        GuestKinds {
            guest: guest.into(),
            parent: gvk(parent),
            children: children.iter().copied().map(gvk).collect(),
        }
    }

    #[test]
    fn two_guests_that_create_each_others_parents_close_a_cycle() {
        let a = kinds("a", ("x.io", "Probe"), &[("x.io", "Gizmo")]);
        let b = kinds(
            "b",
            ("x.io", "Gizmo"),
            &[("x.io", "Probe"), ("", "ConfigMap")],
        );
        assert!(cycle_closed_by(&a, &[]).is_none());
        let cycle = cycle_closed_by(&b, &[a]).unwrap();
        assert_eq!(
            describe_cycle(&cycle),
            "Gizmo.x.io (guest b) → Probe.x.io (guest a) → Gizmo.x.io"
        );
    }

    #[test]
    fn a_longer_cycle_is_found_and_a_chain_is_not_one() {
        let a = kinds("a", ("x.io", "A"), &[("x.io", "B")]);
        let b = kinds("b", ("x.io", "B"), &[("x.io", "C"), ("", "Service")]);
        let c = kinds("c", ("x.io", "C"), &[("apps", "Deployment")]);
        assert!(
            cycle_closed_by(&c, &[a.clone(), b.clone()]).is_none(),
            "a chain"
        );
        let closing = kinds("d", ("apps", "Deployment"), &[("x.io", "A")]);
        let cycle = cycle_closed_by(&closing, &[a, b, c]).unwrap();
        assert_eq!(cycle.len(), 4);
        assert_eq!(cycle[0].guest, "d");
        assert_eq!(cycle[3].child, Resource::of(&closing.parent));
    }

    #[test]
    fn an_alias_closes_a_cycle_too() {
        let a = kinds("a", ("networking.k8s.io", "Ingress"), &[("x.io", "Route")]);
        let b = kinds("b", ("x.io", "Route"), &[("extensions", "Ingress")]);
        assert!(cycle_closed_by(&b, &[a]).is_some());
    }

    #[test]
    fn aliases_are_the_same_resource_under_two_groups() {
        let ingress = |group| GroupVersionKind::gvk(group, "v1", "Ingress");
        assert!(aliases(
            &ingress("networking.k8s.io"),
            &ingress("extensions")
        ));
        assert!(!aliases(&ingress("extensions"), &ingress("extensions")));
        let event = |group| GroupVersionKind::gvk(group, "v1", "Event");
        assert!(aliases(&event(""), &event("events.k8s.io")));
        assert!(!aliases(
            &GroupVersionKind::gvk("x.io", "v1", "Ingress"),
            &ingress("extensions")
        ));
        assert_eq!(
            Resource::of(&ingress("extensions")).to_string(),
            "Ingress.networking.k8s.io"
        );
    }
}
