//! A Kubernetes reconciler host whose reconcile decisions are made by WebAssembly components.
//!
//! The host owns everything that talks to the API server; a guest component (see
//! `wit/reconciler.wit`) decides, per parent object, which children should exist.
//!
//! ```text
//! main ─► cli/ (flags ─► config, render, check)
//!          run/ (the process: http, engine, leader election; supervisor: a folder of guests)
//!            └► controller/ (one per guest: kube-runtime Controller, hot_swap, sweep)
//!                 ├► guests/ (a guest's file, settings, the host's rules, admission, folder watch)
//!                 └► reconcile/ : observe ─► decide ─► plan ─► take-over ─► settle ─► apply
//!                                 ─► prune ─► report (one parent; its record in parent_state)
//!                      ├► cluster/ (kinds, watches, caches: Kubernetes objects only)
//!                      └► sandbox/ (wasmtime and the WIT: private to it)
//!          config, leader, http ─► readiness, metrics, error_text, gvk, regular_file
//! ```
//!
//! Imports go one way, top to bottom: nothing below `cli/` imports it; `sandbox/` and `cluster/`
//! never import each other or `reconcile/`; no wasmtime or generated WIT type is nameable outside
//! `sandbox/`.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod error_text;
pub mod guests;
pub mod gvk;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod readiness;
pub mod reconcile;
pub mod regular_file;
pub mod run;
pub mod sandbox;
