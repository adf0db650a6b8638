//! `/api/analysis`, `/api/exports`, `/api/jobs`: accepting background jobs (202 + Location) and
//! reporting their state. Acceptance writes the job row and its queue entry in one transaction.

use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::jobs::{Accepted, JobView, queries};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use domain::JobKind;
use otel::catalogue::{ExportFormat, ExportKind, Label};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_analysis))
        .routes(routes!(get_analysis))
        .routes(routes!(start_export))
        .routes(routes!(get_export))
        .routes(routes!(get_job))
}

/// Parameters of a causal analysis.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalysisRequest {
    /// PageRank iterations, 1 to 200 (default 30).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 200)]
    pub iterations: Option<u32>,
    /// Source nodes sampled for betweenness, 1 to 2000 (default 64).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2000)]
    pub samples: Option<u32>,
}

/// Starts a causal analysis of the graph: influence scores and the estimated effect of each open
/// intervention.
#[utoipa::path(post, path = "/api/analysis", tag = "jobs", request_body = AnalysisRequest,
    responses((status = 202, body = Accepted)))]
async fn start_analysis(
    State(state): State<AppState>,
    Json(request): Json<AnalysisRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let iterations = request.iterations.unwrap_or(30);
    let samples = request.samples.unwrap_or(64);
    if !(1..=200).contains(&iterations) {
        return Err(ApiError::Invalid(format!("iterations must be 1 to 200, not {iterations}")));
    }
    if !(1..=2000).contains(&samples) {
        return Err(ApiError::Invalid(format!("samples must be 1 to 2000, not {samples}")));
    }
    let params = json!({ "iterations": iterations, "samples": samples });
    accept(&state, JobKind::Analysis, params, "/api/analysis").await
}

/// An analysis job and, once done, its result.
#[utoipa::path(get, path = "/api/analysis/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, body = JobView)))]
async fn get_analysis(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<JobView>, ApiError> {
    state.jobs.get(&state.db, id, &[JobKind::Analysis]).await.map(axum::Json)
}

/// What to export.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// What the export contains: `employee_metrics`.
    pub kind: ExportKindParam,
    /// `csv` or `jsonl`.
    pub format: FormatParam,
}

/// Export file formats.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FormatParam {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// The kinds of export.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportKindParam {
    /// Per employee: degree, team, influence scores.
    EmployeeMetrics,
}

/// Starts an export of employee metrics.
#[utoipa::path(post, path = "/api/exports", tag = "jobs", request_body = ExportRequest,
    responses((status = 202, body = Accepted)))]
async fn start_export(
    State(state): State<AppState>,
    Json(request): Json<ExportRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let ExportKindParam::EmployeeMetrics = request.kind;
    let format = match request.format {
        FormatParam::Csv => ExportFormat::Csv,
        FormatParam::Jsonl => ExportFormat::Jsonl,
    };
    let params = json!({ "kind": ExportKind::EmployeeMetrics.as_str(), "format": format.as_str() });
    accept(&state, JobKind::Export, params, "/api/exports").await
}

/// An export job and, once done, where its file is and how big.
#[utoipa::path(get, path = "/api/exports/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, body = JobView)))]
async fn get_export(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<JobView>, ApiError> {
    state.jobs.get(&state.db, id, &[JobKind::Export]).await.map(axum::Json)
}

/// Any job, e.g. an intervention's execution or rollback.
#[utoipa::path(get, path = "/api/jobs/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, body = JobView)))]
async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<JobView>, ApiError> {
    state.jobs.get(&state.db, id, JobKind::ALL).await.map(axum::Json)
}

/// Records and queues a job, answering 202 with where to follow it.
async fn accept(
    state: &AppState,
    kind: JobKind,
    params: serde_json::Value,
    base: &str,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let cap = state.caps.queued_jobs;
    let id = state.db.run(async |c| queries::enqueue(c, kind, &params, cap).await).await??;
    state.queue_metrics.enqueued(kind.queue());
    Ok(accepted(id, format!("{base}/{id}")))
}

/// The 202 answer for job `id`, followed at `location`.
pub fn accepted(id: Uuid, location: String) -> impl IntoResponse {
    let body = Accepted { id, status: "pending".into(), location: location.clone() };
    (StatusCode::ACCEPTED, [(header::LOCATION, location)], axum::Json(body))
}
