//! The kinds a guest's controller needs before it can reconcile: its parent kind, its child
//! kinds and the kinds it reads, resolved against the API server, and the caches of the last two
//! started and listed (a reconcile never runs on a cache that has not listed).

use std::sync::Arc;

use kube::Client;
use tracing::{info, warn};

use super::{SYNC_PROGRESS_INTERVAL, Shared, StartError, scopes};
use crate::cluster::kinds::{self, ResolvedKind};
use crate::config::RunSettings;
use crate::guests::GuestSpec;
use crate::reconcile::ActiveGuest;
use crate::sandbox::LoadedGuest;

/// A guest's kinds, resolved.
pub struct GuestKinds {
    pub parent: ResolvedKind,
    pub children: Vec<Arc<ResolvedKind>>,
    /// The kinds it reads (contract 0.2 `related`), namespaced or cluster-scoped.
    pub related: Vec<Arc<ResolvedKind>>,
}

impl GuestKinds {
    /// The guest's parent kind, child kinds and the kinds it reads, for the guest of `spec` in a
    /// host that watches `namespace` (`None`: every namespace).
    ///
    /// # Errors
    /// A kind the API server does not serve, or kinds that break the scope rule (`scopes.rs`).
    pub async fn resolve(
        client: &Client,
        guest: &LoadedGuest,
        spec: &GuestSpec,
        namespace: Option<&str>,
    ) -> Result<Self, StartError> {
        let manifest = guest.manifest();
        let parent = kinds::resolve(client, &manifest.parent).await?;
        let mut children = Vec::with_capacity(manifest.children.len());
        for gvk in &manifest.children {
            children.push(Arc::new(kinds::resolve(client, gvk).await?));
        }
        scopes::check(
            &parent,
            &children,
            &spec.settings.allowed_child_kinds,
            namespace,
        )?;
        let mut related = Vec::with_capacity(manifest.related.len());
        for gvk in &manifest.related {
            related.push(Arc::new(kinds::resolve(client, gvk).await?));
        }
        Ok(Self {
            parent,
            children,
            related,
        })
    }

    /// Starts the watches of the child kinds and waits until each has listed, reporting
    /// progress; registers the related kinds the guest may read.
    pub(super) async fn sync(&self, shared: &Shared, settings: &RunSettings) {
        let user = self.parent.display_name();
        info!(
            parent = %user,
            children = %names(&self.children),
            namespace = settings.namespace.as_deref().unwrap_or("<all>"),
            "waiting for child caches to sync"
        );
        while let Err(pending) = shared
            .children
            .watch_kinds(&user, &self.children, SYNC_PROGRESS_INTERVAL)
            .await
        {
            warn!(%pending, "child caches still listing");
        }
        info!("child caches synced; reconciling");
        // What the guest may read; each kind is watched once a parent asks for it.
        shared.related.retain_kinds(&user, &self.related);
    }

    /// The parent kind, and `guest` with its kinds as the active guest.
    pub(super) fn with(self, guest: Arc<LoadedGuest>) -> (ResolvedKind, ActiveGuest) {
        (
            self.parent,
            ActiveGuest::new(guest, self.children, self.related),
        )
    }
}

fn names(kinds: &[Arc<ResolvedKind>]) -> String {
    kinds
        .iter()
        .map(|k| k.display_name())
        .collect::<Vec<_>>()
        .join(", ")
}
