//! The `interventions` table's SQL, one function per operation, each taking a connection.
//!
//! Open proposals are capped (`API_MAX_OPEN_PROPOSALS`) like the job queues: a proposal takes the
//! proposals' cap lock, counts the interventions in state `proposed` and inserts, in one
//! transaction, so concurrent proposals are serialized and the API never records one while the
//! cap is reached. The jobs an intervention queues count against their kind's queue cap
//! ([`crate::jobs::queries::make_room`]).

use super::{Intervention, Proposal};
use crate::jobs::queries::{CAP_LOCK_CLASS, DB_ERROR, QueueFull, make_room};
use domain::JobKind;
use otel::trace::messaging::JobSpan;
use serde_json::json;
use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

/// Why a proposal was not recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotProposed {
    /// An employee it names does not exist.
    UnknownEmployee,
    /// `open` interventions are proposed already, and `cap` may be.
    Full { open: i64, cap: u32 },
}

/// Records a proposed reassignment under `id`, unless `cap` interventions are proposed already or
/// an employee it names does not exist.
pub async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    p: &Proposal,
    cap: u32,
) -> Result<Result<Intervention, NotProposed>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext('interventions:proposed'))")
        .bind(CAP_LOCK_CLASS)
        .execute(&mut *tx)
        .await?;
    // After the lock, in a statement of its own: it sees every proposal committed before.
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM interventions WHERE state = 'proposed'")
            .fetch_one(&mut *tx)
            .await?;
    if open >= i64::from(cap) {
        return Ok(Err(NotProposed::Full { open, cap }));
    }
    let result = sqlx::query(
        "INSERT INTO interventions (id, kind, employee_id, new_manager_id, reason) \
         VALUES ($1, 'reassign', $2, $3, $4)",
    )
    .bind(id)
    .bind(p.employee_id)
    .bind(p.new_manager_id)
    .bind(&p.reason)
    .execute(&mut *tx)
    .await;
    match result {
        Ok(_) => {}
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("23503") => {
            return Ok(Err(NotProposed::UnknownEmployee));
        }
        Err(e) => return Err(e),
    }
    let intervention = fetch(&mut tx, id).await?;
    tx.commit().await?;
    // Just inserted in this transaction: it is there.
    intervention.map(Ok).ok_or(sqlx::Error::RowNotFound)
}

/// What stops a job from being queued.
pub enum Refusal {
    /// There is no such intervention.
    Missing,
    /// The intervention is in this state, not one the job starts from.
    WrongState(String),
    /// A job of the intervention, this one, is queued or running.
    Busy(Uuid),
    /// The job's queue is at its cap.
    QueueFull(QueueFull),
}

/// Queues a `kind` job for intervention `id` if its state is one of `allowed` and no other job of
/// it is queued or running; the intervention row is locked meanwhile, so two requests cannot
/// queue conflicting jobs; and if fewer than `queue_cap` jobs of `kind` are pending. Returns the
/// job id. The transaction is the producer span `send {queue}`, as for every job
/// ([`crate::jobs::queries::enqueue`]).
pub async fn queue(
    conn: &mut PgConnection,
    id: Uuid,
    kind: JobKind,
    allowed: &[&str],
    queue_cap: u32,
) -> Result<Result<Uuid, Refusal>, sqlx::Error> {
    let send = JobSpan::send(kind.queue());
    let traceparent = send.traceparent();
    let queued = send
        .run(queue_in_transaction(conn, id, kind, allowed, queue_cap, traceparent.as_deref()))
        .await;
    match &queued {
        Ok(Ok(job)) => send.set_message_id(job),
        Ok(Err(refusal)) => send.fail(refusal.error_type(), refusal.error_type()),
        Err(e) => send.fail(DB_ERROR, e),
    }
    queued
}

impl Refusal {
    /// The send span's `error.type` for this refusal.
    fn error_type(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::WrongState(_) => "wrong_state",
            Refusal::Busy(_) => "busy",
            Refusal::QueueFull(_) => "queue_full",
        }
    }
}

async fn queue_in_transaction(
    conn: &mut PgConnection,
    id: Uuid,
    kind: JobKind,
    allowed: &[&str],
    queue_cap: u32,
    traceparent: Option<&str>,
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
    if let Some(full) = make_room(&mut tx, kind, queue_cap).await? {
        return Ok(Err(Refusal::QueueFull(full)));
    }
    let params = json!({ "intervention_id": id });
    let job = domain::enqueue_traced(&mut tx, kind, &params, traceparent).await?;
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
