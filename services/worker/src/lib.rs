//! The org-graph worker: apalis workers on Postgres, one per queue (`analysis`, `export`,
//! `intervention`), running the jobs the API accepted, instrumented through the `otel` catalogue.
//!
//! What apalis-postgres guarantees, and what this crate adds:
//! * A job is taken by one worker at a time (`FOR UPDATE SKIP LOCKED`, then locked by worker id).
//! * A worker heartbeats every `HEARTBEAT_MS`; a job whose worker missed `MISSED_HEARTBEATS` of
//!   them (a crash, a SIGKILL) is put back to `Pending` by the next worker that registers or
//!   heartbeats on that queue, and runs again: at-least-once delivery.
//! * Our jobs are therefore idempotent (exactly once in effect): a finished job row is not run
//!   again; an intervention checks its state under a row lock; an export writes one file named
//!   after its job, atomically; an analysis replaces its own scores.
//! * Retries are ours (`runner`): transient errors only, with exponential backoff. apalis' own
//!   re-fetching of failed jobs is off (`max_attempts` 1), as it retries at once, without backoff.

// An application crate: its library is the worker binary and what the tests drive, no public API,
// so an item has a doc comment where it says something, not by rule. (The request and
// so an item has a doc comment where it says something, not by rule.
#![allow(missing_docs)]

pub mod analysis;
pub mod config;
pub mod context;
pub mod export_file;
pub mod health;
pub mod jobs;
pub mod queue_stats;
pub mod retention;
pub mod runner;
pub mod stall;

pub use config::Config;
pub use context::Ctx;

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use domain::{JobPayload, queue_name};
use otel::catalogue::{Label, Queue};
use sqlx::postgres::PgPoolOptions;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Runs the worker until `shutdown` resolves: migrates the schema, starts the health listener on
/// `health`, the queue statistics refresh and one apalis worker per queue. On shutdown the
/// workers stop taking jobs and in-flight jobs get `SHUTDOWN_GRACE_MS` to finish; a job still
/// running then is abandoned to the heartbeat recovery of the next worker.
pub async fn run(
    config: Config,
    health: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(config.postgres.pool_max)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy(&config.postgres.url)
        .map_err(|e| anyhow::anyhow!("DATABASE_URL is invalid: {e}"))?;
    domain::migrate(&pool).await?;
    tokio::fs::create_dir_all(&config.export_dir).await.map_err(|e| {
        anyhow::anyhow!("EXPORT_DIR {} cannot be created: {e}", config.export_dir.display())
    })?;
    let grace = config.shutdown_grace;
    let ctx = Ctx::new(pool.clone(), config);

    let running = Arc::new(AtomicBool::new(false));
    let down = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let health_app = health::router(health::Health {
        pool: pool.clone(),
        running: running.clone(),
        down: down.clone(),
    });
    let mut health_stop = stop_rx.clone();
    let health_task = tokio::spawn(async move {
        axum::serve(health, health_app)
            .with_graceful_shutdown(async move {
                let _ = health_stop.wait_for(|stop| *stop).await;
            })
            .await
    });
    let stats_task =
        tokio::spawn(queue_stats::refresh_forever(ctx.clone(), ctx.config.stats_interval));
    // A pass now, then every EXPORT_RETENTION_INTERVAL_MS.
    let retention_task = tokio::spawn(retention::ExportRetention::of(&ctx).run_forever());

    let instance = uuid::Uuid::new_v4().simple().to_string();
    let mut workers = tokio::task::JoinSet::new();
    for queue in Queue::ALL.iter().copied() {
        ctx.worker.worker_started(queue, ctx.config.concurrency_of(queue));
        let name = format!("orgraph-{}-{instance}", queue.as_str());
        workers.spawn(supervise(queue, name, ctx.clone(), stop_rx.clone(), down.clone()));
    }
    running.store(true, Ordering::Relaxed);
    tracing::info!(%instance, "worker running");

    shutdown.await;
    tracing::info!(?grace, "shutdown: no new jobs; waiting for in-flight ones");
    running.store(false, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, async {
        while let Some(result) = workers.join_next().await {
            if let Err(e) = result {
                tracing::error!(error = %e, "queue worker task failed");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(?grace, "jobs still running after the grace period; abandoning them");
        workers.abort_all();
    }
    stats_task.abort();
    retention_task.abort();
    let _ = health_task.await;
    Ok(())
}

/// Runs `queue`'s apalis worker until the stop signal, and again whenever it stops on its own: a
/// lost database connection ends an apalis worker with an error, and the worker must reconnect
/// by itself once Postgres is back. While it is down, `down` counts it (readiness says so).
async fn supervise(
    queue: Queue,
    name: String,
    ctx: Ctx,
    stop: watch::Receiver<bool>,
    down: Arc<AtomicUsize>,
) {
    let mut backoff = Duration::from_secs(1);
    for round in 0u64.. {
        let slots = ctx.config.concurrency_of(queue) as usize;
        let backend = PostgresStorage::<JobPayload>::new(&ctx.pool).with_config(
            apalis_postgres::Config::default()
                .queue(queue_name(queue))
                .batch_size(slots)
                .heartbeat_interval(ctx.config.heartbeat)
                .missed_heartbeats(ctx.config.missed_heartbeats as usize),
        );
        // A fresh name per restart: the old one's locked jobs go back to the queue by the
        // heartbeat recovery, as after a crash.
        let worker_name = format!("{name}-{round}");
        let worker = WorkerBuilder::new(worker_name.as_str())
            .backend(backend)
            .concurrency(slots)
            .data(ctx.clone())
            .build(handle);
        let mut until = stop.clone();
        let started = Instant::now();
        let result = tokio::select! {
            result = worker.run_until(async move {
                let _ = until.wait_for(|stop| *stop).await;
                Ok::<(), std::io::Error>(())
            }) => result.map_err(|e| e.to_string()),
            age = stall::stalled(&ctx, queue, &worker_name) => Err(format!(
                "it stopped taking jobs: idle, last heartbeat {:.1} s ago",
                age.as_secs_f64()
            )),
        };
        if *stop.borrow() {
            return;
        }
        // A worker that ran a while was healthy: the next restart waits the shortest time again.
        if started.elapsed() >= Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        match result {
            Ok(()) => tracing::warn!(queue = queue.as_str(), "queue worker stopped; restarting"),
            Err(e) => {
                tracing::error!(queue = queue.as_str(), error = %e, ?backoff, "queue worker failed; restarting")
            }
        }
        down.fetch_add(1, Ordering::Relaxed);
        let mut wait = stop.clone();
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = wait.wait_for(|stop| *stop) => return,
        }
        down.fetch_sub(1, Ordering::Relaxed);
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// The apalis task function: runs the job through the runner.
async fn handle(payload: JobPayload, ctx: Data<Ctx>) -> Result<(), BoxDynError> {
    runner::run(&ctx, payload.job_id, jobs::execute).await.map_err(Into::into)
}
