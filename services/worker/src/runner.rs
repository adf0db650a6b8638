//! Running one job, whatever its kind: the reliability policy and its metrics live here, once.
//!
//! * The job's row says what to do; a job already `done` or `failed` (a redelivery after a crash
//!   between finishing and acknowledging) is not run again.
//! * Each attempt runs under the queue's timeout with panics caught.
//! * Transient errors (the database, the file system) are retried with exponential backoff, up to
//!   `RETRY_ATTEMPTS`; a validation error, a timeout and a panic end the job at once.
//! * The job's own row is bookkeeping that must land: reading it and marking it `running`,
//!   `pending`, `done` or `failed` are retried with the same backoff until Postgres takes them,
//!   while their errors are ones that pass (a pool timeout or a lost connection must not leave a
//!   committed intervention `running` forever, nor end a job apalis will not fetch again). If
//!   the worker stops meanwhile, the job is abandoned to the heartbeat recovery and runs again:
//!   jobs are idempotent.
//! * Every attempt is recorded: `orgraph.task.completed` and `orgraph.task.duration` by task type
//!   and status (`success`, `failure`, `retry`, `timeout`, `panic`), `orgraph.worker.active` while
//!   it runs, `messaging.client.consumed.messages` when the job is taken.
//! * Every job is a `process` span continuing the trace of the request that queued it, every
//!   attempt a span under it (see [`run`]).

use crate::context::Ctx;
use domain::{JobKind, JobStatus};
use futures_util::FutureExt;
use otel::catalogue::{Label, TaskStatus};
use otel::trace::messaging::{self, JobSpan};
use serde_json::Value;
use sqlx::Row;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

/// How a job's attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Worth retrying: the database or file system failed.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// Not worth retrying: the job cannot succeed as asked.
    #[error("invalid: {0}")]
    Invalid(String),
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        JobError::Transient(e.into())
    }
}

/// Why the runner gave up on a job (the apalis task then ends `Failed`).
#[derive(Debug, thiserror::Error)]
#[error("job {job_id} {status}: {detail}")]
pub struct JobFailed {
    pub job_id: Uuid,
    /// The last attempt's status.
    pub status: &'static str,
    pub detail: String,
}

/// One job's row, as the runner needs it.
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: Uuid,
    pub kind: JobKind,
    pub params: Value,
    /// Whether this attempt is the last: a transient failure now ends the job. A kind that
    /// records its own outcome (exports, interventions) records it once per job: on success, or
    /// when the job fails for good, never for an attempt the runner will retry.
    pub last_attempt: bool,
    /// Set when the attempt is given up (timed out, or the worker stopping): blocking work, which
    /// dropping its future does not stop, checks it and stops too.
    pub cancelled: Arc<AtomicBool>,
}

impl JobRow {
    /// Whether the runner tries the job again after this attempt ended with `error`: a transient
    /// error before the last attempt. Such an attempt is no outcome of the job.
    pub fn retries_after(&self, error: &JobError) -> bool {
        matches!(error, JobError::Transient(_)) && !self.last_attempt
    }
}

/// Runs job `job_id` with `execute` (the kind's work), applying the retry/timeout/panic policy and
/// recording every attempt. Returns Ok once the job is done (or had already finished).
///
/// The job is the consumer span `process {queue}`, continuing the trace whose traceparent the job
/// carries (a root span without one), and each attempt a span `attempt {kind}` under it, failed
/// with `error.type` `transient`, `invalid`, `timeout` or `panic`. Everything after reading the
/// row runs with the process span current (the bookkeeping, the backoff waits) or the attempt's
/// (the kind's own work), so their Postgres statements are their children.
pub async fn run<F, Fut>(ctx: &Ctx, job_id: Uuid, execute: F) -> Result<(), JobFailed>
where
    F: Fn(Ctx, JobRow) -> Fut,
    Fut: Future<Output = Result<Value, JobError>> + Send,
{
    let began = SystemTime::now();
    let read = recorded(ctx, job_id, "read the job", || load(ctx, job_id));
    let row = messaging::untraced(read).await.map_err(|e| unrecorded(job_id, e))?;
    let Some((row, status, traceparent)) = row else {
        tracing::warn!(%job_id, "queued job has no row; nothing to do");
        return Ok(());
    };
    let process = JobSpan::process(row.kind.queue(), job_id, traceparent.as_deref(), began);
    let outcome = process.run(run_row(ctx, row, status, execute, &process)).await;
    if let Err(e) = &outcome
        && e.status == UNRECORDED
    {
        process.fail(UNRECORDED, &e.detail);
    }
    outcome
}

/// `JobFailed::status` (and the process span's `error.type`) when the job's row could not be
/// written.
const UNRECORDED: &str = "unrecorded";

fn unrecorded(job_id: Uuid, e: sqlx::Error) -> JobFailed {
    JobFailed { job_id, status: UNRECORDED, detail: e.to_string() }
}

/// [`run`] once the row is read, in `process`'s context.
async fn run_row<F, Fut>(
    ctx: &Ctx,
    row: JobRow,
    status: JobStatus,
    execute: F,
    process: &JobSpan,
) -> Result<(), JobFailed>
where
    F: Fn(Ctx, JobRow) -> Fut,
    Fut: Future<Output = Result<Value, JobError>> + Send,
{
    let job_id = row.id;
    let failed = |status: &'static str, detail: String| JobFailed { job_id, status, detail };
    let unrecorded = |e: sqlx::Error| unrecorded(job_id, e);
    let queue = row.kind.queue();
    let _in_flight = ctx.in_flight.enter(queue);
    ctx.queues.dequeued(queue);
    if matches!(status, JobStatus::Done | JobStatus::Failed) {
        tracing::info!(%job_id, status = status.as_str(), "job already finished; not run again");
        return Ok(());
    }
    let task = row.kind;
    let timeout = ctx.config.timeout_of(queue);
    let attempts = ctx.config.attempts;
    for attempt in 1..=attempts {
        let _active = ctx.worker.task_started(queue);
        recorded(ctx, job_id, "mark it running", || mark(ctx, job_id, "running", None, None))
            .await
            .map_err(unrecorded)?;
        let started = Instant::now();
        let cancel = CancelOnDrop(Arc::default());
        let last_attempt = attempt == attempts;
        let this = JobRow { last_attempt, cancelled: cancel.0.clone(), ..row.clone() };
        let span = JobSpan::attempt(task, attempt);
        // Called inside the span too: a kind's synchronous start is part of the attempt.
        let work = span.run(async { execute(ctx.clone(), this).await });
        let work = AssertUnwindSafe(work).catch_unwind();
        let outcome = tokio::time::timeout(timeout, work).await;
        drop(cancel);
        let took = started.elapsed();
        let (status, error_type, detail) = match outcome {
            // The outcome is counted once its row says so: a runner dropped before that (its
            // apalis worker lost under a database fault) leaves the job to run again, and it is
            // counted then, once. Between the write's reply and the count there is no await.
            Ok(Ok(Ok(result))) => {
                drop(span);
                let done = || mark(ctx, job_id, "done", Some(result.clone()), None);
                recorded(ctx, job_id, "mark it done", done).await.map_err(unrecorded)?;
                ctx.worker.task_finished(task, TaskStatus::Success, took);
                return Ok(());
            }
            // As `JobRow::retries_after` says.
            Ok(Ok(Err(JobError::Transient(e)))) if !last_attempt => {
                let error = format!("attempt {attempt}: {e:#}");
                span.fail(TRANSIENT, &error);
                drop(span);
                ctx.worker.task_finished(task, TaskStatus::Retry, took);
                let wait = backoff(ctx.config.retry_base, attempt);
                tracing::warn!(%job_id, attempt, error = format!("{e:#}"), ?wait, "transient failure; retrying");
                let pending = || mark(ctx, job_id, "pending", None, Some(&error));
                recorded(ctx, job_id, "mark it pending", pending).await.map_err(unrecorded)?;
                tokio::time::sleep(wait).await;
                continue;
            }
            Ok(Ok(Err(e))) => (TaskStatus::Failure, e.error_type(), e.to_string()),
            Ok(Err(panic)) => {
                (TaskStatus::Panic, "panic", format!("panicked: {}", panic_message(&panic)))
            }
            Err(_) => (TaskStatus::Timeout, "timeout", format!("timed out after {timeout:?}")),
        };
        span.fail(error_type, &detail);
        drop(span);
        process.fail(error_type, &detail);
        tracing::error!(%job_id, attempt, status = ?status, detail, "job failed");
        recorded(ctx, job_id, "mark it failed", || {
            mark(ctx, job_id, "failed", None, Some(&detail))
        })
        .await
        .map_err(unrecorded)?;
        ctx.worker.task_finished(task, status, took);
        return Err(failed(status_word(status), detail));
    }
    Err(failed("failure", "no attempts configured".into()))
}

/// `error.type` of an attempt that failed transiently.
const TRANSIENT: &str = "transient";

impl JobError {
    /// The `error.type` of an attempt (and a job) that failed with this error.
    fn error_type(&self) -> &'static str {
        match self {
            JobError::Transient(_) => TRANSIENT,
            JobError::Invalid(_) => "invalid",
        }
    }
}

/// Sets its flag when dropped: after an attempt ends, however it ends (a timeout, the runner's own
/// future dropped at shutdown), its blocking work is told to stop. Set after a finished attempt,
/// it has no one left to tell.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs the bookkeeping `write` until it succeeds, waiting the retry backoff between tries, as
/// long as its error is one that passes (Postgres unreachable, restarting, a conflict); any other
/// (a bug: the statement itself is wrong) is returned.
async fn recorded<T, Fut>(
    ctx: &Ctx,
    job_id: Uuid,
    what: &str,
    write: impl Fn() -> Fut,
) -> Result<T, sqlx::Error>
where
    Fut: Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Ok(value) => return Ok(value),
            Err(e) if !passes(&e) => return Err(e),
            Err(e) => {
                let wait = backoff(ctx.config.retry_base, attempt);
                tracing::warn!(%job_id, what, error = %e, ?wait, "bookkeeping failed; retrying");
                tokio::time::sleep(wait).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// Whether a database error passes with time: Postgres unreachable or restarting, out of
/// resources (class 53), or the transaction losing a conflict (40001, 40P01).
fn passes(error: &sqlx::Error) -> bool {
    servicekit::unreachable::is_unreachable(error)
        || matches!(error, sqlx::Error::Database(e) if e.code().is_some_and(|code| {
            ["53", "40001", "40P01"].iter().any(|class| code.starts_with(class))
        }))
}

/// The result of a job's blocking work (`spawn_blocking`): a panic there is the job's panic,
/// resumed so the runner counts it as one (not retried); a task cancelled by the runtime shutting
/// down is worth retrying.
pub fn joined<T>(joined: Result<T, tokio::task::JoinError>, what: &str) -> Result<T, JobError> {
    match joined {
        Ok(value) => Ok(value),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(JobError::Transient(anyhow::anyhow!("{what} thread: {e}"))),
    }
}

/// The wait before retry `attempt` + 1: base × 2^(attempt − 1), at most 30 s.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    base.saturating_mul(factor).min(Duration::from_secs(30))
}

fn status_word(status: TaskStatus) -> &'static str {
    status.as_str()
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".into())
}

/// The job's row, its status and the traceparent it carries.
async fn load(
    ctx: &Ctx,
    id: Uuid,
) -> Result<Option<(JobRow, JobStatus, Option<String>)>, sqlx::Error> {
    let row = sqlx::query("SELECT kind, status, params, traceparent FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(&ctx.pool)
        .await?;
    Ok(row.and_then(|r| {
        let kind = JobKind::parse(r.get::<&str, _>("kind"))?;
        let status = JobStatus::parse(r.get::<&str, _>("status"))?;
        Some((
            JobRow {
                id,
                kind,
                params: r.get("params"),
                last_attempt: false,
                cancelled: Arc::default(),
            },
            status,
            r.get("traceparent"),
        ))
    }))
}

async fn mark(
    ctx: &Ctx,
    id: Uuid,
    status: &str,
    result: Option<Value>,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    // Postgres text cannot hold NUL (a panic message might).
    let error = error.map(|e| e.replace('\0', "\u{fffd}"));
    let query = match status {
        "running" => sqlx::query(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = now(), \
             error = NULL WHERE id = $1",
        )
        .bind(id),
        "pending" => sqlx::query("UPDATE jobs SET status = 'pending', error = $2 WHERE id = $1")
            .bind(id)
            .bind(error),
        _ => sqlx::query(
            "UPDATE jobs SET status = $2, result = $3, error = $4, finished_at = now() \
             WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(result)
        .bind(error),
    };
    query.execute(&ctx.pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_blocking_work_is_the_jobs_panic_and_an_error_is_not() {
        let panicked = tokio::task::spawn_blocking(|| -> u32 { panic!("boom") }).await;
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| joined(panicked, "export")));
        let payload = caught.expect_err("the panic is resumed, not mapped to an error");
        assert_eq!(panic_message(&payload), "boom");
        let fine = tokio::task::spawn_blocking(|| 7u32).await;
        assert_eq!(joined(fine, "export").ok(), Some(7));
    }

    #[test]
    fn only_errors_that_pass_are_retried_as_bookkeeping() {
        assert!(passes(&sqlx::Error::PoolTimedOut));
        assert!(passes(&sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into())));
        assert!(!passes(&sqlx::Error::RowNotFound));
        assert!(!passes(&sqlx::Error::PoolClosed));
        assert!(!passes(&sqlx::Error::ColumnNotFound("status".into())));
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff(base, 1), Duration::from_millis(500));
        assert_eq!(backoff(base, 2), Duration::from_secs(1));
        assert_eq!(backoff(base, 3), Duration::from_secs(2));
        assert_eq!(backoff(base, 40), Duration::from_secs(30));
    }
}
