//! The runner's policy on a real database, with every outcome in the metrics: a transient failure
//! is retried with backoff and succeeds; one that never clears ends failed after the configured
//! attempts; a validation error is not retried; a timeout counts as `timeout`; a panic is caught
//! and counts as `panic`. (One test binary, one global recorder.)

mod support;

use domain::JobKind;
use otel::metrics::testing::Recorder;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use support::Db;
use worker::runner::{self, JobError};

fn completed(recorder: &Recorder, task: &str, status: &str) -> f64 {
    let points = recorder.collect();
    points.assert_conforms();
    points
        .0
        .iter()
        .filter(|p| p.name == "orgraph.task.completed")
        .filter(|p| p.attributes.get("task.type").map(String::as_str) == Some(task))
        .filter(|p| p.attributes.get("task.status").map(String::as_str) == Some(status))
        .map(|p| p.value)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_timeouts_and_panics_are_handled_and_counted() {
    let recorder = Recorder::global();
    let db = Db::start().await;
    let dir = support::scratch_dir("reliability");
    let ctx = support::ctx(
        &db,
        &dir,
        &[("RETRY_ATTEMPTS", "3"), ("TIMEOUT_EXPORT_MS", "300"), ("EXPORT_SLOW_MS", "100")],
    );

    // Transient twice, then success.
    let calls = Arc::new(AtomicU32::new(0));
    let job = db.enqueue(JobKind::Export, json!({})).await;
    let c = calls.clone();
    let result = runner::run(&ctx, job, move |_, _| {
        let c = c.clone();
        async move {
            if c.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(JobError::Transient(anyhow::anyhow!("disk hiccup")))
            } else {
                Ok(json!({"ok": true}))
            }
        }
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let (status, attempts, error, value) = db.job(job).await;
    assert_eq!((status.as_str(), attempts, error), ("done", 3, None));
    assert_eq!(value, Some(json!({"ok": true})));
    assert_eq!(completed(recorder, "export", "retry"), 2.0);
    assert_eq!(completed(recorder, "export", "success"), 1.0);

    // Always transient: failed after exactly RETRY_ATTEMPTS attempts.
    let job = db.enqueue(JobKind::Export, json!({})).await;
    let err = runner::run(&ctx, job, |_, _| async {
        Err::<Value, _>(JobError::Transient(anyhow::anyhow!("still down")))
    })
    .await
    .expect_err("gives up");
    assert_eq!(err.status, "failure");
    let (status, attempts, error, _) = db.job(job).await;
    assert_eq!((status.as_str(), attempts), ("failed", 3));
    assert!(error.unwrap_or_default().contains("still down"));
    assert_eq!(completed(recorder, "export", "retry"), 4.0);
    assert_eq!(completed(recorder, "export", "failure"), 1.0);

    // Invalid: one attempt, no retry.
    let job = db.enqueue(JobKind::Export, json!({})).await;
    let err = runner::run(&ctx, job, |_, _| async {
        Err::<Value, _>(JobError::Invalid("no such format".into()))
    })
    .await
    .expect_err("invalid");
    assert_eq!(err.status, "failure");
    assert_eq!(db.job(job).await.1, 1, "a validation error is not retried");
    assert_eq!(completed(recorder, "export", "failure"), 2.0);

    // Timeout: the attempt is abandoned at the queue's limit and not retried.
    let job = db.enqueue(JobKind::Export, json!({})).await;
    let err = runner::run(&ctx, job, |_, _| async {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(json!({}))
    })
    .await
    .expect_err("times out");
    assert_eq!(err.status, "timeout");
    let (status, attempts, error, _) = db.job(job).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert!(error.unwrap_or_default().contains("timed out after 300ms"));
    assert_eq!(completed(recorder, "export", "timeout"), 1.0);

    // Panic: caught, the job fails, the worker lives on.
    let job = db.enqueue(JobKind::Analysis, json!({})).await;
    let err = runner::run(&ctx, job, |_, _| async {
        if true {
            panic!("bug in the job");
        }
        Ok(json!({}))
    })
    .await
    .expect_err("panics");
    assert_eq!(err.status, "panic");
    let (status, _, error, _) = db.job(job).await;
    assert_eq!(status, "failed");
    assert!(error.unwrap_or_default().contains("bug in the job"));
    assert_eq!(completed(recorder, "analysis", "panic"), 1.0);

    // A finished job delivered again is not run again.
    let ran = Arc::new(AtomicU32::new(0));
    let r = ran.clone();
    let again = runner::run(&ctx, job, move |_, _| {
        r.fetch_add(1, Ordering::SeqCst);
        async { Ok(json!({})) }
    })
    .await;
    assert!(again.is_ok());
    assert_eq!(ran.load(Ordering::SeqCst), 0);

    // Nothing is left running.
    let points = recorder.collect();
    assert_eq!(points.value("orgraph.worker.active", &[]), 0.0);
    std::fs::remove_dir_all(dir).ok();
}
