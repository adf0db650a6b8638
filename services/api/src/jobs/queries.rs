//! The `jobs` table's SQL, one function per operation, each taking a connection.
//!
//! Every job the API queues first takes its kind's cap lock and counts the kind's pending jobs
//! ([`make_room`]), in the transaction that queues it. The lock serializes the API's enqueues of
//! one kind (short transactions: two inserts), so the count always includes every job queued
//! before: the API never queues a job while `API_MAX_QUEUED_JOBS` of its kind are pending, also
//! under concurrent requests and with several API instances. (Only the worker can push the count
//! over the cap, when it puts a failed attempt back to `pending` for a retry: by the jobs of that
//! kind running at the time, at most.)

use super::JobView;
use domain::JobKind;
use otel::catalogue::Label;
use otel::trace::messaging::JobSpan;
use serde_json::Value;
use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

/// The first key of the caps' advisory locks (two-key form, whose key space is apart from the
/// one-key lock of `domain::reporting`): "orgc". The second key names what is capped.
pub const CAP_LOCK_CLASS: i32 = 0x6f72_6763;

/// A job queue at its cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFull {
    /// The kind whose queue is full.
    pub kind: JobKind,
    /// Its pending jobs.
    pub pending: i64,
    /// The cap.
    pub cap: u32,
}

/// Records a job of `kind` with `params` and puts it on its queue, in one transaction, unless
/// `cap` jobs of the kind are pending. The transaction is the producer span `send {queue}` (a
/// child of the current span, the request's), whose traceparent the job carries.
pub async fn enqueue(
    conn: &mut PgConnection,
    kind: JobKind,
    params: &Value,
    cap: u32,
) -> Result<Result<Uuid, QueueFull>, sqlx::Error> {
    let send = JobSpan::send(kind.queue());
    let traceparent = send.traceparent();
    let queued =
        send.run(enqueue_in_transaction(conn, kind, params, cap, traceparent.as_deref())).await;
    match &queued {
        Ok(Ok(id)) => send.set_message_id(id),
        Ok(Err(full)) => send.fail("queue_full", format_args!("{} pending", full.pending)),
        Err(e) => send.fail(DB_ERROR, e),
    }
    queued
}

/// `error.type` of a send span whose transaction failed.
pub const DB_ERROR: &str = "database";

async fn enqueue_in_transaction(
    conn: &mut PgConnection,
    kind: JobKind,
    params: &Value,
    cap: u32,
    traceparent: Option<&str>,
) -> Result<Result<Uuid, QueueFull>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    if let Some(full) = make_room(&mut tx, kind, cap).await? {
        return Ok(Err(full));
    }
    let id = domain::enqueue_traced(&mut tx, kind, params, traceparent).await?;
    tx.commit().await?;
    Ok(Ok(id))
}

/// Takes `kind`'s cap lock until the end of the caller's transaction, then counts the kind's
/// pending jobs: `Some` when there are `cap` or more (no room for one more). Call it in the
/// transaction that queues the job, before queueing it.
pub async fn make_room(
    tx: &mut PgConnection,
    kind: JobKind,
    cap: u32,
) -> Result<Option<QueueFull>, sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext('jobs:' || $2))")
        .bind(CAP_LOCK_CLASS)
        .bind(kind.as_str())
        .execute(&mut *tx)
        .await?;
    // A statement of its own, after the lock: under READ COMMITTED it sees every job committed
    // by the lock's previous holders. (It reads the partial index `jobs_pending_by_kind`: only
    // pending rows, about `cap` at most, however many finished jobs there are.)
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = $1 AND status = 'pending'")
            .bind(kind.as_str())
            .fetch_one(&mut *tx)
            .await?;
    Ok((pending >= i64::from(cap)).then_some(QueueFull { kind, pending, cap }))
}

/// Reads a job of one of `kinds`.
pub async fn fetch(
    conn: &mut PgConnection,
    id: Uuid,
    kinds: &[JobKind],
) -> Result<Option<JobView>, sqlx::Error> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let row = sqlx::query(
        "SELECT id, kind, status, params, result, error, attempts, created_at, started_at, \
                finished_at \
         FROM jobs WHERE id = $1 AND kind = ANY($2)",
    )
    .bind(id)
    .bind(&kinds)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| JobView {
        id: r.get("id"),
        kind: r.get("kind"),
        status: r.get("status"),
        params: r.get("params"),
        result: r.get("result"),
        error: r.get("error"),
        attempts: r.get("attempts"),
        created_at: r.get("created_at"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
    }))
}
