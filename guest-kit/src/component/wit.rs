//! The bindings of contract 0.2.0 (`wit/reconciler.wit`) and the conversions between them and
//! the plain types of [`super`]. Only in the WebAssembly build: component imports are not native
//! symbols.

use super::{
    ChildRef, Desired, Event, EventType, Manifest, Observed, ReconcileError, Reconciler,
    RelatedObjects, Requirement, Selection,
};

/// Generated once here for every guest; `export_guest!` names this module's export macro.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "reconciler",
        pub_export_macro: true,
        export_macro_name: "export_reconciler",
        default_bindings_module: "guest_kit::component::wit::bindings",
    });
}

use bindings::wasm_reconciler::reconciler::log as wit_log;
use bindings::wasm_reconciler::reconciler::types as wit;
use wit::GroupVersionKind;

shared_by_every_version!();

fn error(error: ReconcileError) -> wit::ReconcileError {
    match error {
        ReconcileError::InvalidSpec(reason) => wit::ReconcileError::InvalidSpec(reason),
        ReconcileError::Transient(reason) => wit::ReconcileError::Transient(reason),
    }
}

pub fn describe<R: Reconciler>() -> wit::Manifest {
    let Manifest {
        name,
        version,
        parent,
        children,
        related,
    } = R::describe();
    wit::Manifest {
        name,
        version,
        parent: gvk(parent),
        children: children.into_iter().map(gvk).collect(),
        related: related.into_iter().map(gvk).collect(),
    }
}

pub fn configure<R: Reconciler>(config: String) -> Result<(), String> {
    R::configure(&config)
}

pub fn requirements<R: Reconciler>(
    parent: String,
    config: String,
) -> Result<Vec<wit::Requirement>, wit::ReconcileError> {
    let requirements = R::requirements(&parent, &config).map_err(error)?;
    Ok(requirements
        .into_iter()
        .map(|requirement: Requirement| wit::Requirement {
            key: requirement.key,
            kind: gvk(requirement.kind),
            namespace: requirement.namespace,
            selection: match requirement.selection {
                Selection::Names(names) => wit::Selection::Names(names),
                Selection::LabelSelector(selector) => wit::Selection::LabelSelector(selector),
            },
        })
        .collect())
}

fn event(event: Event) -> wit::Event {
    wit::Event {
        event_type: match event.event_type {
            EventType::Normal => wit::EventType::Normal,
            EventType::Warning => wit::EventType::Warning,
        },
        reason: event.reason,
        message: event.message,
        about: event.about.map(|child: ChildRef| wit::ChildRef {
            kind: gvk(child.kind),
            name: child.name,
            namespace: child.namespace,
        }),
    }
}

pub fn reconcile<R: Reconciler>(
    observed: wit::Observed,
    config: String,
) -> Result<wit::Desired, wit::ReconcileError> {
    let observed = Observed {
        parent: observed.parent,
        children: observed.children,
        related: observed
            .related
            .into_iter()
            .map(|set| RelatedObjects {
                key: set.key,
                objects: set.objects,
            })
            .collect(),
        config,
        finalizing: observed.finalizing,
    };
    let Desired {
        children,
        status,
        requeue_after_ms,
        events,
    } = R::reconcile(observed).map_err(error)?;
    Ok(wit::Desired {
        children,
        status,
        requeue_after_ms,
        events: events.into_iter().map(event).collect(),
    })
}

/// The export of `export_guest!` in this contract version.
#[doc(hidden)]
#[macro_export]
macro_rules! __export_guest_wit {
    ($guest:ty) => {
        const _: () = {
            use $crate::component::wit::bindings::exports::wasm_reconciler::reconciler::guest as wit_guest;
            use $crate::component::wit::bindings::wasm_reconciler::reconciler::types as wit;

            struct Component;

            impl wit_guest::Guest for Component {
                fn describe() -> wit::Manifest {
                    $crate::component::wit::describe::<$guest>()
                }

                fn configure(config: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::component::wit::configure::<$guest>(config)
                }

                fn requirements(
                    parent: ::std::string::String,
                    config: ::std::string::String,
                ) -> ::core::result::Result<::std::vec::Vec<wit::Requirement>, wit::ReconcileError> {
                    $crate::component::wit::requirements::<$guest>(parent, config)
                }

                fn reconcile(
                    observed: wit::Observed,
                    config: ::std::string::String,
                ) -> ::core::result::Result<wit::Desired, wit::ReconcileError> {
                    $crate::component::wit::reconcile::<$guest>(observed, config)
                }
            }

            $crate::component::wit::bindings::export_reconciler!(Component);
        };
    };
}
