//! The HTTP endpoint: `/metrics` (OpenMetrics text), `/healthz` (the process answers), `/readyz`
//! (ready to reconcile, per guest: see [`Readiness::report`]) and `/shadow` (each guest's shadow
//! candidate report, JSON: see [`ShadowBoard::to_json`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;
use crate::readiness::Readiness;
use crate::reconcile::shadow::ShadowBoard;

/// Binds the HTTP endpoint and serves it in the background; returns the bound address (useful
/// with port 0).
///
/// # Errors
/// The bind error, e.g. the port is taken.
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shadow: Arc<ShadowBoard>,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(metrics_text).with_state(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz).with_state(readiness))
        .route("/shadow", get(shadow_report).with_state(shadow));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "metrics and health endpoint stopped");
        }
    });
    Ok(bound)
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn shadow_report(State(shadow): State<Arc<ShadowBoard>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        shadow.to_json().to_string(),
    )
}

/// Ready when this replica knows its role and, when it reconciles, every guest it serves has a
/// guest loaded, its child caches listed and its parent watch working: before that, reconciles
/// would wait, so a Service should not count this replica in. The body says so per guest, one
/// `[+]`/`[-]` line each as the API server's own `/readyz?verbose` does, then `ok` or
/// `not ready`.
async fn readyz(State(readiness): State<Arc<Readiness>>) -> impl IntoResponse {
    let (ready, report) = readiness.report();
    if ready {
        (StatusCode::OK, format!("{report}ok\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{report}not ready\n"),
        )
    }
}
