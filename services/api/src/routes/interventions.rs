//! `/api/interventions`: proposing a planned graph change, and queueing its execution or rollback
//! (the worker applies it). The intervention row is locked while a job is queued, so two requests
//! cannot queue conflicting jobs; the worker's own checks make a repeated job harmless anyway.

use crate::error::ApiError;
use crate::extract::{Json, Path};
use crate::routes::jobs::accepted;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use domain::JobKind;
use otel::catalogue::InterventionKind;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, Row};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The intervention routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(propose))
        .routes(routes!(get_intervention))
        .routes(routes!(execute))
        .routes(routes!(rollback))
}

/// The kinds of intervention.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Move an employee under a new manager.
    Reassign,
}

/// A proposed change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// `reassign`.
    pub kind: Kind,
    /// Who moves.
    pub employee_id: i64,
    /// Their new manager (not themselves).
    pub new_manager_id: i64,
    /// Why, 1 to 1000 characters.
    pub reason: String,
}

/// An intervention as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Intervention {
    /// Its id.
    pub id: Uuid,
    /// `reassign`.
    pub kind: String,
    /// Who moves.
    pub employee_id: i64,
    /// Their new manager.
    pub new_manager_id: i64,
    /// Their manager before execution (set by the execution).
    pub old_manager_id: Option<i64>,
    /// Why.
    pub reason: String,
    /// `proposed`, `executed` or `rolled_back`.
    pub state: String,
    /// When it was proposed.
    pub created_at: DateTime<Utc>,
}

/// Proposes an intervention.
#[utoipa::path(post, path = "/api/interventions", tag = "interventions", request_body = Proposal,
    responses((status = 201, body = Intervention), (status = 422, body = crate::error::Problem)))]
async fn propose(
    State(state): State<AppState>,
    Json(p): Json<Proposal>,
) -> Result<impl IntoResponse, ApiError> {
    let Kind::Reassign = p.kind;
    if p.employee_id == p.new_manager_id {
        return Err(ApiError::Invalid("an employee cannot be their own manager".into()));
    }
    let len = p.reason.chars().count();
    if !(1..=1000).contains(&len) {
        return Err(ApiError::Invalid(format!("reason must be 1 to 1000 characters, not {len}")));
    }
    let id = Uuid::new_v4();
    let inserted = state
        .db
        .run(async |c| {
            let result = sqlx::query(
                "INSERT INTO interventions (id, kind, employee_id, new_manager_id, reason) \
                 VALUES ($1, 'reassign', $2, $3, $4)",
            )
            .bind(id)
            .bind(p.employee_id)
            .bind(p.new_manager_id)
            .bind(&p.reason)
            .execute(&mut *c)
            .await;
            match result {
                Ok(_) => fetch(c, id).await,
                Err(e)
                    if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("23503") =>
                {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        })
        .await?;
    let intervention = inserted.ok_or_else(|| {
        ApiError::Invalid(format!(
            "employee {} or {} does not exist",
            p.employee_id, p.new_manager_id
        ))
    })?;
    state.intervention_metrics.proposed(InterventionKind::Reassign);
    let location = format!("/api/interventions/{id}");
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(intervention)))
}

/// One intervention.
#[utoipa::path(get, path = "/api/interventions/{id}", tag = "interventions",
    params(("id" = Uuid, Path, description = "Intervention id")),
    responses((status = 200, body = Intervention), (status = 404, body = crate::error::Problem)))]
async fn get_intervention(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Intervention>, ApiError> {
    state
        .db
        .run(async |c| fetch(c, id).await)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound(format!("no intervention {id}")))
}

/// Queues the execution of a proposed (or rolled-back) intervention.
#[utoipa::path(post, path = "/api/interventions/{id}/execute", tag = "interventions",
    params(("id" = Uuid, Path, description = "Intervention id")),
    responses((status = 202, body = crate::jobs::Accepted), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
async fn execute(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    queue(&state, id, JobKind::InterventionExecute, &["proposed", "rolled_back"]).await
}

/// Queues the rollback of an executed intervention.
#[utoipa::path(post, path = "/api/interventions/{id}/rollback", tag = "interventions",
    params(("id" = Uuid, Path, description = "Intervention id")),
    responses((status = 202, body = crate::jobs::Accepted), (status = 404, body = crate::error::Problem),
        (status = 409, body = crate::error::Problem)))]
async fn rollback(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
) -> Result<impl IntoResponse, ApiError> {
    queue(&state, id, JobKind::InterventionRollback, &["executed"]).await
}

/// What stops a job from being queued.
enum Refusal {
    Missing,
    WrongState(String),
    Busy(Uuid),
}

async fn queue(
    state: &AppState,
    id: Uuid,
    kind: JobKind,
    allowed: &[&str],
) -> Result<impl IntoResponse + use<>, ApiError> {
    let outcome = state
        .db
        .run(async |c| {
            let mut tx = sqlx::Connection::begin(c).await?;
            let row = sqlx::query("SELECT state FROM interventions WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else { return Ok(Err(Refusal::Missing)) };
            let current: String = row.get("state");
            if !allowed.contains(&current.as_str()) {
                return Ok(Err(Refusal::WrongState(current)));
            }
            let busy: Option<Uuid> = sqlx::query_scalar(
                "SELECT id FROM jobs WHERE kind IN ('intervention_execute', 'intervention_rollback') \
                 AND params->>'intervention_id' = $1 AND status IN ('pending', 'running') LIMIT 1",
            )
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(job) = busy {
                return Ok(Err(Refusal::Busy(job)));
            }
            let params = json!({ "intervention_id": id });
            let job = domain::enqueue(&mut tx, kind, &params).await?;
            tx.commit().await?;
            Ok(Ok(job))
        })
        .await?;
    let job = outcome.map_err(|refusal| match refusal {
        Refusal::Missing => ApiError::NotFound(format!("no intervention {id}")),
        Refusal::WrongState(s) => ApiError::Conflict(format!(
            "intervention {id} is {s}; this needs it to be {}",
            allowed.join(" or ")
        )),
        Refusal::Busy(job) => {
            ApiError::Conflict(format!("intervention {id} already has job {job} queued or running"))
        }
    })?;
    state.queue_metrics.enqueued(kind.queue());
    Ok(accepted(job, format!("/api/jobs/{job}")))
}

async fn fetch(conn: &mut PgConnection, id: Uuid) -> Result<Option<Intervention>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, kind, employee_id, new_manager_id, old_manager_id, reason, state, created_at \
         FROM interventions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| Intervention {
        id: r.get("id"),
        kind: r.get("kind"),
        employee_id: r.get("employee_id"),
        new_manager_id: r.get("new_manager_id"),
        old_manager_id: r.get("old_manager_id"),
        reason: r.get("reason"),
        state: r.get("state"),
        created_at: r.get("created_at"),
    }))
}
