//! `/health/live` (the process answers) and `/health/ready` (Postgres and Redis answer and no
//! breaker is open; otherwise 503 naming what is down). Both are measured like any route;
//! dashboards filter them out.

use crate::error::problem;
use crate::extract::Query;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use otel::catalogue::BreakerState;
use serde::Deserialize;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::IntoParams;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(live)).routes(routes!(ready))
}

/// The health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: &'static str,
    /// Each dependency: `up`.
    pub checks: BTreeMap<&'static str, String>,
}

/// The query of `/health/live`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LiveQuery {
    /// `json` (the default) or `prometheus`: an empty document in the Prometheus text format, for
    /// Prometheus' own liveness probe (`up` of the scrape job is the answer).
    #[param(inline, value_type = Option<ProbeFormat>)]
    format: Option<String>,
}

/// The values of `format` (the handler reads a string: servicekit's probe parses it).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code, reason = "only its schema is used: the handler reads a string")]
enum ProbeFormat {
    Json,
    Prometheus,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health", params(LiveQuery),
    responses(
        (status = 200, description = "JSON, or with `?format=prometheus` an empty Prometheus text document",
            content((Health = "application/json"), (String = "text/plain")))))]
async fn live(Query(query): Query<LiveQuery>) -> Response {
    match servicekit::probe::format(query.format.as_deref()) {
        Ok(servicekit::probe::Format::Json) => {
            axum::Json(Health { status: "ok", checks: BTreeMap::new() }).into_response()
        }
        Ok(servicekit::probe::Format::Prometheus) => {
            ([(header::CONTENT_TYPE, servicekit::probe::CONTENT_TYPE)], servicekit::probe::BODY)
                .into_response()
        }
        Err(detail) => problem(StatusCode::BAD_REQUEST, detail),
    }
}

/// How long readiness waits for Postgres: a probe must answer quickly (a hung Postgres would hold
/// it until the pool's timeout, and probes usually give up after a second).
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Postgres and Redis answer and no breaker is open.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = Health)))]
async fn ready(State(state): State<AppState>) -> Response {
    let postgres = async {
        if !state.db.migrated() {
            return Err("unreachable since start-up, schema not migrated yet".to_string());
        }
        if state.db.breaker().state() == BreakerState::Open {
            return Err("circuit breaker open".to_string());
        }
        let asked = state.db.run(async |c| crate::db::ping(c).await);
        match tokio::time::timeout(READY_TIMEOUT, asked).await {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {} s", READY_TIMEOUT.as_secs())),
        }
    };
    let redis = async {
        if state.redis.breaker().state() == BreakerState::Open {
            return Err("circuit breaker open".to_string());
        }
        state.redis.ping().await
    };
    let (postgres, redis) = tokio::join!(postgres, redis);
    let mut checks = BTreeMap::new();
    let mut down = Vec::new();
    for (name, result) in [("postgres", postgres), ("redis", redis)] {
        match result {
            Ok(()) => {
                checks.insert(name, "up".to_string());
            }
            Err(e) => down.push(format!("{name}: {e}")),
        }
    }
    if down.is_empty() {
        axum::Json(Health { status: "ready", checks }).into_response()
    } else {
        problem(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}", down.join("; ")))
    }
}
