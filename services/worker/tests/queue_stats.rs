//! The queue gauges come from apalis-postgres' own per-queue statistics; its numbers are checked
//! here against direct SQL counts of `apalis.jobs`, state by state and queue by queue, and the
//! gauges are checked to carry them within one refresh.

mod support;

use domain::JobKind;
use otel::catalogue::{Label, Queue};
use otel::metrics::testing::Recorder;
use serde_json::json;
use support::Db;

async fn sql_count(db: &Db, queue: &str, status: &str) -> u64 {
    let n: i64 =
        sqlx::query_scalar("SELECT count(*) FROM apalis.jobs WHERE job_type = $1 AND status = $2")
            .bind(queue)
            .bind(status)
            .fetch_one(&db.pool)
            .await
            .expect("count");
    n as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_statistics_equal_a_direct_sql_count() {
    let recorder = Recorder::global();
    let db = Db::start().await;
    let dir = support::scratch_dir("stats");
    let ctx = support::ctx(&db, &dir, &[]);
    for _ in 0..7 {
        db.enqueue(JobKind::Analysis, json!({})).await;
    }
    for _ in 0..4 {
        db.enqueue(JobKind::Export, json!({})).await;
    }
    db.enqueue(JobKind::InterventionExecute, json!({})).await;
    // Put some jobs in the other states the way a worker would leave them.
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Running' WHERE id IN \
         (SELECT id FROM apalis.jobs WHERE job_type = 'analysis' ORDER BY id LIMIT 2)",
    )
    .execute(&db.pool)
    .await
    .expect("running");
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Failed', attempts = 1 WHERE id IN \
         (SELECT id FROM apalis.jobs WHERE job_type = 'export' ORDER BY id LIMIT 3)",
    )
    .execute(&db.pool)
    .await
    .expect("failed");
    sqlx::query(
        "UPDATE apalis.jobs SET status = 'Queued' WHERE id IN \
         (SELECT id FROM apalis.jobs WHERE job_type = 'analysis' AND status = 'Pending' ORDER BY id LIMIT 1)",
    )
    .execute(&db.pool)
    .await
    .expect("queued");
    sqlx::query(
        "UPDATE apalis.jobs SET run_at = now() - interval '90 seconds' WHERE job_type = 'analysis'",
    )
    .execute(&db.pool)
    .await
    .expect("age");

    for queue in Queue::ALL.iter().copied() {
        let stats = worker::queue_stats::read(&ctx, queue).await.expect("stats");
        let name = queue.as_str();
        // A fetched but not started job (Queued) is still waiting: it counts as pending.
        let waiting = sql_count(&db, name, "Pending").await + sql_count(&db, name, "Queued").await;
        assert_eq!(stats.pending, waiting, "{name} pending");
        assert_eq!(stats.running, sql_count(&db, name, "Running").await, "{name} running");
        assert_eq!(stats.failed, sql_count(&db, name, "Failed").await, "{name} failed");
    }
    let analysis = worker::queue_stats::read(&ctx, Queue::Analysis).await.expect("stats");
    assert_eq!((analysis.pending, analysis.running), (5, 2));
    assert!((89.0..600.0).contains(&analysis.oldest_pending_age_secs), "{analysis:?}");
    let export = worker::queue_stats::read(&ctx, Queue::Export).await.expect("stats");
    assert_eq!((export.pending, export.failed, export.oldest_pending_age_secs > 0.0), (1, 3, true));
    let empty = worker::queue_stats::read(&ctx, Queue::Intervention).await.expect("stats");
    assert_eq!((empty.pending, empty.running, empty.failed), (1, 0, 0));

    // The gauges carry those numbers after one refresh.
    worker::queue_stats::refresh(&ctx).await.expect("refresh");
    let points = recorder.collect();
    points.assert_conforms();
    let gauge = |q, s| {
        points.value("orgraph.queue.jobs", &[("messaging.destination.name", q), ("job.state", s)])
    };
    assert_eq!((gauge("analysis", "pending"), gauge("analysis", "running")), (5.0, 2.0));
    assert_eq!(gauge("export", "failed"), 3.0);
    let age = points
        .value("orgraph.queue.oldest_pending_age", &[("messaging.destination.name", "analysis")]);
    assert!(age >= 89.0, "{age}");
    std::fs::remove_dir_all(dir).ok();
}
