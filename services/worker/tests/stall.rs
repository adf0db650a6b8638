//! The supervisor's stall check (`worker::stall`) on a real database: an apalis worker whose
//! heartbeat stopped while none of our jobs ran is reported; one that heartbeats is not; one that
//! runs a job is not, however old its heartbeat.

mod support;

use otel::catalogue::Queue;
use std::time::Duration;
use support::Db;

/// Registers an apalis worker row for `queue` whose heartbeat is `age` old.
async fn register(db: &Db, name: &str, age: Duration) {
    sqlx::query(
        "INSERT INTO apalis.workers (id, worker_type, storage_name, last_seen) \
         VALUES ($1, 'intervention', 'PgStorage', now() - make_interval(secs => $2))",
    )
    .bind(name)
    .bind(age.as_secs_f64())
    .execute(&db.pool)
    .await
    .expect("worker row");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_whose_heartbeat_stopped_is_reported_and_no_other() {
    let db = Db::start().await;
    let dir = support::scratch_dir("stall");
    // Heartbeat 500 ms, 2 missed: stalled after 2 s (4 intervals) without a beat.
    let ctx = support::ctx(&db, &dir, &[]);
    register(&db, "stuck", Duration::from_secs(3)).await;
    register(&db, "beating", Duration::ZERO).await;

    let stuck = tokio::time::timeout(
        Duration::from_secs(10),
        worker::stall::stalled(&ctx, Queue::Intervention, "stuck"),
    )
    .await
    .expect("a worker idle with a 3 s old heartbeat is reported within 10 s");
    assert!(stuck >= Duration::from_secs(2), "reported at {stuck:?}");

    // A worker that keeps beating is never reported.
    let beats = async {
        loop {
            sqlx::query("UPDATE apalis.workers SET last_seen = now() WHERE id = 'beating'")
                .execute(&db.pool)
                .await
                .expect("beat");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let watched = worker::stall::stalled(&ctx, Queue::Intervention, "beating");
    tokio::select! {
        age = watched => panic!("a beating worker was reported stalled ({age:?})"),
        () = beats => unreachable!(),
        () = tokio::time::sleep(Duration::from_secs(4)) => {}
    }

    // While one of our jobs runs on its queue, an old heartbeat is no stall (apalis may not beat
    // while its only slot is busy); once the job ends, it is.
    let running = ctx.in_flight.enter(Queue::Intervention);
    let watched = worker::stall::stalled(&ctx, Queue::Intervention, "stuck");
    tokio::pin!(watched);
    tokio::select! {
        age = &mut watched => panic!("a worker running a job was reported stalled ({age:?})"),
        () = tokio::time::sleep(Duration::from_secs(3)) => {}
    }
    drop(running);
    tokio::time::timeout(Duration::from_secs(10), watched)
        .await
        .expect("reported once its job ended");
}
