//! `reconciler-host shadow`: the shadow candidates' reports of a running host, read from its HTTP
//! endpoint (`/shadow`) and printed for people (the parents that diverge or fail, field by field)
//! or as the endpoint's JSON. Exit codes as `diff`'s: 0 every candidate agrees (or there is
//! none), 1 a candidate diverges or fails somewhere, 2 an error.

mod text;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long the host may take to answer.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest report read (the host's reports are bounded far below this).
const MAX_REPORT_BYTES: usize = 16 << 20;

/// Flags of `reconciler-host shadow`.
#[derive(Debug, Args)]
pub struct ShadowArgs {
    /// The host's HTTP endpoint (its `--metrics-bind-address`), e.g. `http://127.0.0.1:8080`
    /// (through `kubectl port-forward` for a host in a pod).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub endpoint: String,
    /// Output: the diverging and failing parents for people, or the report as JSON.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ShadowFormat::Text)]
    pub output: ShadowFormat,
}

/// Output format of `shadow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShadowFormat {
    Text,
    Json,
}

/// Prints the report; the exit code says whether any candidate diverges or fails.
pub async fn run(args: &ShadowArgs) -> ExitCode {
    let report = match fetch(&args.endpoint).await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    match args.output {
        ShadowFormat::Text => print!("{}", text::text(&report)),
        ShadowFormat::Json => println!("{report}"),
    }
    if text::any_disagreement(&report) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The host's `/shadow` report.
async fn fetch(endpoint: &str) -> anyhow::Result<Value> {
    let url = format!("{}/shadow", endpoint.trim_end_matches('/'));
    let uri: hyper::Uri = url
        .parse()
        .with_context(|| format!("--endpoint {endpoint:?} is not a URL (http://HOST:PORT)"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = tokio::time::timeout(TIMEOUT, client.get(uri))
        .await
        .with_context(|| format!("{url} did not answer within {TIMEOUT:?}"))?
        .with_context(|| format!("cannot reach the host at {url} (is it running, and is this its --metrics-bind-address?)"))?;
    let status = response.status();
    let body = tokio::time::timeout(
        TIMEOUT,
        Limited::new(response.into_body(), MAX_REPORT_BYTES).collect(),
    )
    .await
    .with_context(|| format!("{url} did not send its report within {TIMEOUT:?}"))?
    .map_err(|error| anyhow::anyhow!("reading {url}: {error}"))?
    .to_bytes();
    if !status.is_success() {
        anyhow::bail!("{url} answered {status}: is this a reconciler-host that serves /shadow?");
    }
    serde_json::from_slice(&body).with_context(|| format!("{url} did not answer JSON"))
}
