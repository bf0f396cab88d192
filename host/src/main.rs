//! `reconciler-host`: wires the command line, logging, the guest and the controller together.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use reconciler_host::config::{Cli, Command, LogFormat};
use reconciler_host::controller;
use reconciler_host::guest::GuestEngine;
use reconciler_host::metrics::{self, Metrics};
use tracing::info;
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli.command).await {
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

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run(args) => {
            let settings = args.validate()?;
            // Serve health and metrics first, so a probe can see the process while it starts.
            let metrics = Arc::new(Metrics::default());
            let address = metrics::serve(settings.metrics_bind_address, Arc::clone(&metrics))
                .await
                .with_context(|| format!("serving metrics on {}", settings.metrics_bind_address))?;
            info!(%address, "serving /metrics, /healthz and /readyz");
            let engine = GuestEngine::new(settings.compile_cache_dir.as_deref())
                .map_err(|e| anyhow::anyhow!("creating the WebAssembly engine: {e:#}"))?;
            let guest = engine.load_path(&settings.guest, settings.limits)?;
            let manifest = guest.manifest();
            info!(
                guest = %manifest.name,
                version = %manifest.version,
                digest = %guest.digest(),
                path = %settings.guest.display(),
                origin = ?guest.origin(),
                "guest loaded"
            );
            let client = kube::Client::try_default()
                .await
                .context("connecting to Kubernetes (in-cluster service account, KUBECONFIG or ~/.kube/config)")?;
            controller::run(client, engine, guest, settings, metrics).await?;
            Ok(())
        }
    }
}
