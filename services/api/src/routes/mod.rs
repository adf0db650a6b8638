//! The router: every route with its OpenAPI description (utoipa), the problem-shaped fallback,
//! and the layers every request goes through. From the outside in: HTTP metrics (so they see the
//! final status, timeouts and refusals included), problem rewriting, the request timeout, the body
//! limit; then, on the `/api/*` routes, authentication and the token's rate limit.

mod graph;
mod health;
mod interventions;
pub mod jobs;
pub mod openapi;

use crate::auth::{Tokens, layer::authenticate, limit};
use crate::config::Config;
use crate::error::{ApiError, ensure_problem};
use crate::state::AppState;
use axum::Router;
use axum::http::StatusCode;
use axum::middleware::map_response;
use axum::routing::get;
use otel::layers::HttpMetricsLayer;
use otel::metrics::HttpServerMetrics;
use std::sync::Arc;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

/// The API's OpenAPI document header; the paths come from the routers, the problem responses
/// and the security requirements from [`openapi::Problems`] (see [`document`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "orgraph API",
        description = "The org-graph platform: graph statistics and updates, causal-analysis and \
                       export jobs, interventions. Errors are RFC 9457 problems \
                       (`application/problem+json`). Every `/api/*` operation needs a bearer \
                       token whose role is at least the one its security requirement names."
    ),
    components(schemas(crate::error::Problem))
)]
struct ApiDoc;

/// The routes under `/api/` (each needs a token), without their layers.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(graph::router()).merge(jobs::router()).merge(interventions::router())
}

/// The routes and the document of their paths, completed by [`openapi::Problems`]. The modifier
/// runs here rather than in `#[openapi(modifiers(...))]`: that runs in `ApiDoc::openapi()`, before
/// utoipa-axum has added the routers' paths.
fn split(protected: OpenApiRouter<AppState>) -> (Router<AppState>, Document) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(protected)
        .split_for_parts();
    openapi::Problems.modify(&mut doc);
    (router, doc)
}

/// The OpenAPI document `GET /api/openapi.json` serves.
pub fn document() -> Document {
    split(api_routes()).1
}

/// The whole application.
pub fn router(state: AppState, config: &Config, tokens: Arc<Tokens>) -> Router {
    let protected = api_routes()
        .layer(limit::layer(config.rate_limit_per_s, config.rate_limit_burst))
        .layer(axum::middleware::from_fn_with_state(tokens, authenticate));
    let (router, openapi) = split(protected);
    let openapi = Arc::new(openapi);
    router
        .route(
            "/api/openapi.json",
            get(move || async move { axum::Json(openapi.as_ref().clone()) }),
        )
        .fallback(not_found)
        .with_state(state)
        .layer(axum::extract::DefaultBodyLimit::max(config.body_limit))
        .layer(RequestBodyLimitLayer::new(config.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ))
        .layer(map_response(ensure_problem))
        .layer(HttpMetricsLayer::new(HttpServerMetrics::new(&otel::meter())))
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}
