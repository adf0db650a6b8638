//! A worker SIGKILLed mid-job: the job's heartbeat stops, the next worker on the queue puts it
//! back to `Pending` (apalis-postgres' orphan recovery) and runs it again; the effect happens
//! once (one set of scores, one export file, the intervention applied once).

mod support;

use domain::JobKind;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::Db;

fn spawn_worker(db: &Db, dir: &std::path::Path, log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
    Command::new(env!("CARGO_BIN_EXE_worker"))
        .env("DATABASE_URL", db.pg.url())
        .env("EXPORT_DIR", dir)
        .env("WORKER_HEALTH_ADDR", format!("127.0.0.1:{}", testkit::free_port()))
        .env("OTEL_SDK_DISABLED", "true")
        .env("HEARTBEAT_MS", "500")
        .env("MISSED_HEARTBEATS", "2")
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("worker binary starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_job_runs_again_and_takes_effect_once() {
    let db = Db::start().await;
    let dir = support::scratch_dir("crash");
    let log = dir.with_extension("log");
    // A graph big enough that the analysis runs for a while.
    let graph =
        tokio::task::spawn_blocking(|| api::graph::seed::generate(20_000, 5, 1)).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    api::graph::queries::replace_graph(&mut conn, &graph).await.expect("seed");
    drop(conn);
    sqlx::query("INSERT INTO interventions (id, kind, employee_id, new_manager_id, reason) VALUES ($1, 'reassign', 19000, 2, 'crash test')")
        .bind(uuid::Uuid::nil())
        .execute(&db.pool)
        .await
        .unwrap();

    let analysis = db.enqueue(JobKind::Analysis, json!({"iterations": 100, "samples": 2000})).await;
    let export =
        db.enqueue(JobKind::Export, json!({"kind": "employee_metrics", "format": "csv"})).await;
    let execute = db
        .enqueue(JobKind::InterventionExecute, json!({"intervention_id": uuid::Uuid::nil()}))
        .await;

    let mut first = spawn_worker(&db, &dir, &log);
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while db.job(analysis).await.0 != "running" {
        assert!(tokio::time::Instant::now() < until, "timed out waiting for the analysis to start");
        assert!(
            first.try_wait().unwrap().is_none(),
            "worker exited: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().expect("SIGKILL");
    first.wait().expect("reaped");
    assert_eq!(db.job(analysis).await.0, "running", "killed mid-job");

    let mut second = spawn_worker(&db, &dir, &log);
    for job in [analysis, export, execute] {
        let (status, attempts, error, _) = db.finished(job, Duration::from_secs(180)).await;
        assert_eq!(
            status,
            "done",
            "job {job}: {error:?}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(attempts >= 1);
    }
    assert!(db.job(analysis).await.1 >= 2, "the analysis ran again after the crash");
    second.kill().ok();
    second.wait().ok();

    let scores: i64 = sqlx::query_scalar("SELECT count(*) FROM influence_scores WHERE job_id = $1")
        .bind(analysis)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(scores, 20_000, "one set of scores");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec![format!("{export}.csv")], "one export file, no temporaries");
    let managers: Vec<i64> = sqlx::query_scalar(
        "SELECT target_id FROM relations WHERE source_id = 19000 AND kind = 'reports_to'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(managers, vec![2], "the intervention applied once");
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_file(&log).ok();
}
