//! A Kubernetes reconciler host whose reconcile decisions are made by WebAssembly components.
//!
//! The host owns everything that talks to the API server; a guest component (see
//! `wit/reconciler.wit`) decides, per parent object, which children should exist.

pub mod bindings;
pub mod guest;
