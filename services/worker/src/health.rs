//! The worker's small HTTP listener, so compose and the native stack can health-check it:
//! `/health/live` (the process answers) and `/health/ready` (Postgres answers and the queue
//! workers are running; 503 with a JSON body naming what is not otherwise).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// What readiness looks at.
#[derive(Clone)]
pub struct Health {
    pub pool: PgPool,
    /// Set once the queue workers run; cleared when they stop.
    pub running: Arc<AtomicBool>,
    /// Queue workers that stopped on an error and wait to restart.
    pub down: Arc<AtomicUsize>,
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .fallback(|| async {
            problem(
                StatusCode::NOT_FOUND,
                "no such route: the worker serves /health/live and /health/ready",
            )
        })
        .with_state(health)
}

/// The query of `/health/live`.
#[derive(Debug, serde::Deserialize)]
struct LiveQuery {
    format: Option<String>,
}

/// The process answers: JSON, or an empty Prometheus document for Prometheus' probe.
async fn live(Query(query): Query<LiveQuery>) -> Response {
    match servicekit::probe::format(query.format.as_deref()) {
        Ok(servicekit::probe::Format::Json) => Json(json!({"status": "ok"})).into_response(),
        Ok(servicekit::probe::Format::Prometheus) => {
            ([(header::CONTENT_TYPE, servicekit::probe::CONTENT_TYPE)], servicekit::probe::BODY)
                .into_response()
        }
        Err(detail) => problem(StatusCode::BAD_REQUEST, &detail),
    }
}

async fn ready(State(health): State<Health>) -> Response {
    let db =
        tokio::time::timeout(Duration::from_secs(2), sqlx::query("SELECT 1").execute(&health.pool))
            .await;
    let mut down = Vec::new();
    match db {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => down.push(format!("postgres: {e}")),
        Err(_) => down.push("postgres: no answer within 2 s".to_string()),
    }
    if !health.running.load(Ordering::Relaxed) {
        down.push("queue workers are not running".to_string());
    }
    match health.down.load(Ordering::Relaxed) {
        0 => {}
        n => down.push(format!("{n} queue worker(s) lost the database and are reconnecting")),
    }
    if down.is_empty() {
        Json(json!({"status": "ready", "checks": {"postgres": "up", "workers": "running"}}))
            .into_response()
    } else {
        problem(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {}", down.join("; ")))
    }
}

fn problem(status: StatusCode, detail: &str) -> Response {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/problem+json"),
    );
    response
}
