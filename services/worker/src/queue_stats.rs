//! Queue depth by state, read from the queue backend (apalis-postgres' own per-queue statistics,
//! `Metrics::fetch_by_queue`) by a background refresh that feeds the `orgraph.queue.*` gauges.
//! Collection then never waits on the database. The backend reports no age, so the oldest pending
//! job's age is one query of our own. `queue_stats` tests compare every figure with a direct SQL
//! count.
//!
//! One correction: the backend's `PENDING_JOBS` counts only `Pending`, and `RUNNING_JOBS` only
//! `Running`, so a job already fetched by a worker but not started (`Queued`) is in neither. It is
//! still waiting, so the depth reported here adds it to pending (`ACTIVE_JOBS`, which counts
//! Pending, Queued and Running, minus the other two).

use crate::context::Ctx;
use apalis::prelude::Metrics;
use apalis_postgres::PostgresStorage;
use domain::{JobPayload, queue_name};
use otel::catalogue::{Label, Queue};
use otel::metrics::QueueStats;
use std::time::Duration;

/// Reads every queue's numbers once and stores them for the next collection.
pub async fn refresh(ctx: &Ctx) -> anyhow::Result<()> {
    for queue in Queue::ALL.iter().copied() {
        let stats = read(ctx, queue).await?;
        ctx.queues.update(queue, stats);
    }
    Ok(())
}

/// One queue's numbers.
pub async fn read(ctx: &Ctx, queue: Queue) -> anyhow::Result<QueueStats> {
    let config = apalis_postgres::Config::default().queue(queue_name(queue));
    let storage = PostgresStorage::<JobPayload>::new(&ctx.pool).with_config(config);
    let stats = storage.fetch_by_queue().await?;
    let stat = |title: &str| {
        stats
            .iter()
            .find(|s| s.title == title)
            .and_then(|s| s.value.parse::<f64>().ok())
            .map_or(0, |v| v.max(0.0).round() as u64)
    };
    let age: f64 = sqlx::query_scalar(
        "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(run_at)), 0)::float8 \
         FROM apalis.jobs WHERE job_type = $1 AND status = 'Pending'",
    )
    .bind(queue.as_str())
    .fetch_one(&ctx.pool)
    .await?;
    let (pending, running) = (stat("PENDING_JOBS"), stat("RUNNING_JOBS"));
    let queued = stat("ACTIVE_JOBS").saturating_sub(pending + running);
    Ok(QueueStats {
        pending: pending + queued,
        running,
        failed: stat("FAILED_JOBS"),
        oldest_pending_age_secs: age.max(0.0),
    })
}

/// Refreshes every `every` until the task is dropped; a failed read keeps the last numbers.
pub async fn refresh_forever(ctx: Ctx, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = refresh(&ctx).await {
            tracing::warn!(error = format!("{e:#}"), "queue statistics not refreshed");
        }
    }
}
