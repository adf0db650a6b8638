//! A hung export, on a real database, still shows in the export's own metrics: with the
//! `employees` table locked by another transaction the export's read blocks, the runner cancels it
//! at `TIMEOUT_EXPORT_MS`, and `orgraph.export.requests` / `orgraph.export.duration` record it as
//! `timeout` with the time it ran, above `EXPORT_SLOW_MS`, which the worker reports as
//! `orgraph.export.slow_threshold`. (One test binary, one global recorder.)

mod support;

use domain::JobKind;
use otel::metrics::testing::{Points, Recorder};
use serde_json::json;
use std::time::Instant;
use support::Db;
use worker::runner;

const CSV_TIMEOUT: [(&str, &str); 3] =
    [("export.kind", "employee_metrics"), ("export.format", "csv"), ("export.status", "timeout")];

fn export_requests(points: &Points, status: &str) -> f64 {
    points
        .0
        .iter()
        .filter(|p| p.name == "orgraph.export.requests")
        .filter(|p| p.attributes.get("export.status").map(String::as_str) == Some(status))
        .map(|p| p.value)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_export_is_cancelled_and_recorded_as_a_slow_timeout() {
    let recorder = Recorder::global();
    let db = Db::start().await;
    let dir = support::scratch_dir("export-timeout");
    let ctx = support::ctx(&db, &dir, &[("TIMEOUT_EXPORT_MS", "600"), ("EXPORT_SLOW_MS", "200")]);

    // The threshold the alert compares against comes from the worker's own setting.
    let points = recorder.collect();
    points.assert_conforms();
    assert_eq!(points.only("orgraph.export.slow_threshold").value, 0.2);

    sqlx::query("INSERT INTO employees (name, team, title) VALUES ('Ada', 'core', 'engineer')")
        .execute(&db.pool)
        .await
        .expect("an employee");

    // Hang the export: its read of `employees` waits for this lock.
    let mut lock = db.pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE employees IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock employees");

    let job =
        db.enqueue(JobKind::Export, json!({"kind": "employee_metrics", "format": "csv"})).await;
    let started = Instant::now();
    let err = runner::run(&ctx, job, worker::jobs::execute).await.expect_err("times out");
    let waited = started.elapsed().as_secs_f64();
    assert_eq!(err.status, "timeout", "{err}");
    let (status, attempts, error, _) = db.job(job).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1), "a timeout is not retried");
    assert!(error.unwrap_or_default().contains("timed out after 600ms"));

    let points = recorder.collect();
    points.assert_conforms();
    assert_eq!(points.value("orgraph.export.requests", &CSV_TIMEOUT), 1.0);
    assert_eq!(points.count("orgraph.export.duration", &CSV_TIMEOUT), 1);
    let took = points.sum("orgraph.export.duration", &CSV_TIMEOUT);
    assert!(
        (0.55..=waited).contains(&took),
        "the cancelled export ran about TIMEOUT_EXPORT_MS (600 ms): recorded {took}s of {waited}s"
    );
    assert!(took > 0.2, "above EXPORT_SLOW_MS, so it counts as slow: {took}s");
    assert_eq!(export_requests(&points, "success") + export_requests(&points, "failure"), 0.0);
    assert_eq!(points.series("orgraph.export.size"), 0, "a timed-out export wrote no file");
    let task_timeout = [("task.type", "export"), ("task.status", "timeout")];
    assert_eq!(points.value("orgraph.task.completed", &task_timeout), 1.0);

    // Postgres cancels the abandoned query itself (its statement_timeout is the job's timeout plus
    // a margin), so the timed-out export does not keep a connection waiting on the lock.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut *lock)
        .await
        .expect("pg_stat_activity");
        if waiting == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the timed-out export's query still waits on the lock after 10 s: its connection is held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // The lock was the only thing in the way: released, the same export succeeds.
    lock.rollback().await.expect("release the lock");
    let job =
        db.enqueue(JobKind::Export, json!({"kind": "employee_metrics", "format": "csv"})).await;
    runner::run(&ctx, job, worker::jobs::execute).await.expect("export succeeds");
    let points = recorder.collect();
    points.assert_conforms();
    assert_eq!(export_requests(&points, "success"), 1.0);
    assert_eq!(export_requests(&points, "timeout"), 1.0, "the timeout is counted once");
    assert_eq!(points.count("orgraph.export.duration", &[]), 2);
    std::fs::remove_dir_all(dir).ok();
}
