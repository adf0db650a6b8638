//! `/health/live` (the process answers) and `/health/ready` (Postgres and Redis answer and no
//! breaker is open; otherwise 503 naming what is down). Both are measured like any route;
//! dashboards filter them out.

use crate::error::problem;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use otel::metrics::labels::BreakerState;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The health routes.
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

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Health)))]
async fn live() -> axum::Json<Health> {
    axum::Json(Health { status: "ok", checks: BTreeMap::new() })
}

/// Postgres and Redis answer and no breaker is open.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = crate::error::Problem)))]
async fn ready(State(state): State<AppState>) -> Response {
    let postgres = async {
        if state.db.breaker().state() == BreakerState::Open {
            return Err("circuit breaker open".to_string());
        }
        state
            .db
            .run(async |c| sqlx::query("SELECT 1").execute(c).await.map(|_| ()))
            .await
            .map_err(|e| e.to_string())
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
