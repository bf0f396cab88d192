//! The child kinds a guest may declare: any (the host's default), or a list (`--allowed-child-kind`,
//! narrowed per guest by `allowed-child-kinds` in its settings). "Any" is its own value, never an
//! empty list: a settings file's `allowed-child-kinds: []` allows no child kind, it does not
//! widen the host's list to every kind.

use kube::api::GroupVersionKind;

use crate::gvk::display_gvk;

/// The child kinds a guest may declare.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum KindAllowlist {
    /// Any namespaced kind (the host started without `--allowed-child-kind`).
    #[default]
    Any,
    /// Only these (possibly none).
    Only(Vec<GroupVersionKind>),
}

impl KindAllowlist {
    /// The host's list from `--allowed-child-kind` entries: no entry means any kind.
    ///
    /// # Errors
    /// A message naming the malformed entry.
    pub fn from_flag(entries: &[String]) -> Result<Self, String> {
        if entries.is_empty() {
            return Ok(Self::Any);
        }
        Self::parse(entries)
    }

    /// A list of `group/version/Kind` (`apps/v1/Deployment`) or `version/Kind` for the core group
    /// (`v1/ConfigMap`); an empty list allows nothing.
    ///
    /// # Errors
    /// A message naming the malformed entry.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| parse_kind(entry))
            .collect::<Result<_, _>>()
            .map(Self::Only)
    }

    /// Whether `kind` may be declared.
    pub fn allows(&self, kind: &GroupVersionKind) -> bool {
        match self {
            Self::Any => true,
            Self::Only(kinds) => kinds.contains(kind),
        }
    }

    /// Whether the list names `kind` itself ("any" names nothing): what a kind needs that
    /// "any" does not cover (cluster-scoped children).
    pub fn names(&self, kind: &GroupVersionKind) -> bool {
        matches!(self, Self::Only(kinds) if kinds.contains(kind))
    }

    /// `narrower`, if every kind it names is allowed here.
    ///
    /// # Errors
    /// The first kind `narrower` names that this list does not allow.
    pub fn narrowed_to(&self, narrower: Self) -> Result<Self, GroupVersionKind> {
        match &narrower {
            Self::Any => Ok(self.clone()),
            Self::Only(kinds) => match kinds.iter().find(|kind| !self.allows(kind)) {
                Some(wider) => Err(wider.clone()),
                None => Ok(narrower),
            },
        }
    }

    /// How the list reads in a report or a refusal.
    pub fn describe(&self) -> String {
        match self {
            Self::Any => "any namespaced kind".into(),
            Self::Only(kinds) if kinds.is_empty() => "none".into(),
            Self::Only(kinds) => kinds.iter().map(display_gvk).collect::<Vec<_>>().join(", "),
        }
    }
}

fn parse_kind(entry: &str) -> Result<GroupVersionKind, String> {
    let parts: Vec<&str> = entry.split('/').collect();
    match parts.as_slice() {
        [version, kind] if !version.is_empty() && !kind.is_empty() => {
            Ok(GroupVersionKind::gvk("", version, kind))
        }
        [group, version, kind] if !group.is_empty() && !version.is_empty() && !kind.is_empty() => {
            Ok(GroupVersionKind::gvk(group, version, kind))
        }
        _ => Err(format!(
            "{entry:?} is not group/version/Kind (e.g. apps/v1/Deployment) or v1/Kind for the \
             core group"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> KindAllowlist {
        KindAllowlist::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn entries_parse_with_and_without_a_group() {
        assert_eq!(
            list(&["apps/v1/Deployment", "v1/ConfigMap"]),
            KindAllowlist::Only(vec![
                GroupVersionKind::gvk("apps", "v1", "Deployment"),
                GroupVersionKind::gvk("", "v1", "ConfigMap")
            ])
        );
        assert!(KindAllowlist::parse(&["Deployment".into()]).is_err());
        assert!(KindAllowlist::parse(&["a/b/c/d".into()]).is_err());
    }

    #[test]
    fn no_flag_means_any_kind_but_an_empty_list_means_none() {
        let secret = GroupVersionKind::gvk("", "v1", "Secret");
        assert_eq!(KindAllowlist::from_flag(&[]).unwrap(), KindAllowlist::Any);
        assert!(KindAllowlist::Any.allows(&secret));
        assert!(!list(&[]).allows(&secret));
        assert_eq!(list(&[]).describe(), "none");
    }

    #[test]
    fn a_list_may_be_narrowed_but_never_widened() {
        let host = list(&["apps/v1/Deployment", "v1/Service"]);
        assert_eq!(
            host.narrowed_to(list(&["v1/Service"])).unwrap(),
            list(&["v1/Service"])
        );
        assert_eq!(host.narrowed_to(list(&[])).unwrap(), list(&[]), "to none");
        assert_eq!(
            host.narrowed_to(list(&["v1/Secret"])).unwrap_err().kind,
            "Secret"
        );
        assert_eq!(
            host.narrowed_to(KindAllowlist::Any).unwrap(),
            host,
            "leaving the key out keeps the host's list"
        );
        assert!(!host.allows(&GroupVersionKind::gvk("", "v1", "Secret")));
        assert!(host.names(&GroupVersionKind::gvk("", "v1", "Service")));
        assert!(!KindAllowlist::Any.names(&GroupVersionKind::gvk("", "v1", "Service")));
    }
}
