//! Postgres stopped and started again under a running worker: the queue workers lose the
//! database, readiness says so, and once Postgres is back they reconnect by themselves and run
//! jobs accepted meanwhile.

mod support;

use domain::JobKind;
use serde_json::json;
use std::time::Duration;
use support::Db;
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reconnects_after_a_postgres_restart() {
    let mut db = Db::start().await;
    let dir = support::scratch_dir("reconnect");
    let config = support::config(&db.pg.url(), &dir, &[]);
    let health = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ready = format!("http://{}/health/ready", health.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(worker::run(config, health, async {
        let _ = stopped.await;
    }));
    let status =
        async |url: &str| reqwest::get(url).await.map(|r| r.status().as_u16()).unwrap_or(0);
    let wait = async |what: &str, want: u16| {
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        while status(&ready).await != want {
            assert!(tokio::time::Instant::now() < until, "timed out after 60 s waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    wait("the worker to be ready", 200).await;

    tokio::task::block_in_place(|| db.pg.stop()).expect("postgres stops");
    wait("readiness to report the lost database", 503).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| db.pg.start_again()).expect("postgres starts again");

    // A job accepted after the outage runs: the queue workers came back on their own.
    let job = loop {
        let mut tx = match db.pool.begin().await {
            Ok(tx) => tx,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let id = domain::enqueue(
            &mut tx,
            JobKind::InterventionRollback,
            &json!({"intervention_id": uuid::Uuid::nil()}),
        )
        .await
        .expect("enqueue");
        tx.commit().await.expect("commit");
        break id;
    };
    let (status_after, _, error, _) = db.finished(job, Duration::from_secs(90)).await;
    // The intervention does not exist: the job runs and fails validation (not retried) — what
    // matters here is that it ran.
    assert_eq!(status_after, "failed");
    assert!(error.unwrap_or_default().contains("no longer exists"));
    wait("readiness after the restart", 200).await;
    let _ = stop.send(());
    task.await.unwrap().expect("clean stop");
    std::fs::remove_dir_all(dir).ok();
}
