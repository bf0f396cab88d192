//! A Kubernetes reconciler host whose reconcile decisions are made by WebAssembly components.
//!
//! The host owns everything that talks to the API server; a guest component (see
//! `wit/reconciler.wit`) decides, per parent object, which children should exist.
//!
//! ```text
//! main ─► cli/ (flags, render, check)      run ─► supervisor (a folder of guests), leader, http
//!                                                   │      └► controller (one per guest), hot_swap
//!                                                   │         reconcilers/ (a guest's name, settings)
//!          parent watch + child watches ──► reconcile/ : observe ─► decide ─► plan ─► take-over
//!          (cluster/: caches, kinds)                    ─► settle ─► apply ─► prune ─► report
//!                                                   │            │
//!                                              cluster/        guest/ (wasmtime, WIT: private)
//!                                                   └──────┬─────┘
//!                                                       metrics, error_text, gvk
//! ```
//!
//! Imports go one way, top to bottom: `guest/` and `cluster/` never import each other or
//! `reconcile/`, and no wasmtime or generated WIT type is nameable outside `guest/`.

pub mod cli;
pub mod cluster;
pub mod controller;
pub mod error_text;
pub mod guest;
pub mod guests;
pub mod gvk;
pub mod hot_swap;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod regular_file;
pub mod run;
