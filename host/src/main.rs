//! `reconciler-host`: wires the command line, logging, the guest and the controller together.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use reconciler_host::active::guest_labels;
use reconciler_host::compile_cache::CompileCacheConfig;
use reconciler_host::config::{
    Cli, Command, LogFormat, OutputFormat, RenderArgs, RunArgs, RunSettings,
    default_compile_cache_dir,
};
use reconciler_host::controller::{self, StartError, Stopped};
use reconciler_host::guest::{GuestEngine, GuestLimits, LoadedGuest};
use reconciler_host::kinds;
use reconciler_host::leader::Elector;
use reconciler_host::metrics::{self, Leadership, Metrics};
use reconciler_host::render::RenderError;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{info, warn};
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
    let args = match cli.command {
        Command::Render(args) => return render(args),
        Command::Check(args) => return check(&args.guest),
        Command::Run(args) => *args,
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
        outcome = run(args, stopping) => outcome,
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

/// `render`: exit 0 rendered, 1 the guest said no, 2 unusable input.
fn render(args: RenderArgs) -> ExitCode {
    // A panic is a bug in the host, never a verdict on the input: reported, exit 2, not 101.
    let rendered = std::panic::catch_unwind(|| render_files(&args)).unwrap_or_else(|panic| {
        Err(anyhow::anyhow!(
            "the host failed while rendering (a bug in reconciler-host): {}",
            reconciler_host::reconcile::panic_message(panic.as_ref())
        ))
    });
    match rendered {
        Ok(rendered) => {
            print!(
                "{}",
                match args.output {
                    OutputFormat::Yaml => rendered.to_yaml(),
                    OutputFormat::Json => rendered.to_json() + "\n",
                }
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            let verdict = error
                .downcast_ref::<RenderError>()
                .is_some_and(RenderError::is_guest_verdict);
            ExitCode::from(if verdict { 1 } else { 2 })
        }
    }
}

/// `render`'s work: read the files, load the guest, render.
fn render_files(args: &RenderArgs) -> anyhow::Result<reconciler_host::render::Rendered> {
    let parent = reconciler_host::render::read_parent(&args.parent)?;
    let children = reconciler_host::render::read_children(&args.children)?;
    let engine = GuestEngine::new(
        default_compile_cache_dir()
            .map(CompileCacheConfig::new)
            .as_ref(),
    )
    .map_err(|e| anyhow::anyhow!("creating the WebAssembly engine: {e:#}"))?;
    let guest = engine.load_path(&args.guest, GuestLimits::default())?;
    Ok(reconciler_host::render::render(
        &guest,
        parent,
        children,
        &args.field_manager,
        &reconciler_host::status::now(),
    )?)
}

/// `check`: exit 0 usable, 1 not.
fn check(path: &std::path::Path) -> ExitCode {
    let engine = match GuestEngine::new(None) {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("error: creating the WebAssembly engine: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    match reconciler_host::check::check(&engine, path) {
        Ok(report) => {
            print!("{}", report.to_text(path));
            if report.verdict.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            println!(
                "file:          {}\nverdict:       unusable: {}",
                path.display(),
                reconciler_host::error_chain(&error)
            );
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs, stopping: watch::Receiver<bool>) -> anyhow::Result<()> {
    let settings = args.validate()?;
    // Serve health and metrics first, so a probe can see the process while it starts.
    let metrics = Arc::new(Metrics::default());
    let address = metrics::serve(settings.metrics_bind_address, Arc::clone(&metrics))
        .await
        .with_context(|| format!("serving metrics on {}", settings.metrics_bind_address))?;
    info!(%address, "serving /metrics, /healthz and /readyz");
    let engine = GuestEngine::new(settings.compile_cache.as_ref())
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
    settings
        .allowed_child_kinds
        .check(&manifest.children)
        .map_err(anyhow::Error::msg)?;
    if kinds::is_builtin(&manifest.parent) && !settings.allow_builtin_parent_kind {
        anyhow::bail!(kinds::builtin_parent_refused(&manifest.parent));
    }
    metrics.set_active_guest(guest_labels(&guest));
    let client = kube::Client::try_default().await.context(
        "connecting to Kubernetes (in-cluster service account, KUBECONFIG or ~/.kube/config)",
    )?;
    let mut guest = Arc::new(guest);
    let Some(election) = settings.leader_election.clone() else {
        metrics.set_leadership(Leadership::NotElecting);
        return reconcile(&client, &engine, &mut guest, &settings, &metrics, stopping)
            .await
            .map_err(Into::into);
    };
    let mut elector = Elector::new(client.clone(), election);
    loop {
        info!(identity = %elector.identity(), "leader election: campaigning for the Lease");
        let renewed = tokio::select! {
            renewed = elector.campaign(|| metrics.set_leadership(Leadership::Standby)) => renewed,
            () = stopped(stopping.clone()) => return Ok(()),
        };
        metrics.set_leadership(Leadership::Leader);
        let (done, done_receiver) = tokio::sync::oneshot::channel::<()>();
        let work = async {
            let result = reconcile(
                &client,
                &engine,
                &mut guest,
                &settings,
                &metrics,
                stopping.clone(),
            )
            .await;
            let _ = done.send(());
            result
        };
        let hold = elector.hold(renewed, async {
            let _ = done_receiver.await;
        });
        tokio::pin!(work, hold);
        tokio::select! {
            held = &mut hold => {
                // Dropping `work` abandons in-flight reconciles: another replica may be
                // leading already, and two writers would fight.
                metrics.set_leadership(Leadership::Unknown);
                warn!(reason = ?held, "leadership lost: stopped reconciling at once");
            }
            result = &mut work => {
                // The last write is done: hand the Lease over (released in `hold`).
                hold.await;
                return result.map_err(Into::into);
            }
        }
    }
}

/// Runs the controller until `stopping`, again for each new parent kind a hot swap hands over.
async fn reconcile(
    client: &kube::Client,
    engine: &Arc<GuestEngine>,
    guest: &mut Arc<LoadedGuest>,
    settings: &RunSettings,
    metrics: &Arc<Metrics>,
    stopping: watch::Receiver<bool>,
) -> Result<(), StartError> {
    loop {
        let stopped = controller::run(
            client.clone(),
            Arc::clone(engine),
            Arc::clone(guest),
            settings.clone(),
            Arc::clone(metrics),
            stopped(stopping.clone()),
        )
        .await?;
        match stopped {
            Stopped::Shutdown => return Ok(()),
            Stopped::NewParentKind(next) => *guest = Arc::new(*next),
        }
    }
}

/// Resolves once `stopping` turns true.
async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stopping| *stopping).await;
}
