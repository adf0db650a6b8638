//! `/api/interventions`: proposing a planned graph change, and queueing its execution or rollback
//! (the worker applies it). The intervention row is locked while a job is queued, so two requests
//! cannot queue conflicting jobs; the worker's own checks make a repeated job harmless anyway.

use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::interventions::queries::{self, NotProposed, Refusal};
use crate::interventions::{Intervention, Kind, Proposal};
use crate::routes::jobs::accepted;
use crate::state::AppState;
use crate::validate::{self, TextKind};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use domain::JobKind;
use otel::catalogue::InterventionKind;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(propose))
        .routes(routes!(get_intervention))
        .routes(routes!(execute))
        .routes(routes!(rollback))
}

/// Proposes an intervention.
#[utoipa::path(post, path = "/api/interventions", tag = "interventions", request_body = Proposal,
    responses((status = 201, body = Intervention),
        (status = 409, description = "Too many open proposals (API_MAX_OPEN_PROPOSALS)")))]
async fn propose(
    State(state): State<AppState>,
    Json(p): Json<Proposal>,
) -> Result<impl IntoResponse, ApiError> {
    let Kind::Reassign = p.kind;
    if p.employee_id == p.new_manager_id {
        return Err(ApiError::Invalid("an employee cannot be their own manager".into()));
    }
    validate::text("reason", &p.reason, TextKind::Prose, 1, 1000)?;
    let id = Uuid::new_v4();
    let cap = state.caps.open_proposals;
    let inserted = state.db.run(async |c| queries::insert(c, id, &p, cap).await).await?;
    let intervention = inserted.map_err(|refusal| match refusal {
        NotProposed::UnknownEmployee => ApiError::Invalid(format!(
            "employee {} or {} does not exist",
            p.employee_id, p.new_manager_id
        )),
        // 409, not 429: proposals do not drain by themselves, a person has to execute them.
        NotProposed::Full { open, cap } => ApiError::Conflict(format!(
            "too many open intervention proposals: {open} are proposed and at most {cap} may be \
             (API_MAX_OPEN_PROPOSALS); execute some before proposing more"
        )),
    })?;
    state.intervention_metrics.proposed(InterventionKind::Reassign);
    let location = format!("/api/interventions/{id}");
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(intervention)))
}

/// One intervention.
#[utoipa::path(get, path = "/api/interventions/{id}", tag = "interventions",
    params(("id" = Uuid, Path, description = "Intervention id")),
    responses((status = 200, body = Intervention)))]
async fn get_intervention(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Intervention>, ApiError> {
    state
        .db
        .run(async |c| queries::fetch(c, id).await)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound(format!("no intervention {id}")))
}

/// Queues the execution of a proposed (or rolled-back) intervention.
#[utoipa::path(post, path = "/api/interventions/{id}/execute", tag = "interventions",
    params(("id" = Uuid, Path, description = "Intervention id")),
    responses((status = 202, body = crate::jobs::Accepted),
        (status = 409, description = "The intervention is not proposed or rolled back, or has a job queued")))]
async fn execute(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    queue(&state, id, JobKind::InterventionExecute, &["proposed", "rolled_back"]).await
}

/// Queues the rollback of an executed intervention.
#[utoipa::path(post, path = "/api/interventions/{id}/rollback", tag = "interventions",
    params(("id" = Uuid, Path, description = "Intervention id")),
    responses((status = 202, body = crate::jobs::Accepted),
        (status = 409, description = "The intervention is not executed, or has a job queued")))]
async fn rollback(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    queue(&state, id, JobKind::InterventionRollback, &["executed"]).await
}

async fn queue(
    state: &AppState,
    id: Uuid,
    kind: JobKind,
    allowed: &[&str],
) -> Result<impl IntoResponse + use<>, ApiError> {
    let cap = state.caps.queued_jobs;
    let outcome = state.db.run(async |c| queries::queue(c, id, kind, allowed, cap).await).await?;
    let job = outcome.map_err(|refusal| match refusal {
        Refusal::Missing => ApiError::NotFound(format!("no intervention {id}")),
        Refusal::WrongState(s) => ApiError::Conflict(format!(
            "intervention {id} is {s}; this needs it to be {}",
            allowed.join(" or ")
        )),
        Refusal::Busy(job) => {
            ApiError::Conflict(format!("intervention {id} already has job {job} queued or running"))
        }
        Refusal::QueueFull(full) => full.into(),
    })?;
    state.queue_metrics.enqueued(kind.queue());
    Ok(accepted(job, format!("/api/jobs/{job}")))
}
