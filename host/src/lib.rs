//! A Kubernetes reconciler host whose reconcile decisions are made by WebAssembly components.
//!
//! The host owns everything that talks to the API server; a guest component (see
//! `wit/reconciler.wit`) decides, per parent object, which children should exist.

pub mod apply;
pub mod bindings;
pub mod config;
pub mod controller;
pub mod guest;
pub mod kinds;
pub mod owned;
pub mod policy;
pub mod status;
