//! The related objects a guest reads for one parent (contract 0.2): its requirements, asked
//! once per parent generation and guest and kept in the parent's record (the next reconcile of
//! that generation makes no extra call), checked, recorded in the reverse index (so a change of
//! what it reads reconciles it), and answered from the related caches (no API request).
//!
//! # Guarantees
//! - A guest is not called before every kind it reads has listed: it never decides on part of
//!   what it asked for.
//! - A guest whose requirements are not a function of its parent is caught by asking the first
//!   few parents twice (`requirements_probe.rs`), and decides nothing more.
//! - What a guest may ask is bounded: [`MAX_REQUIREMENTS`] requirements, [`MAX_NAMES`] names
//!   each, kinds of its manifest only, a namespaced parent's own namespace only; and what it is given is
//!   bounded by its limits (count and bytes), beyond which the reconcile fails as transient with
//!   nothing applied or pruned.

use std::collections::HashSet;
use std::sync::Arc;

use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::reflector::ObjectRef;

use crate::cluster::related::{Reading, Selection, kind_key, selector};
use crate::cluster::{ResolvedKind, display_gvk};
use crate::sandbox::{self, Requirement};

use super::Context;
use super::active_guest::ActiveGuest;
use super::decide::on_guest_thread;
use super::error::Failure;
use super::observe::{guest_json, parent_key};
use super::parent_state::{KeptRequirements, ParentRecord};

/// Most requirements one parent may have.
pub const MAX_REQUIREMENTS: usize = 16;
/// Most names one requirement may list.
pub const MAX_NAMES: usize = 256;
/// Longest requirement key.
const MAX_KEY_BYTES: usize = 63;

/// The objects each requirement selected, `(key, objects as JSON text)`, in the order of the
/// requirements; empty for a guest that reads nothing.
///
/// # Errors
/// [`Failure::Requirements`] for requirements that break the rules, [`Failure::NotSynced`]
/// while a related kind lists, [`Failure::RelatedTooLarge`] beyond the guest's limits, and the
/// failures of a guest call.
pub async fn related(
    ctx: &Context,
    record: &ParentRecord<'_>,
    guest: &ActiveGuest,
    namespace: Option<&str>,
    uid: &str,
) -> Result<Vec<(String, Vec<String>)>, Failure> {
    if guest.related_kinds.is_empty() {
        // A guest swapped in that reads nothing: what the parent read before is no reason to
        // reconcile it any more.
        if record.take_requirements().is_some() {
            ctx.related.forget_reader(uid);
        }
        return Ok(Vec::new());
    }
    if let Some(verdict) = guest.requirements_probe.verdict() {
        return Err(Failure::Unsettled(verdict.to_owned()));
    }
    let parent = record.parent();
    let generation = parent.metadata.generation.unwrap_or_default();
    let identity = guest.guest.identity();
    let kept = match record.requirements(generation, identity) {
        Some(kept) => kept,
        None => {
            let asked = ask(ctx, guest, parent).await?;
            if guest.requirements_probe.take() && ask(ctx, guest, parent).await? != asked {
                let verdict = guest.requirements_probe.disagreed(&parent_key(parent));
                tracing::warn!(guest = %guest.summary(), %verdict, "a guest's requirements are not a function of its parent; its parents that read related objects are not reconciled until it is replaced");
                return Err(Failure::Unsettled(verdict.to_owned()));
            }
            let readings = check(&asked, &guest.related_kinds, namespace)?;
            let kept = Arc::new(KeptRequirements {
                generation,
                guest: identity.to_owned(),
                readings,
            });
            let readings: Vec<Reading> = kept.readings.iter().map(|(_, r, _)| r.clone()).collect();
            record.keep_requirements(Arc::clone(&kept), || {
                ctx.related
                    .record_reader(uid, reconcile_request(parent, ctx), &readings);
            });
            kept
        }
    };
    answer(ctx, guest, &kept.readings)
}

/// What `guest` would read for `parent` (in `namespace`), asked afresh and answered from the
/// related caches, and nothing kept: no parent state, no reverse index, no probe. For a preview
/// (`preview.rs`), whose guest is not the one serving the parent.
///
/// # Errors
/// As [`related`].
pub async fn read_only(
    ctx: &Context,
    guest: &ActiveGuest,
    parent: &DynamicObject,
    namespace: Option<&str>,
) -> Result<Vec<(String, Vec<String>)>, Failure> {
    if guest.related_kinds.is_empty() {
        return Ok(Vec::new());
    }
    let asked = ask(ctx, guest, parent).await?;
    let readings = check(&asked, &guest.related_kinds, namespace)?;
    answer(ctx, guest, &readings)
}

/// The objects `readings` select, as the guest is given them, within its limits.
fn answer(
    ctx: &Context,
    guest: &ActiveGuest,
    readings: &[(String, Reading, Arc<ResolvedKind>)],
) -> Result<Vec<(String, Vec<String>)>, Failure> {
    let reads: Vec<Arc<ResolvedKind>> = readings.iter().map(|(_, _, k)| Arc::clone(k)).collect();
    if !ctx.related.synced(&reads) {
        // The first parent to read a kind starts its watch; each retries once it listed.
        ctx.related
            .start_watching(&ctx.parent_kind.display_name(), &reads);
        return Err(Failure::NotSynced);
    }
    let limits = guest.guest.limits();
    let (mut count, mut bytes) = (0usize, 0usize);
    let mut sets = Vec::with_capacity(readings.len());
    for (key, reading, kind) in readings {
        let objects = ctx.related.select(reading).ok_or(Failure::NotSynced)?;
        let mut texts = Vec::with_capacity(objects.len());
        for object in objects {
            let text = guest_json(&object, kind);
            count += 1;
            bytes += text.len();
            if count > limits.max_related_objects || bytes > limits.max_related_bytes {
                return Err(Failure::RelatedTooLarge(format!(
                    "the guest's requirements select more than {} related objects or {} KiB of \
                     them (--guest-max-related-objects, --guest-max-related-kib); nothing was \
                     decided, applied or pruned",
                    limits.max_related_objects,
                    limits.max_related_bytes >> 10
                )));
            }
            texts.push(text);
        }
        sets.push((key.clone(), texts));
    }
    Ok(sets)
}

/// The reconcile request of `parent`, as the reverse index sends it.
fn reconcile_request(parent: &DynamicObject, ctx: &Context) -> ObjectRef<DynamicObject> {
    let request = ObjectRef::new_with(&parent.name_any(), ctx.parent_kind.resource.clone());
    match parent.namespace() {
        Some(namespace) => request.within(&namespace),
        None => request,
    }
}

/// Calls the guest's `requirements`, as `decide` calls `reconcile`.
async fn ask(
    ctx: &Context,
    guest: &ActiveGuest,
    parent: &DynamicObject,
) -> Result<Vec<Requirement>, Failure> {
    let parent_json = guest_json(parent, &ctx.parent_kind);
    let key = parent_key(parent);
    on_guest_thread(ctx, guest, move |loaded| {
        loaded.requirements(&parent_json, &key)
    })
    .await?
    .map_err(Failure::from)
}

/// The requirements as readings of the caches, with their keys and kinds, for a parent in
/// `namespace` (`None`: a cluster-scoped parent, which may read in any namespace).
///
/// # Errors
/// [`Failure::Requirements`] naming the requirement and the rule.
pub fn check(
    requirements: &[Requirement],
    related_kinds: &[Arc<ResolvedKind>],
    namespace: Option<&str>,
) -> Result<Vec<(String, Reading, Arc<ResolvedKind>)>, Failure> {
    let refuse = |message: String| Err(Failure::Requirements(message));
    if requirements.len() > MAX_REQUIREMENTS {
        return refuse(format!(
            "{} requirements, at most {MAX_REQUIREMENTS} allowed",
            requirements.len()
        ));
    }
    let mut keys = HashSet::new();
    let mut readings = Vec::with_capacity(requirements.len());
    for requirement in requirements {
        let key = &requirement.key;
        if key.is_empty() || key.len() > MAX_KEY_BYTES {
            return refuse(format!(
                "requirement key {key:?} must be 1 to {MAX_KEY_BYTES} bytes"
            ));
        }
        if !keys.insert(key.as_str()) {
            return refuse(format!("requirement key {key:?} is used twice"));
        }
        let Some(kind) = related_kinds
            .iter()
            .find(|kind| kind.gvk == requirement.kind)
        else {
            return refuse(format!(
                "requirement {key:?} reads {}, which is not among the manifest's related kinds",
                display_gvk(&requirement.kind)
            ));
        };
        let read_in = reading_namespace(requirement, kind, namespace)?;
        let selection = match &requirement.selection {
            sandbox::Selection::Names(names) => {
                if names.len() > MAX_NAMES {
                    return refuse(format!(
                        "requirement {key:?} names {} objects, at most {MAX_NAMES} allowed",
                        names.len()
                    ));
                }
                if let Some(bad) = names.iter().find(|n| n.is_empty() || n.len() > 253) {
                    return refuse(format!(
                        "requirement {key:?} names {bad:?}, which is no object name"
                    ));
                }
                Selection::Names(names.clone())
            }
            sandbox::Selection::LabelSelector(text) => Selection::Labels(
                selector::parse(text)
                    .map_err(|e| Failure::Requirements(format!("requirement {key:?}: {e}")))?,
            ),
        };
        let reading = Reading {
            kind: Arc::from(kind_key(&kind.gvk)),
            namespace: read_in,
            selection,
        };
        readings.push((key.clone(), reading, Arc::clone(kind)));
    }
    Ok(readings)
}

/// Where `requirement` reads `kind` for a parent in `namespace` (`None`: cluster-scoped): the
/// parent's namespace, the one it names (a cluster-scoped parent only), `None` for a
/// cluster-scoped parent's selector across every namespace, and `Some("")` for a cluster-scoped
/// kind.
///
/// # Errors
/// [`Failure::Requirements`]: a namespace named by a namespaced parent, or names of a namespaced
/// kind without one.
fn reading_namespace(
    requirement: &Requirement,
    kind: &ResolvedKind,
    namespace: Option<&str>,
) -> Result<Option<String>, Failure> {
    let key = &requirement.key;
    let wanted = requirement.namespace.as_deref().filter(|ns| !ns.is_empty());
    if let (Some(wanted), Some(_)) = (wanted, namespace) {
        return Err(Failure::Requirements(format!(
            "requirement {key:?} reads in namespace {wanted:?}; a namespaced parent reads only \
             in its own namespace: leave the namespace out"
        )));
    }
    let by_name = matches!(requirement.selection, sandbox::Selection::Names(_));
    if kind.namespaced && by_name && namespace.or(wanted).is_none() {
        return Err(Failure::Requirements(format!(
            "requirement {key:?} names objects of {} but no namespace; a cluster-scoped parent \
             names the namespace of the objects it reads by name",
            kind.display_name()
        )));
    }
    Ok(if kind.namespaced {
        namespace.or(wanted).map(str::to_owned)
    } else {
        Some(String::new())
    })
}

#[cfg(test)]
mod tests {
    use kube::api::{ApiResource, GroupVersionKind};

    use super::*;

    fn config_maps() -> Vec<Arc<ResolvedKind>> {
        let gvk = GroupVersionKind::gvk("", "v1", "ConfigMap");
        vec![Arc::new(ResolvedKind {
            resource: ApiResource::from_gvk(&gvk),
            gvk,
            namespaced: true,
        })]
    }

    fn names(key: &str, names: &[&str]) -> Requirement {
        Requirement {
            key: key.into(),
            kind: GroupVersionKind::gvk("", "v1", "ConfigMap"),
            namespace: None,
            selection: sandbox::Selection::Names(names.iter().map(|n| n.to_string()).collect()),
        }
    }

    fn refusal(requirements: &[Requirement]) -> String {
        match check(requirements, &config_maps(), Some("ns")) {
            Err(Failure::Requirements(message)) => message,
            Err(other) => panic!("not a requirements failure: {other}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn requirements_are_read_in_the_parents_namespace() {
        let readings = check(&[names("config", &["a", "b"])], &config_maps(), Some("ns")).unwrap();
        let (key, reading, _) = &readings[0];
        assert_eq!(key, "config");
        assert_eq!(reading.namespace.as_deref(), Some("ns"));
        assert_eq!(&*reading.kind, "/v1/ConfigMap");
    }

    #[test]
    fn a_cluster_scoped_parent_reads_where_it_says_or_selects_everywhere() {
        let mut defaults = names("defaults", &["tenant-defaults"]);
        defaults.namespace = Some("platform".into());
        let mut teams = names("teams", &[]);
        teams.selection = sandbox::Selection::LabelSelector("team".into());
        let readings = check(&[defaults, teams], &config_maps(), None).unwrap();
        assert_eq!(readings[0].1.namespace.as_deref(), Some("platform"));
        assert_eq!(
            readings[1].1.namespace, None,
            "a selector across namespaces"
        );
        let nowhere = check(&[names("defaults", &["x"])], &config_maps(), None);
        assert!(
            matches!(&nowhere, Err(Failure::Requirements(m)) if m.contains("but no namespace")),
            "names without a namespace are refused"
        );
    }

    // Attack: requirements that would read across namespaces, kinds the admin never allowed,
    // or so much that the index and the guest's input grow without bound.
    #[test]
    fn requirements_that_break_the_rules_are_refused_naming_the_rule() {
        let mut elsewhere = names("config", &["a"]);
        elsewhere.namespace = Some("kube-system".into());
        let mut secret = names("creds", &["a"]);
        secret.kind = GroupVersionKind::gvk("", "v1", "Secret");
        let mut bad_selector = names("team", &[]);
        bad_selector.selection = sandbox::Selection::LabelSelector("tier in (db".into());
        let many: Vec<String> = (0..=MAX_NAMES).map(|i| format!("n{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let too_many: Vec<Requirement> = (0..=MAX_REQUIREMENTS)
            .map(|i| names(&format!("k{i}"), &["a"]))
            .collect();
        for (requirements, expected) in [
            (vec![elsewhere], "reads only in its own namespace"),
            (
                vec![secret],
                "Secret.v1, which is not among the manifest's related kinds",
            ),
            (vec![bad_selector], "leaves a `(` open"),
            (
                vec![names("a", &["x"]), names("a", &["y"])],
                "key \"a\" is used twice",
            ),
            (vec![names("", &["x"])], "must be 1 to 63 bytes"),
            (vec![names("big", &many)], "names 257 objects, at most 256"),
            (vec![names("empty", &[""])], "which is no object name"),
            (too_many, "17 requirements, at most 16"),
        ] {
            let message = refusal(&requirements);
            assert!(message.contains(expected), "{message}");
        }
    }
}
