//! Whether a guest may serve in this host: the one place that decides, given the guest's
//! manifest, its settings, the host's rules (the admin's flags) and **the other guests of the
//! host**. `run`, the folder's supervisor, the hot swap and `check` all ask it, so `check DIR`
//! says what `run --guests DIR` would do.
//!
//! # Rules
//! - Settings only narrow the flags (`settings.rs`).
//! - Every declared child kind is allowed (`--allowed-child-kind`, narrowed by the settings).
//! - A parent kind Kubernetes serves itself needs `--allow-builtin-parent-kind`.
//! - One guest per parent kind; one resource is named by one group across the host (aliases,
//!   `kind_graph.rs`), within a guest and between guests.
//! - The graph parent kind → child kinds over every guest has no cycle: the guest that would
//!   close one is refused, naming it, and the guests already serving keep serving.
//!
//! A refusal caused by other guests ([`Refusal::blocked_by`]) may lift when they go; the
//! supervisor tries such a guest again then.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use super::allowlist::KindAllowlist;
use super::kind_graph::{self, GuestKinds, Resource};
use super::rules::HostRules;
use super::settings::{self, GuestSettings, SettingsError};
use crate::cluster::kinds;
use crate::gvk::display_gvk;
use crate::metrics::RefusalReason;
use crate::sandbox::GuestManifest;
use kube::api::GroupVersionKind;

/// Why a guest may not serve. Each message names what was refused and what would allow it.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// Its settings file cannot be used, or would widen the host's flags.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// It reconciles one of Kubernetes' own kinds and the host was not started to allow that.
    #[error("{0}")]
    BuiltinParent(String),
    /// It declares a child kind the host's flag or its own settings do not allow.
    #[error("the guest declares child kind {kind}, which {by} does not allow (allowed: {allowed})")]
    ChildKindNotAllowed {
        kind: String,
        by: String,
        allowed: String,
    },
    /// It declares a kind to read (contract 0.2 `related`) that the host's flag or its own
    /// settings do not allow; Secrets need the flag to name them.
    #[error(
        "the guest declares related kind {kind} (the manifest's `related`), which {by} does not \
         allow (allowed: {allowed}){hint}"
    )]
    RelatedKindNotAllowed {
        kind: String,
        by: String,
        allowed: String,
        hint: &'static str,
    },
    /// It names one resource by two API groups, among its own kinds.
    #[error(
        "the guest declares {first} and {second}, one resource under two API groups: each object \
         would be seen twice and pruned as undesired under the name it was not applied by; \
         declare it once"
    )]
    AliasedOwnKinds { first: String, second: String },
    /// It names a resource by another group than another guest of the host does.
    #[error(
        "the guest declares {kind}, which the guest {holder} of this host declares as {other}: \
         one resource under two API groups; declare it as {other} too"
    )]
    AliasedAcrossGuests {
        kind: String,
        other: String,
        holder: String,
    },
    /// Another guest of the host reconciles its parent kind.
    #[error(
        "it reconciles {kind}, which the guest {holder} of this host already reconciles; the \
         first keeps serving (remove one of the two; this one starts once the other is gone)"
    )]
    DuplicateParentKind { kind: String, holder: String },
    /// With the other guests, its kinds would form a cycle: parents creating, through each
    /// other, objects of their own kind without end.
    #[error(
        "with the guests of this host its kinds close a cycle ({cycle}): each parent would \
         create, through the others, more of its own kind without end; the guests already \
         serving keep serving (change one guest's kinds, or remove one of them)"
    )]
    Cycle {
        cycle: String,
        /// The other guests on the cycle.
        guests: Vec<String>,
    },
}

impl Refusal {
    /// The `reason` label of `reconciler_guest_refusals_total`.
    pub fn metric_reason(&self) -> RefusalReason {
        match self {
            Self::Settings(_) => RefusalReason::Settings,
            Self::BuiltinParent(_) => RefusalReason::BuiltinParentKind,
            Self::ChildKindNotAllowed { .. } | Self::RelatedKindNotAllowed { .. } => {
                RefusalReason::KindNotAllowed
            }
            Self::AliasedOwnKinds { .. } | Self::AliasedAcrossGuests { .. } => {
                RefusalReason::AliasedKind
            }
            Self::DuplicateParentKind { .. } => RefusalReason::DuplicateParentKind,
            Self::Cycle { .. } => RefusalReason::KindCycle,
        }
    }

    /// The other guests whose kinds caused the refusal: when one of them goes, it may lift.
    pub fn blocked_by(&self) -> Vec<String> {
        match self {
            Self::AliasedAcrossGuests { holder, .. } | Self::DuplicateParentKind { holder, .. } => {
                vec![holder.clone()]
            }
            Self::Cycle { guests, .. } => guests.clone(),
            _ => Vec::new(),
        }
    }
}

/// The rules that concern the guest alone: its parent kind and its child kinds against the
/// flags and its settings.
///
/// # Errors
/// The first [`Refusal`] that applies.
pub fn admit_alone(
    rules: &HostRules,
    manifest: &GuestManifest,
    settings: &GuestSettings,
) -> Result<(), Refusal> {
    if kinds::is_builtin(&manifest.parent) && !rules.allow_builtin_parent_kind {
        return Err(Refusal::BuiltinParent(kinds::builtin_parent_refused(
            &manifest.parent,
        )));
    }
    // A kind Kubernetes serves cluster-scoped (a Namespace) must be named: "any kind" means
    // any namespaced kind. Known here without a cluster, so `check` says it too; a custom
    // cluster-scoped kind is caught once kinds are resolved (`controller/scopes.rs`).
    let allowed = &settings.allowed_child_kinds;
    if let Some(kind) = manifest.children.iter().find(|kind| {
        !allowed.allows(kind) || (kinds::is_builtin_cluster_scoped(kind) && !allowed.names(kind))
    }) {
        let by = match &settings.file {
            Some(file) if settings.allowed_child_kinds != rules.allowed_child_kinds => {
                format!("its settings {}", file.display())
            }
            _ => "--allowed-child-kind".to_owned(),
        };
        return Err(Refusal::ChildKindNotAllowed {
            kind: display_gvk(kind),
            by,
            allowed: settings.allowed_child_kinds.describe(),
        });
    }
    if let Some(kind) = manifest
        .related
        .iter()
        .find(|kind| !related_kind_allowed(&settings.allowed_related_kinds, kind))
    {
        let by = match &settings.file {
            Some(file) if settings.allowed_related_kinds != rules.allowed_related_kinds => {
                format!("its settings {}", file.display())
            }
            _ => "--allowed-related-kind".to_owned(),
        };
        return Err(Refusal::RelatedKindNotAllowed {
            kind: display_gvk(kind),
            by,
            allowed: settings::describe_related(&settings.allowed_related_kinds),
            hint: if is_secret(kind) {
                "; a guest reads Secrets only when --allowed-related-kind names v1/Secret"
            } else {
                ""
            },
        });
    }
    let own = std::iter::once(&manifest.parent).chain(&manifest.children);
    for (i, first) in own.clone().enumerate() {
        if let Some(second) = own
            .clone()
            .skip(i + 1)
            .find(|k| kind_graph::aliases(first, k))
        {
            return Err(Refusal::AliasedOwnKinds {
                first: display_gvk(first),
                second: display_gvk(second),
            });
        }
    }
    Ok(())
}

/// Whether `allowed` lets a guest read `kind`: `Any` is every kind but Secrets, which only a
/// list naming them allows (a guest that could read every Secret in its parents' namespaces
/// holds every credential there).
fn related_kind_allowed(allowed: &KindAllowlist, kind: &GroupVersionKind) -> bool {
    match allowed {
        KindAllowlist::Any => !is_secret(kind),
        only => only.allows(kind),
    }
}

fn is_secret(kind: &GroupVersionKind) -> bool {
    kind.group.is_empty() && kind.kind == "Secret"
}

/// The guests of one host and the kinds each holds: serving, starting, or waiting for its kinds
/// to be served (a waiting guest keeps its parent kind). Shared by the supervisor and the hot
/// swaps of its guests, which replace their guest's entry when a new file is admitted.
#[derive(Default)]
pub struct Roster {
    guests: Mutex<BTreeMap<String, GuestKinds>>,
}

impl Roster {
    /// Decides whether the guest `name` may serve with `manifest` and `settings`, and if so
    /// records (or replaces) its kinds.
    ///
    /// # Errors
    /// The first [`Refusal`] that applies; the roster is unchanged then.
    pub fn admit(
        &self,
        rules: &HostRules,
        name: &str,
        manifest: &GuestManifest,
        settings: &GuestSettings,
    ) -> Result<(), Refusal> {
        let mut guests = self.guests.lock().unwrap_or_else(PoisonError::into_inner);
        let new = judge(&guests, rules, name, manifest, settings)?;
        guests.insert(name.to_owned(), new);
        Ok(())
    }

    /// Whether the guest `name` could serve with `manifest` in place of what it holds now, as
    /// [`admit`](Self::admit) judges it, without taking its kinds: a shadow candidate is
    /// judged so, beside the guest it would replace.
    ///
    /// # Errors
    /// The first [`Refusal`] that applies.
    pub fn check(
        &self,
        rules: &HostRules,
        name: &str,
        manifest: &GuestManifest,
        settings: &GuestSettings,
    ) -> Result<(), Refusal> {
        let guests = self.guests.lock().unwrap_or_else(PoisonError::into_inner);
        judge(&guests, rules, name, manifest, settings).map(drop)
    }

    /// Forgets the guest `name` (its controller stopped and its file is gone).
    pub fn release(&self, name: &str) {
        self.guests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
    }

    /// Whether the guest `name` holds kinds here.
    pub fn holds(&self, name: &str) -> bool {
        self.guests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(name)
    }
}

/// The kinds `manifest` would hold as the guest `name`, if every rule allows them beside the other
/// guests of `guests`.
fn judge(
    guests: &BTreeMap<String, GuestKinds>,
    rules: &HostRules,
    name: &str,
    manifest: &GuestManifest,
    settings: &GuestSettings,
) -> Result<GuestKinds, Refusal> {
    admit_alone(rules, manifest, settings)?;
    let others: Vec<GuestKinds> = guests
        .values()
        .filter(|guest| guest.guest != name)
        .cloned()
        .collect();
    let new = GuestKinds {
        guest: name.to_owned(),
        parent: manifest.parent.clone(),
        children: manifest.children.clone(),
    };
    check_against(&new, &others)?;
    Ok(new)
}

/// The rules between `new` and the guests already admitted.
fn check_against(new: &GuestKinds, others: &[GuestKinds]) -> Result<(), Refusal> {
    let parent = Resource::of(&new.parent);
    if let Some(holder) = others.iter().find(|g| Resource::of(&g.parent) == parent) {
        return Err(Refusal::DuplicateParentKind {
            kind: display_gvk(&new.parent),
            holder: holder.guest.clone(),
        });
    }
    for kind in std::iter::once(&new.parent).chain(&new.children) {
        for other in others {
            let theirs = std::iter::once(&other.parent).chain(&other.children);
            if let Some(alias) = theirs.into_iter().find(|k| kind_graph::aliases(kind, k)) {
                return Err(Refusal::AliasedAcrossGuests {
                    kind: display_gvk(kind),
                    other: display_gvk(alias),
                    holder: other.guest.clone(),
                });
            }
        }
    }
    if let Some(cycle) = kind_graph::cycle_closed_by(new, others) {
        let mut guests: Vec<String> = cycle
            .iter()
            .map(|step| step.guest.clone())
            .filter(|guest| *guest != new.guest)
            .collect();
        guests.dedup();
        return Err(Refusal::Cycle {
            cycle: kind_graph::describe_cycle(&cycle),
            guests,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use kube::api::GroupVersionKind;

    use crate::guests::KindAllowlist;
    use crate::sandbox::Contract;

    use super::*;

    fn manifest(parent: (&str, &str), children: &[(&str, &str)]) -> GuestManifest {
        let gvk = |(group, kind): (&str, &str)| GroupVersionKind::gvk(group, "v1", kind);
        GuestManifest {
            contract: Contract::V0_2,
            name: "g".into(),
            version: "0.1.0".into(),
            parent: gvk(parent),
            children: children.iter().copied().map(gvk).collect(),
            related: Vec::new(),
        }
    }

    fn settings(rules: &HostRules) -> GuestSettings {
        GuestSettings {
            limits: rules.limits,
            allowed_child_kinds: rules.allowed_child_kinds.clone(),
            allowed_related_kinds: rules.allowed_related_kinds.clone(),
            config: None,
            file: None,
        }
    }

    fn admit(roster: &Roster, name: &str, manifest: &GuestManifest) -> Result<(), Refusal> {
        let rules = HostRules::default();
        roster.admit(&rules, name, manifest, &settings(&rules))
    }

    // Attack: a guest reading every Secret of its parents' namespaces, on a host whose admin
    // never said Secrets may be read.
    #[test]
    fn related_kinds_need_the_hosts_permission_and_secrets_an_explicit_one() {
        let mut reads = manifest(("x.io", "Probe"), &[]);
        reads.related = vec![GroupVersionKind::gvk("", "v1", "ConfigMap")];
        admit(&Roster::default(), "reads", &reads).unwrap();
        reads
            .related
            .push(GroupVersionKind::gvk("", "v1", "Secret"));
        let refusal = admit(&Roster::default(), "reads", &reads).unwrap_err();
        assert!(
            refusal.to_string().contains(
                "declares related kind Secret.v1 (the manifest's `related`), which \
                 --allowed-related-kind does not allow (allowed: any kind but Secrets); a guest \
                 reads Secrets only when --allowed-related-kind names v1/Secret"
            ),
            "{refusal}"
        );
        assert_eq!(refusal.metric_reason(), RefusalReason::KindNotAllowed);
        let secrets = HostRules {
            allowed_related_kinds: KindAllowlist::from_flag(&[
                "v1/ConfigMap".into(),
                "v1/Secret".into(),
            ])
            .unwrap(),
            ..HostRules::default()
        };
        Roster::default()
            .admit(&secrets, "reads", &reads, &settings(&secrets))
            .unwrap();
        let only_maps = HostRules {
            allowed_related_kinds: KindAllowlist::from_flag(&["v1/ConfigMap".into()]).unwrap(),
            ..HostRules::default()
        };
        let refusal = Roster::default()
            .admit(&only_maps, "reads", &reads, &settings(&only_maps))
            .unwrap_err();
        assert!(
            refusal.to_string().contains("(allowed: ConfigMap.v1)"),
            "{refusal}"
        );
    }

    #[test]
    fn a_check_judges_like_admission_and_takes_no_kinds() {
        let roster = Roster::default();
        let rules = HostRules::default();
        let probe = manifest(("x.io", "Probe"), &[("x.io", "Gizmo")]);
        admit(&roster, "a", &probe).unwrap();
        let candidate = manifest(("x.io", "Probe"), &[("x.io", "Widget")]);
        roster
            .check(&rules, "a", &candidate, &settings(&rules))
            .unwrap();
        let refusal = roster
            .check(&rules, "b", &candidate, &settings(&rules))
            .unwrap_err();
        assert!(matches!(refusal, Refusal::DuplicateParentKind { .. }));
        // The roster still holds the first guest's kinds, not the candidate's: a guest of
        // Widgets making Probes would close a cycle with the candidate, not with what serves.
        admit(
            &roster,
            "c",
            &manifest(("x.io", "Widget"), &[("x.io", "Probe")]),
        )
        .unwrap();
        assert!(!roster.holds("b"));
    }

    #[test]
    fn the_guest_that_would_close_a_cycle_is_refused_and_the_first_keeps_its_place() {
        let roster = Roster::default();
        admit(
            &roster,
            "a",
            &manifest(("x.io", "Probe"), &[("x.io", "Gizmo")]),
        )
        .unwrap();
        let refusal = admit(
            &roster,
            "b",
            &manifest(("x.io", "Gizmo"), &[("x.io", "Probe")]),
        )
        .unwrap_err();
        assert!(
            refusal.to_string().contains(
                "close a cycle (Gizmo.x.io (guest b) → Probe.x.io (guest a) → Gizmo.x.io)"
            ),
            "{refusal}"
        );
        assert_eq!(refusal.blocked_by(), ["a"]);
        assert_eq!(refusal.metric_reason(), RefusalReason::KindCycle);
        assert!(roster.holds("a") && !roster.holds("b"));
        roster.release("a");
        admit(
            &roster,
            "b",
            &manifest(("x.io", "Gizmo"), &[("x.io", "Probe")]),
        )
        .unwrap();
    }

    // Attack: Ingress declared as networking.k8s.io and as extensions: 560 prunes and 564
    // re-applies of the one wanted object in 20 s.
    #[test]
    fn one_resource_under_two_groups_is_refused_in_one_guest_and_across_guests() {
        let both = manifest(
            ("x.io", "Site"),
            &[("networking.k8s.io", "Ingress"), ("extensions", "Ingress")],
        );
        let refusal = admit(&Roster::default(), "a", &both).unwrap_err();
        assert!(
            refusal.to_string().contains(
                "declares Ingress.networking.k8s.io/v1 and Ingress.extensions/v1, one resource under two API groups"
            ),
            "{refusal}"
        );
        let roster = Roster::default();
        admit(
            &roster,
            "a",
            &manifest(("x.io", "Site"), &[("networking.k8s.io", "Ingress")]),
        )
        .unwrap();
        let refusal = admit(
            &roster,
            "b",
            &manifest(("x.io", "Page"), &[("extensions", "Ingress")]),
        )
        .unwrap_err();
        assert!(
            refusal.to_string().contains(
                "which the guest a of this host declares as Ingress.networking.k8s.io/v1"
            ),
            "{refusal}"
        );
        let events = manifest(
            ("x.io", "Alarm"),
            &[("", "Event"), ("events.k8s.io", "Event")],
        );
        assert!(matches!(
            admit(&Roster::default(), "c", &events),
            Err(Refusal::AliasedOwnKinds { .. })
        ));
    }

    #[test]
    fn a_second_guest_for_a_parent_kind_is_refused_until_the_first_goes() {
        let roster = Roster::default();
        let potato = manifest(("x.io", "PotatoHead"), &[("apps", "Deployment")]);
        admit(&roster, "a", &potato).unwrap();
        admit(&roster, "a", &potato).unwrap();
        let refusal = admit(&roster, "b", &potato).unwrap_err();
        assert!(
            matches!(refusal, Refusal::DuplicateParentKind { ref holder, .. } if holder == "a")
        );
        assert_eq!(refusal.blocked_by(), ["a"]);
        roster.release("a");
        admit(&roster, "b", &potato).unwrap();
    }

    #[test]
    fn a_chain_of_guests_and_shared_child_kinds_are_fine() {
        let roster = Roster::default();
        admit(
            &roster,
            "a",
            &manifest(("x.io", "App"), &[("x.io", "Part"), ("", "ConfigMap")]),
        )
        .unwrap();
        admit(
            &roster,
            "b",
            &manifest(
                ("x.io", "Part"),
                &[("apps", "Deployment"), ("", "ConfigMap")],
            ),
        )
        .unwrap();
    }

    #[test]
    fn child_kinds_and_builtin_parents_follow_the_flags_and_settings() {
        let rules = HostRules {
            allowed_child_kinds: KindAllowlist::parse(&["v1/ConfigMap".into()]).unwrap(),
            ..HostRules::default()
        };
        let ingress = manifest(("x.io", "Site"), &[("networking.k8s.io", "Ingress")]);
        let refusal = admit_alone(&rules, &ingress, &settings(&rules)).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "the guest declares child kind Ingress.networking.k8s.io/v1, which \
             --allowed-child-kind does not allow (allowed: ConfigMap.v1)"
        );
        let narrowed = GuestSettings {
            allowed_child_kinds: KindAllowlist::Only(Vec::new()),
            file: Some("/guests/g.yaml".into()),
            ..settings(&rules)
        };
        let config_maps = manifest(("x.io", "Site"), &[("", "ConfigMap")]);
        let refusal = admit_alone(&rules, &config_maps, &narrowed).unwrap_err();
        assert!(
            refusal
                .to_string()
                .contains("which its settings /guests/g.yaml does not allow (allowed: none)"),
            "{refusal}"
        );
        let builtin = manifest(("", "ConfigMap"), &[("", "ServiceAccount")]);
        let refusal = admit_alone(
            &HostRules::default(),
            &builtin,
            &settings(&HostRules::default()),
        )
        .unwrap_err();
        assert!(
            refusal.to_string().contains("--allow-builtin-parent-kind"),
            "{refusal}"
        );
        let allowed = HostRules {
            allow_builtin_parent_kind: true,
            ..HostRules::default()
        };
        admit_alone(&allowed, &builtin, &settings(&allowed)).unwrap();
    }

    // Attack: a guest creating Namespaces (or ClusterRoleBindings) on a host whose admin only
    // ever allowed "any kind", which means any namespaced kind.
    #[test]
    fn a_cluster_scoped_child_kind_of_kubernetes_must_be_named() {
        let tenant = manifest(("x.io", "Tenant"), &[("", "Namespace")]);
        let any = HostRules::default();
        let refusal = admit_alone(&any, &tenant, &settings(&any)).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "the guest declares child kind Namespace.v1, which --allowed-child-kind does not \
             allow (allowed: any namespaced kind)"
        );
        let named = HostRules {
            allowed_child_kinds: KindAllowlist::parse(&["v1/Namespace".into()]).unwrap(),
            ..HostRules::default()
        };
        admit_alone(&named, &tenant, &settings(&named)).unwrap();
    }
}
