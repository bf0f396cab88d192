//! `reconciler-host diff`: what a guest would change in the live cluster, read only. For every
//! parent of the guest's kind (those the flags select), the guest is previewed on the parent, its
//! live children and the related objects it reads, through the reconcile's own steps
//! (`reconcile::preview`), and the children the planning step does not already know to be as
//! desired are sent to the API server as server-side applies with `dryRun=All` (`compare.rs`).
//! Nothing is written. Exit codes as `kubectl diff`: 0 no difference, 1 differences (or a parent
//! for which the reconcile would fail), 2 an error.

mod compare;
mod report;
mod session;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use futures::StreamExt;

use super::guest_rules::{self, GuestRuleArgs};
use crate::reconcile::status;
use compare::{ParentDiff, diff_parent};
use report::Summary;
use session::Session;

/// Output format of `diff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
}

/// Flags of `reconciler-host diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The guest component (.wasm) to compare with the cluster; its settings file (NAME.yaml
    /// beside it) is read as `run` reads it.
    #[arg(long)]
    pub guest: PathBuf,
    /// The guest's configuration, JSON text, as `run --guest-config` gives it.
    #[arg(long, env = "RECONCILER_GUEST_CONFIG", value_parser = guest_rules::parse_guest_config)]
    pub guest_config: Option<String>,
    /// Only the parents (and children) in this namespace [default: every namespace].
    #[arg(long, short = 'n', env = "RECONCILER_NAMESPACE")]
    pub namespace: Option<String>,
    /// Only the parents this label selector selects (e.g. `app=web,tier!=cache`).
    #[arg(long, short = 'l')]
    pub selector: Option<String>,
    /// Print text for people, or one JSON document (every parent, with a summary).
    #[arg(long, short, value_enum, default_value_t = DiffFormat::Text)]
    pub output: DiffFormat,
    /// The field manager of the host whose children these are (it names the managed-by label).
    #[arg(
        long,
        env = "RECONCILER_FIELD_MANAGER",
        default_value = "wasm-reconciler"
    )]
    pub field_manager: String,
    /// Parents compared at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// The rules `run` would apply (the same flags and environment variables).
    #[command(flatten)]
    pub rules: GuestRuleArgs,
}

/// `diff`: prints what would change; exit 0 nothing, 1 something, 2 an error.
pub async fn run(args: &DiffArgs) -> ExitCode {
    let session = match Session::open(args).await {
        Ok(session) => session,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    let now = status::now();
    let diffs: Vec<ParentDiff> = futures::stream::iter(
        session
            .parents
            .iter()
            .map(|parent| diff_parent(&session.ctx, &session.guest, parent, &now)),
    )
    .buffered(usize::from(args.concurrency))
    .collect()
    .await;
    let kind = session.ctx.parent_kind.resource.kind.clone();
    let guest = session::describe(&session.guest.guest);
    match args.output {
        DiffFormat::Text => print!("{}", report::text(&kind, &diffs)),
        DiffFormat::Json => println!("{}", report::json(&kind, &guest, &diffs)),
    }
    let summary = Summary::of(&diffs);
    eprintln!("diff of {guest}: {}", summary.to_text());
    if summary.differ + summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
