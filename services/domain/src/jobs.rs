//! Background jobs: their kinds, states and payload, and [`enqueue`], which records a job and puts
//! it on its apalis queue in the caller's transaction.
//!
//! apalis-postgres pushes through its own pool, outside any transaction of ours, so a crash
//! between "row written" and "job queued" would lose a job the API had accepted. Instead the
//! queue entry is inserted here, with the same statement shape apalis' own sink uses
//! (`apalis-postgres` 1.0.0, `queries/task/sink.sql`): a JSON-encoded payload in `job`, a ULID
//! id, `Pending` status. The worker's end-to-end tests prove apalis picks such entries up.

use otel::catalogue::{Label, Queue, TaskType};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

/// What a job does: one kind per `task.type` label value, the same enum, so a kind is its task
/// type. Its string ([`Label::as_str`]) is the `jobs.kind` column, [`Label::parse`] reads it back,
/// and [`TaskType::queue`] is the queue it goes to.
pub type JobKind = TaskType;

/// Where a job is. `running` is set by the worker when an attempt starts; a retried job goes back
/// to `pending` between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, waiting for a worker.
    Pending,
    /// A worker is on it.
    Running,
    /// Finished; the result is stored.
    Done,
    /// Gave up; the error is stored.
    Failed,
}

impl JobStatus {
    /// The `jobs.status` value.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }

    /// Parses a `jobs.status` value.
    pub fn parse(text: &str) -> Option<JobStatus> {
        [JobStatus::Pending, JobStatus::Running, JobStatus::Done, JobStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// Which way an intervention job moves the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterventionAction {
    /// Apply the planned change.
    Execute,
    /// Revert it.
    Rollback,
}

/// What travels on the queue: only the job's id. Everything else is in its `jobs` row, which
/// the worker reads, so a payload can never disagree with the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobPayload {
    /// The `jobs.id` of the job.
    pub job_id: Uuid,
}

/// The apalis queue name (`apalis.jobs.job_type`) of a queue: our bounded name, never a Rust
/// type path.
pub fn queue_name(queue: Queue) -> &'static str {
    queue.as_str()
}

/// apalis' `max_attempts`: 1, because retries are the worker's policy (transient errors only, with
/// backoff); apalis would re-fetch a failed job at once. A job whose worker died is still run again:
/// apalis puts orphaned jobs back to `Pending` whatever their attempts.
pub const MAX_ATTEMPTS: i32 = 1;

/// Records a job of `kind` with `params` and puts it on its queue, both in `conn`'s transaction.
/// Returns the job id. Commit the transaction to make the job visible to workers. The job
/// carries no trace; [`enqueue_traced`] is the same with one.
pub async fn enqueue(
    conn: &mut PgConnection,
    kind: JobKind,
    params: &serde_json::Value,
) -> Result<Uuid, sqlx::Error> {
    enqueue_traced(conn, kind, params, None).await
}

/// [`enqueue`], the job carrying `traceparent` (the W3C traceparent of the span that queued it,
/// `jobs.traceparent`): the worker continues that trace.
pub async fn enqueue_traced(
    conn: &mut PgConnection,
    kind: JobKind,
    params: &serde_json::Value,
    traceparent: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    let job_id = Uuid::new_v4();
    sqlx::query("INSERT INTO jobs (id, kind, params, traceparent) VALUES ($1, $2, $3, $4)")
        .bind(job_id)
        .bind(kind.as_str())
        .bind(params)
        .bind(traceparent)
        .execute(&mut *conn)
        .await?;
    let payload =
        serde_json::to_vec(&JobPayload { job_id }).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO apalis.jobs \
           (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata) \
         VALUES ($1, $2, $3, 'Pending', 0, $4, now(), 0, ''::hstore)",
    )
    .bind(ulid::Ulid::generate().to_string())
    .bind(queue_name(kind.queue()))
    .bind(payload)
    .bind(MAX_ATTEMPTS)
    .execute(&mut *conn)
    .await?;
    Ok(job_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for kind in JobKind::ALL {
            assert_eq!(JobKind::parse(kind.as_str()), Some(*kind));
        }
        assert_eq!(JobKind::parse("nope"), None);
    }

    #[test]
    fn statuses_round_trip() {
        for s in ["pending", "running", "done", "failed"] {
            assert_eq!(JobStatus::parse(s).map(JobStatus::as_str), Some(s));
        }
    }

    #[test]
    fn payload_is_plain_json() {
        let id = Uuid::nil();
        let json = serde_json::to_string(&JobPayload { job_id: id }).unwrap();
        assert_eq!(json, format!("{{\"job_id\":\"{id}\"}}"));
    }
}
