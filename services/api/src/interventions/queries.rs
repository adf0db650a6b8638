//! The `interventions` table's SQL, one function per operation, each taking a connection.

use super::{Intervention, Proposal};
use domain::JobKind;
use serde_json::json;
use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

/// Records a proposed reassignment under `id`; `None` if an employee it names does not exist.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    p: &Proposal,
) -> Result<Option<Intervention>, sqlx::Error> {
    let result = sqlx::query(
        "INSERT INTO interventions (id, kind, employee_id, new_manager_id, reason) \
         VALUES ($1, 'reassign', $2, $3, $4)",
    )
    .bind(id)
    .bind(p.employee_id)
    .bind(p.new_manager_id)
    .bind(&p.reason)
    .execute(&mut *conn)
    .await;
    match result {
        Ok(_) => fetch(conn, id).await,
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("23503") => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What stops a job from being queued.
pub enum Refusal {
    /// There is no such intervention.
    Missing,
    /// The intervention is in this state, not one the job starts from.
    WrongState(String),
    /// A job of the intervention, this one, is queued or running.
    Busy(Uuid),
}

/// Queues a `kind` job for intervention `id` if its state is one of `allowed` and no other job of
/// it is queued or running; the intervention row is locked meanwhile, so two requests cannot
/// queue conflicting jobs. Returns the job id.
pub async fn queue(
    conn: &mut PgConnection,
    id: Uuid,
    kind: JobKind,
    allowed: &[&str],
) -> Result<Result<Uuid, Refusal>, sqlx::Error> {
    let mut tx = conn.begin().await?;
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
}

/// One intervention.
pub async fn fetch(conn: &mut PgConnection, id: Uuid) -> Result<Option<Intervention>, sqlx::Error> {
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
