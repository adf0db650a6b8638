//! A queue worker that stops without an error. Under database faults an apalis-postgres worker
//! was seen to stop taking jobs for good (the chaos test, a few seconds of Postgres stopped or a
//! table locked): no error, so [`crate::supervise`] never restarted it; its heartbeat
//! (`apalis.workers.last_seen`) no longer moved, and its queue's jobs waited forever. The
//! supervisor therefore also watches that heartbeat: a worker that has run none of our jobs and
//! not heartbeated for `MISSED_HEARTBEATS + 2` intervals is dropped and started again under a new
//! name; the new one puts the old one's unacknowledged jobs back to `Pending` (they are finished
//! rows, so the runner does not run them again).

use crate::Ctx;
use otel::catalogue::{Label, Queue};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How many of our jobs each queue is running now.
#[derive(Debug, Default)]
pub struct InFlight([AtomicUsize; Queue::ALL.len()]);

impl InFlight {
    /// Counts a job of `queue` until the guard is dropped.
    pub fn enter(&self, queue: Queue) -> InFlightGuard<'_> {
        let count = &self.0[index(queue)];
        count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(count)
    }

    /// Jobs of `queue` running now.
    pub fn of(&self, queue: Queue) -> usize {
        self.0[index(queue)].load(Ordering::Acquire)
    }
}

fn index(queue: Queue) -> usize {
    Queue::ALL.iter().position(|q| *q == queue).unwrap_or_default()
}

/// Decrements its queue's count when dropped.
pub struct InFlightGuard<'a>(&'a AtomicUsize);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Resolves once the apalis worker `name` of `queue` has been idle (none of our jobs running)
/// with a heartbeat older than `HEARTBEAT_MS × (MISSED_HEARTBEATS + 2)`, and says how old. While
/// Postgres cannot be asked, nothing is concluded: an unreachable database is the worker's own
/// error to report.
pub async fn stalled(ctx: &Ctx, queue: Queue, name: &str) -> Duration {
    let every = ctx.config.heartbeat;
    let limit = every * (ctx.config.missed_heartbeats + 2);
    loop {
        tokio::time::sleep(every).await;
        if ctx.in_flight.of(queue) > 0 {
            continue;
        }
        let age: Result<Option<f64>, sqlx::Error> = sqlx::query_scalar(
            "SELECT EXTRACT(EPOCH FROM now() - last_seen)::float8 FROM apalis.workers WHERE id = $1",
        )
        .bind(name)
        .fetch_optional(&ctx.pool)
        .await;
        if let Ok(Some(seconds)) = age
            && seconds > limit.as_secs_f64()
            && ctx.in_flight.of(queue) == 0
        {
            return Duration::from_secs_f64(seconds);
        }
    }
}
