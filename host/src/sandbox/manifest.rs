//! What a guest says it is (its manifest: name, version, parent kind, child kinds, related
//! kinds) and the checks it must pass before the host loads it, at start and on every hot swap.

use kube::api::GroupVersionKind;

use super::bindings::Contract;
use crate::gvk::display_gvk;

/// A guest's self-description, checked and converted to host types.
#[derive(Clone, Debug)]
pub struct GuestManifest {
    /// The contract version the guest was built against.
    pub contract: Contract,
    pub name: String,
    pub version: String,
    pub parent: GroupVersionKind,
    pub children: Vec<GroupVersionKind>,
    /// Kinds the guest may read besides its parent and children (contract 0.2; none for 0.1).
    pub related: Vec<GroupVersionKind>,
}

impl GuestManifest {
    /// What a guest is until it has described itself.
    pub(super) fn placeholder(contract: Contract) -> Self {
        Self {
            contract,
            name: String::new(),
            version: String::new(),
            parent: GroupVersionKind::gvk("", "", ""),
            children: Vec::new(),
            related: Vec::new(),
        }
    }
}

/// A manifest as a guest returned it, in any contract version, not yet checked.
#[derive(Clone, Debug)]
pub(super) struct Described {
    pub name: String,
    pub version: String,
    pub parent: DescribedKind,
    pub children: Vec<DescribedKind>,
    pub related: Vec<DescribedKind>,
}

/// A group/version/kind as a guest returned it, not yet checked.
#[derive(Clone, Debug)]
pub(super) struct DescribedKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

/// Most bytes of a guest's name or version: they reach metric labels, logs, Events and every
/// parent's `status.reconciler`, so a 4 MB name would make each of those 4 MB.
const MAX_GUEST_NAME_BYTES: usize = 63;
/// Most child kinds one guest may declare (each costs watches and caches).
const MAX_CHILD_KINDS: usize = 64;
/// Most related kinds one guest may declare (each costs a watch and a cache).
const MAX_RELATED_KINDS: usize = 16;

/// Checks what a guest says it is. Kinds are compared as *resources* (group and kind), not by
/// version: `v1 Probe` and `v2 Probe` are the same objects served twice, so a guest declaring
/// its parent kind as a child in another version would create its own parents without end, and
/// a child kind declared in two versions would be applied in one and pruned in the other.
pub(super) fn check_manifest(
    manifest: Described,
    contract: Contract,
) -> Result<GuestManifest, String> {
    check_label("the name", &manifest.name, MAX_GUEST_NAME_BYTES)?;
    check_label("the version", &manifest.version, MAX_GUEST_NAME_BYTES)?;
    let parent = check_gvk("the parent kind", &manifest.parent)?;
    if manifest.children.len() > MAX_CHILD_KINDS {
        return Err(format!(
            "it declares {} child kinds; at most {MAX_CHILD_KINDS} are allowed",
            manifest.children.len()
        ));
    }
    let same_resource =
        |a: &GroupVersionKind, b: &GroupVersionKind| a.group == b.group && a.kind == b.kind;
    let mut children: Vec<GroupVersionKind> = Vec::with_capacity(manifest.children.len());
    for child in &manifest.children {
        let gvk = check_gvk("child kind", child)?;
        if same_resource(&gvk, &parent) {
            return Err(format!(
                "the parent kind {} is also declared as a child kind ({}): a parent would create \
                 objects of its own kind, which would be reconciled as parents in turn",
                display_gvk(&parent),
                display_gvk(&gvk),
            ));
        }
        if let Some(earlier) = children.iter().find(|c| same_resource(c, &gvk)) {
            return Err(if earlier.version == gvk.version {
                format!("child kind {} is declared twice", display_gvk(&gvk))
            } else {
                format!(
                    "child kind {} is declared in two versions ({} and {}); declare the one \
                     version the guest writes",
                    gvk.kind, earlier.version, gvk.version
                )
            });
        }
        children.push(gvk);
    }
    let related = check_related(&manifest.related, &parent)?;
    Ok(GuestManifest {
        contract,
        name: manifest.name,
        version: manifest.version,
        parent,
        children,
        related,
    })
}

/// The related kinds: plausible, each once, and not the parent kind (a guest reads its parent in
/// `observed.parent`; reading other parents of its own kind would make every parent's status
/// write re-run the parents that read it). A child kind may be read as related too: the objects
/// it does not own, through the same shared watch.
fn check_related(
    related: &[DescribedKind],
    parent: &GroupVersionKind,
) -> Result<Vec<GroupVersionKind>, String> {
    if related.len() > MAX_RELATED_KINDS {
        return Err(format!(
            "it declares {} related kinds; at most {MAX_RELATED_KINDS} are allowed",
            related.len()
        ));
    }
    let mut kinds: Vec<GroupVersionKind> = Vec::with_capacity(related.len());
    for kind in related {
        let gvk = check_gvk("related kind", kind)?;
        if gvk.group == parent.group && gvk.kind == parent.kind {
            return Err(format!(
                "the parent kind {} is also declared as a related kind: a guest reads its parent \
                 in `observed.parent` and no other parent of its kind",
                display_gvk(parent)
            ));
        }
        if kinds
            .iter()
            .any(|k| k.group == gvk.group && k.kind == gvk.kind)
        {
            return Err(format!(
                "related kind {} is declared twice (in any versions)",
                display_gvk(&gvk)
            ));
        }
        kinds.push(gvk);
    }
    Ok(kinds)
}

/// A name-like string: not empty, at most `max` bytes, printable ASCII without spaces (it ends up
/// in metric labels, log lines and statuses).
fn check_label(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    if value.len() > max {
        return Err(format!(
            "{what} is {} bytes long; at most {max} are allowed",
            value.len()
        ));
    }
    if !value.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "{what} {value:?} has characters other than printable ASCII without spaces"
        ));
    }
    Ok(())
}

/// A group/version/kind of plausible shape and size (Kubernetes' own limits: a group is a DNS
/// subdomain, a version and a kind at most 63 characters).
fn check_gvk(what: &str, gvk: &DescribedKind) -> Result<GroupVersionKind, String> {
    let shown = || {
        let cut = |s: &str| s.chars().take(64).collect::<String>();
        format!(
            "{}/{}/{}",
            cut(&gvk.group),
            cut(&gvk.version),
            cut(&gvk.kind)
        )
    };
    if gvk.version.is_empty() || gvk.kind.is_empty() {
        return Err(format!("{what} {:?} lacks a version or kind", shown()));
    }
    let fits = |s: &str, max: usize, extra: &[char]| {
        s.len() <= max
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(&c))
    };
    if !fits(&gvk.group, 253, &['.', '-'])
        || !fits(&gvk.version, 63, &[])
        || !fits(&gvk.kind, 63, &[])
    {
        return Err(format!(
            "{what} {:?} is not a valid group/version/kind (a DNS subdomain group, an \
             alphanumeric version and kind of at most 63 characters)",
            shown()
        ));
    }
    Ok(GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gvk(group: &str, version: &str, kind: &str) -> DescribedKind {
        DescribedKind {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    fn manifest(children: Vec<DescribedKind>) -> Described {
        Described {
            name: "probe".into(),
            version: "0.1.0".into(),
            parent: gvk("example.com", "v1", "Probe"),
            children,
            related: Vec::new(),
        }
    }

    fn check_manifest(manifest: &Described) -> Result<GuestManifest, String> {
        super::check_manifest(manifest.clone(), Contract::V0_2)
    }

    #[test]
    fn a_plain_manifest_passes() {
        let checked = check_manifest(&manifest(vec![gvk("apps", "v1", "Deployment")])).unwrap();
        assert_eq!(checked.children.len(), 1);
    }

    #[test]
    fn the_parent_as_a_child_is_refused_in_any_version() {
        for version in ["v1", "v2"] {
            let error =
                check_manifest(&manifest(vec![gvk("example.com", version, "Probe")])).unwrap_err();
            assert!(error.contains("also declared as a child kind"), "{error}");
        }
    }

    #[test]
    fn one_resource_declared_twice_is_refused_in_any_versions() {
        let error = check_manifest(&manifest(vec![
            gvk("networking.k8s.io", "v1", "Ingress"),
            gvk("networking.k8s.io", "v1beta1", "Ingress"),
        ]))
        .unwrap_err();
        assert!(error.contains("two versions (v1 and v1beta1)"), "{error}");
        let error = check_manifest(&manifest(vec![gvk("", "v1", "ConfigMap"); 2])).unwrap_err();
        assert!(error.contains("declared twice"), "{error}");
        // Same kind name, other group: another resource.
        assert!(
            check_manifest(&manifest(vec![
                gvk("example.com", "v1", "Deployment"),
                gvk("apps", "v1", "Deployment"),
            ]))
            .is_ok()
        );
    }

    #[test]
    fn oversized_or_odd_strings_are_refused() {
        let mut long_name = manifest(vec![]);
        long_name.name = "n".repeat(4 << 20);
        let error = check_manifest(&long_name).unwrap_err();
        assert!(error.contains("4194304 bytes long"), "{error}");
        assert!(error.len() < 200, "the error does not repeat the name");
        let mut spaced = manifest(vec![]);
        spaced.version = "1.0 beta".into();
        assert!(check_manifest(&spaced).is_err());
        let mut newline = manifest(vec![]);
        newline.name = "a\nb".into();
        assert!(check_manifest(&newline).is_err());
        for bad in [
            gvk("example.com", "v1", &"K".repeat(64)),
            gvk("exa mple.com", "v1", "Probe"),
            gvk("example.com", "v1/2", "Probe"),
            gvk(&"g".repeat(254), "v1", "Probe"),
        ] {
            let error = check_manifest(&manifest(vec![bad])).unwrap_err();
            assert!(error.len() < 400, "{error}");
        }
        let many = manifest(
            (0..65)
                .map(|n| gvk("example.com", "v1", &format!("K{n}")))
                .collect(),
        );
        assert!(
            check_manifest(&many)
                .unwrap_err()
                .contains("65 child kinds")
        );
    }
}
