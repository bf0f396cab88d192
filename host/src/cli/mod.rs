//! The command line: `run` (the controller; its flags are in `run_args.rs`, the guests' rules in
//! `guest_rules.rs`), the offline tools `render` (`render.rs`) and `check` (`check.rs`), and
//! `diff` (`diff/`), which reads a live cluster and writes nothing, and `shadow` (`shadow/`), which
//! reads a running host's shadow candidate reports.

pub mod check;
pub mod diff;
pub mod guest_rules;
pub mod render;
pub mod rollback_args;
pub mod run_args;
pub mod shadow;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use run_args::{RunArgs, default_compile_cache_dir};

/// Runs Kubernetes reconcilers whose decisions are WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "reconciler-host", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format: human-readable text or one JSON object per line. Levels come from RUST_LOG.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: watch the guest's parent kind and reconcile every parent through it.
    Run(Box<RunArgs>),
    /// Run a guest offline for one parent, exactly as the controller would, and print what it
    /// would apply and the status it would write. Exit code 0: rendered; 1: the guest rejected
    /// the spec, failed, or broke the host's output rules; 2: unusable input.
    Render(RenderArgs),
    /// Check a guest file, or every `*.wasm` in a folder: is each usable by this host, and what
    /// does it declare? Exit code 0: every guest usable; 1: not.
    Check(CheckArgs),
    /// Show what a guest would change in the live cluster, writing nothing: for every parent of
    /// its kind, the children it would create, change (the API server's dry run of the host's
    /// server-side apply) and prune, and the status change. Exit code 0: no difference; 1:
    /// differences, or parents for which the reconcile would fail; 2: an error.
    Diff(Box<diff::DiffArgs>),
    /// Show what the shadow candidates of a running host decided (`NAME.candidate.wasm` beside a
    /// guest's `NAME.wasm`): per guest, the parents its candidate agrees with the active guest
    /// on, diverges on (field by field) and fails on. Reads the host's HTTP endpoint. Exit code
    /// 0: every candidate agrees, or there is none; 1: a candidate diverges or fails; 2: an
    /// error.
    Shadow(shadow::ShadowArgs),
}

/// Output format of `render`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Yaml,
    Json,
}

/// Flags of `reconciler-host render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The guest component (.wasm).
    #[arg(long)]
    pub guest: PathBuf,
    /// The parent object (YAML or JSON file), e.g. deploy/samples/potatohead.yaml.
    #[arg(long)]
    pub parent: PathBuf,
    /// Children the guest observes: YAML/JSON files (several documents or a List) or folders of
    /// them; repeat the flag for more.
    #[arg(long)]
    pub children: Vec<PathBuf>,
    /// Print YAML documents, or one JSON List.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,
    /// The guest's configuration, JSON text, as the host would give it (`config` in NAME.yaml,
    /// or `run --guest-config`).
    #[arg(long, value_parser = guest_rules::parse_guest_config)]
    pub guest_config: Option<String>,
    /// The field manager the host would run with (it names the managed-by label).
    #[arg(long, default_value = "wasm-reconciler")]
    pub field_manager: String,
    /// The parent's kind is cluster-scoped (a Tenant, say): the parent gets no namespace, and
    /// each namespaced child must name its own, outside Kubernetes' own namespaces.
    #[arg(long)]
    pub cluster_scoped: bool,
}

/// Flags of `reconciler-host check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The guest component (.wasm), or a folder of them, judged as `run --guests` would judge
    /// it: each guest against the others in name order (a second guest for a parent kind, or one
    /// that closes a cycle of kinds, is refused).
    #[arg(long)]
    pub guest: PathBuf,
    /// The guest's configuration, JSON text, as `run --guest-config` gives it (one guest file
    /// only; a folder's guests take theirs from NAME.yaml).
    #[arg(long, env = "RECONCILER_GUEST_CONFIG", value_parser = guest_rules::parse_guest_config)]
    pub guest_config: Option<String>,
    /// The rules `run` would apply (the same flags and environment variables).
    #[command(flatten)]
    pub rules: guest_rules::GuestRuleArgs,
}
