//! Export retention on a real database: a pass removes the files of finished exports past
//! `EXPORT_RETENTION_MAX_AGE_MS` (reason `age`) and the oldest beyond `EXPORT_RETENTION_MAX_FILES`
//! (reason `count`), marks their `done` job rows as expired, and keeps fresh files, the files of
//! unfinished jobs, temporary files and anything that is not an export; the timer runs a pass at
//! once and then on its interval; every pass shows in `orgraph.export.retention.*`.

mod support;

use domain::JobKind;
use otel::metrics::RetentionMetrics;
use otel::metrics::testing::{Points, Recorder};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::Db;
use uuid::Uuid;
use worker::config::Retention;
use worker::retention::{ExportRetention, Removed, RetentionError};

/// An export job in `status`, finished `finished_ago` ago (none: not finished), with its file in
/// `dir` (written as the export job would name it). Returns its id and file.
async fn export(
    db: &Db,
    dir: &Path,
    status: &str,
    finished_ago: Option<Duration>,
    format: &str,
) -> (Uuid, PathBuf) {
    let id =
        db.enqueue(JobKind::Export, json!({"kind": "employee_metrics", "format": format})).await;
    let path = dir.join(format!("{id}.{format}"));
    std::fs::write(&path, "id,name\n1,x\n").expect("export file");
    let result = (status == "done").then(
        || json!({"path": path.display().to_string(), "bytes": 12, "rows": 1, "format": format}),
    );
    sqlx::query(
        "UPDATE jobs SET status = $2, result = $3, attempts = 1, started_at = now() - interval '1 day', \
                finished_at = now() - make_interval(secs => $4) \
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(result)
    .bind(finished_ago.map(|d| d.as_secs_f64()))
    .execute(&db.pool)
    .await
    .expect("job row");
    (id, path)
}

fn retention(db: &Db, dir: &Path, extra: &[(&str, &str)], recorder: &Recorder) -> ExportRetention {
    let config = support::config(&db.pg.url(), dir, extra);
    ExportRetention::new(
        db.pool.clone(),
        dir.to_path_buf(),
        config.retention,
        RetentionMetrics::new(recorder.meter()),
    )
}

fn removed(points: &Points, reason: &str) -> f64 {
    points.value("orgraph.export.retention.removed", &[("export.retention.reason", reason)])
}

fn runs(points: &Points, outcome: &str) -> f64 {
    points.value("orgraph.export.retention.runs", &[("export.retention.outcome", outcome)])
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8 name"))
        .collect();
    names.sort();
    names
}

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_past_the_age_go_and_fresh_unfinished_and_foreign_files_stay() {
    let db = Db::start().await;
    let dir = support::scratch_dir("retention-age");
    let recorder = Recorder::new();
    let retention = retention(&db, &dir, &[("EXPORT_RETENTION_MAX_AGE_MS", "3600000")], &recorder);
    // At 0 before the first pass.
    RetentionMetrics::new(recorder.meter()).start_at_zero();

    let (old_done, old_done_file) = export(&db, &dir, "done", Some(2 * HOUR), "csv").await;
    let (old_failed, old_failed_file) = export(&db, &dir, "failed", Some(3 * HOUR), "jsonl").await;
    let (fresh, fresh_file) = export(&db, &dir, "done", Some(MINUTE), "csv").await;
    let (running, running_file) = export(&db, &dir, "running", None, "csv").await;
    let (_, pending_file) = export(&db, &dir, "pending", None, "jsonl").await;
    // An export being written (its temporary file), a file without a job, a foreign file.
    let temp = dir.join(format!(".{running}.csv.tmp-0123456789abcdef"));
    std::fs::write(&temp, "partial").expect("temp file");
    let orphan = dir.join(format!("{}.csv", Uuid::new_v4()));
    std::fs::write(&orphan, "x").expect("orphan");
    std::fs::write(dir.join("notes.txt"), "x").expect("notes");
    let before = names_in(&dir);

    let pass = retention.run_pass().await.expect("pass");
    assert_eq!(pass, Removed { age: 2, count: 0 });
    assert!(!old_done_file.exists() && !old_failed_file.exists());
    for kept in [&fresh_file, &running_file, &pending_file, &temp, &orphan] {
        assert!(kept.exists(), "{} must stay", kept.display());
    }
    assert_eq!(names_in(&dir).len(), before.len() - 2);

    // The done job's result says its file expired, and keeps what it said before.
    let (status, _, _, result) = db.job(old_done).await;
    let result = result.expect("result");
    assert_eq!(status, "done");
    assert_eq!(result["expired_reason"], "age");
    assert!(result["expired_at"].is_string(), "{result}");
    assert_eq!(result["path"], old_done_file.display().to_string());
    assert_eq!((result["bytes"].clone(), result["format"].clone()), (json!(12), json!("csv")));
    // A failed job stays as it was; fresh and unfinished ones are not marked.
    assert_eq!(db.job(old_failed).await.3, None);
    assert!(db.job(fresh).await.3.expect("result").get("expired_at").is_none());
    assert_eq!(db.job(running).await.0, "running");

    let points = recorder.collect();
    points.assert_conforms();
    assert_eq!((removed(&points, "age"), removed(&points, "count")), (2.0, 0.0));
    assert_eq!((runs(&points, "success"), runs(&points, "failure")), (1.0, 0.0));
    let success = [("export.retention.outcome", "success")];
    assert_eq!(points.count("orgraph.export.retention.duration", &success), 1);

    // A second pass finds nothing to do and leaves the mark as it was.
    let marked: Value = db.job(old_done).await.3.expect("result");
    assert_eq!(retention.run_pass().await.expect("pass"), Removed::default());
    assert_eq!(db.job(old_done).await.3.expect("result"), marked);
    let points = recorder.collect();
    assert_eq!((removed(&points, "age"), runs(&points, "success")), (2.0, 2.0));

    // A directory that cannot be listed: the pass fails, and says so in its metrics.
    let not_a_dir = dir.join("notes.txt");
    let broken = ExportRetention::new(
        db.pool.clone(),
        not_a_dir.clone(),
        support::config(&db.pg.url(), &dir, &[]).retention,
        RetentionMetrics::new(recorder.meter()),
    );
    let err = broken.run_pass().await.expect_err("not a directory");
    assert!(matches!(err, RetentionError::List { .. }), "{err}");
    assert!(err.to_string().contains(&not_a_dir.display().to_string()), "{err}");
    let points = recorder.collect();
    assert_eq!((runs(&points, "success"), runs(&points, "failure")), (2.0, 1.0));
    let failure = [("export.retention.outcome", "failure")];
    assert_eq!(points.count("orgraph.export.retention.duration", &failure), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_count_the_oldest_finished_files_go() {
    let db = Db::start().await;
    let dir = support::scratch_dir("retention-count");
    let recorder = Recorder::new();
    let retention = retention(&db, &dir, &[("EXPORT_RETENTION_MAX_FILES", "3")], &recorder);

    // Past the default age of 7 days: removed for its age, not counted.
    let (ancient, ancient_file) = export(&db, &dir, "done", Some(8 * 24 * HOUR), "csv").await;
    let mut finished = Vec::new();
    for minutes in [50, 40, 30, 20, 10] {
        finished.push(export(&db, &dir, "done", Some(minutes * MINUTE), "jsonl").await);
    }
    // Unfinished jobs' files are neither counted nor removed.
    let (_, running_file) = export(&db, &dir, "running", None, "csv").await;
    let (_, pending_file) = export(&db, &dir, "pending", None, "csv").await;

    let pass = retention.run_pass().await.expect("pass");
    assert_eq!(pass, Removed { age: 1, count: 2 });
    assert!(!ancient_file.exists());
    assert_eq!(db.job(ancient).await.3.expect("result")["expired_reason"], "age");
    for (i, (id, file)) in finished.iter().enumerate() {
        let result = db.job(*id).await.3.expect("result");
        if i < 2 {
            assert!(!file.exists(), "the 2 oldest of 5 go");
            assert_eq!(result["expired_reason"], "count");
        } else {
            assert!(file.exists(), "the 3 newest stay");
            assert!(result.get("expired_at").is_none(), "{result}");
        }
    }
    assert!(running_file.exists() && pending_file.exists());

    let points = recorder.collect();
    points.assert_conforms();
    assert_eq!((removed(&points, "age"), removed(&points, "count")), (1.0, 2.0));
    assert_eq!(runs(&points, "success"), 1.0);

    // The timer: a pass at once, then one per interval, which removes a file that aged meanwhile.
    let recorder = Recorder::new();
    let timed = retention_with_interval(&db, &dir, &recorder);
    let task = tokio::spawn(timed.run_forever());
    wait_for(&recorder, "the pass at start-up", |p| runs(p, "success") >= 1.0).await;
    let (_, late_file) = export(&db, &dir, "done", Some(8 * 24 * HOUR), "csv").await;
    wait_for(&recorder, "a later pass", |p| removed(p, "age") >= 1.0).await;
    assert!(!late_file.exists());
    task.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

fn retention_with_interval(db: &Db, dir: &Path, recorder: &Recorder) -> ExportRetention {
    let config = support::config(
        &db.pg.url(),
        dir,
        &[("EXPORT_RETENTION_MAX_FILES", "3"), ("EXPORT_RETENTION_INTERVAL_MS", "200")],
    );
    assert_eq!(
        config.retention,
        Retention {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_files: 3,
            interval: Duration::from_millis(200)
        }
    );
    let metrics = RetentionMetrics::new(recorder.meter());
    metrics.start_at_zero();
    ExportRetention::new(db.pool.clone(), dir.to_path_buf(), config.retention, metrics)
}

async fn wait_for(recorder: &Recorder, what: &str, done: impl Fn(&Points) -> bool) {
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if done(&recorder.collect()) {
            return;
        }
        assert!(tokio::time::Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
