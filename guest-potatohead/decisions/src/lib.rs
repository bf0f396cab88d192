//! The PotatoHead operator's decisions as plain functions over JSON text: what the default guest
//! runs inside its component, tested natively. No component glue lives here, so another guest
//! (the hot-swap test guest `potatohead-v2`) can depend on this crate and export itself.

pub mod children;
pub mod config;
pub mod parts;
pub mod reconcile;
pub mod spec;
pub mod status;
pub mod validate;

use guest_kit::component::{Manifest, Observed, ReconcileError, Requirement, kind};

/// The manifest of a guest that runs these decisions under `name`: a PotatoHead parent and the
/// three child kinds [`children`] makes.
pub fn manifest(name: &str, version: &str) -> Manifest {
    Manifest::new(name, version, kind(spec::GROUP, spec::VERSION, spec::KIND))
        .with_children([
            kind("apps", "v1", "Deployment"),
            kind("", "v1", "Service"),
            kind("", "v1", "ConfigMap"),
        ])
        .with_related([kind("", "v1", "ConfigMap")])
}

/// What a PotatoHead reads besides its children: the ConfigMap its `spec.configRef` names.
///
/// # Errors
/// [`ReconcileError::InvalidSpec`] when the parent is no PotatoHead.
pub fn requirements(parent: &str) -> Result<Vec<Requirement>, ReconcileError> {
    let name = reconcile::config_ref(parent).map_err(contract_error)?;
    Ok(name
        .into_iter()
        .map(|name| {
            Requirement::names(
                reconcile::CONFIG_MAP_KEY,
                kind("", "v1", "ConfigMap"),
                [name],
            )
        })
        .collect())
}

fn contract_error(error: reconcile::ReconcileError) -> ReconcileError {
    match error {
        reconcile::ReconcileError::InvalidSpec(reason) => ReconcileError::InvalidSpec(reason),
        reconcile::ReconcileError::Missing(reason) => ReconcileError::Transient(reason),
    }
}

/// The decisions on what the host observed, with the guest's configuration; a wrong spec as the
/// contract's `InvalidSpec`.
///
/// # Errors
/// [`ReconcileError::InvalidSpec`] naming the field, as [`reconcile::reconcile`] finds it;
/// [`ReconcileError::Transient`] for a configuration that `configure` would have refused (the
/// host never gives one).
pub fn decide(observed: &Observed) -> Result<reconcile::Desired, ReconcileError> {
    let config = config::parse(&observed.config).map_err(ReconcileError::Transient)?;
    reconcile::reconcile_configured(
        &observed.parent,
        &observed.children,
        observed.finalizing,
        &config,
        observed.related(reconcile::CONFIG_MAP_KEY),
    )
    .map_err(contract_error)
}
