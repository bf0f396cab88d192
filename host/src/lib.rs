//! A Kubernetes reconciler host whose reconcile decisions are made by WebAssembly components.
//!
//! The host owns everything that talks to the API server; a guest component (see
//! `wit/reconciler.wit`) decides, per parent object, which children should exist.

pub mod active;
pub mod apply;
pub mod bindings;
pub mod compile_cache;
pub mod config;
pub mod controller;
pub mod guest;
pub mod guest_log;
pub mod kinds;
pub mod leader;
pub mod metrics;
pub mod owned;
pub mod policy;
pub mod reconcile;
pub mod reload;
pub mod report;
pub mod status;

/// An error and its causes on one line (`error: cause: cause`), for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
