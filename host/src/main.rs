//! `reconciler-host`, the process edge: parses the command line, sets up logging, turns signals
//! into a shutdown, dispatches to `run` or an offline tool, and sets the exit code.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reconciler_host::cli::{self, Cli, Command, LogFormat, RunArgs};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// Logs at `default_level` unless RUST_LOG says otherwise.
fn init_logging(format: LogFormat, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `diff` and `shadow` print a report: the watches they start are not news to its reader.
    let default_level = match cli.command {
        Command::Diff(_) | Command::Shadow(_) => "warn",
        _ => "info",
    };
    init_logging(cli.log_format, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(serve(cli));
    // Dropping a runtime waits for every blocking thread, and one may be stuck in a read that
    // never returns (a hung volume): SIGTERM must end the process all the same.
    runtime.shutdown_timeout(BLOCKING_THREADS_GRACE);
    code
}

/// How long the process waits, once it is done, for blocking threads (file reads, guest
/// compiles) before it exits without them.
const BLOCKING_THREADS_GRACE: Duration = Duration::from_secs(1);

async fn serve(cli: Cli) -> ExitCode {
    let args = match cli.command {
        Command::Render(args) => return cli::render::run(&args),
        Command::Check(args) => return cli::check::run(&args),
        Command::Diff(args) => return cli::diff::run(&args).await,
        Command::Shadow(args) => return cli::shadow::run(&args).await,
        Command::Run(args) => args,
    };
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("stopping: finishing in-flight reconciles (signal again to stop at once)");
        let _ = stop.send(true);
        wait_for_signal().await;
        warn!("second signal: exiting at once");
        std::process::exit(1);
    });
    let mut stopped = stopping.clone();
    let outcome = tokio::select! {
        outcome = run(*args, stopping) => outcome,
        // A reconcile is bounded (guest deadline, API timeouts), so this only fires if shutting
        // down itself is stuck; do not leave a process that ignores SIGTERM.
        () = async {
            let _ = stopped.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            warn!("in-flight work did not finish within {SHUTDOWN_GRACE:?} of the stop signal; exiting");
            Ok(())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}` prints the whole cause chain on one line.
            match cli.log_format {
                LogFormat::Json => {
                    tracing::error!(error = format!("{error:#}"), "reconciler-host failed")
                }
                LogFormat::Text => eprintln!("error: {error:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// `run`: the flags checked, then the host until `stopping`.
async fn run(args: RunArgs, stopping: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> {
    reconciler_host::run::run(args.validate()?, stopping).await
}

/// How long a stop signal waits for in-flight reconciles before the process exits anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// SIGTERM (what Kubernetes sends) or SIGINT (Ctrl-C).
async fn wait_for_signal() {
    let mut terminate = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
