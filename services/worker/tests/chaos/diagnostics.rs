//! What the queue, the worker and the server look like, for a human reading a run: which jobs
//! apalis handed out more than once, and, when jobs stop moving, the state of everything they
//! wait on. Nothing here asserts.

use crate::faults::signals::{children_of, proc_stat};
use crate::worker_process::WorkerProcess;
use sqlx::{PgPool, Row};
use std::collections::BTreeMap;

/// The jobs apalis delivered more than once (a worker lost, or its heartbeat missed), with what
/// the jobs table says of them.
pub async fn redeliveries(db: &PgPool) -> Vec<String> {
    let rows = sqlx::query(
        "SELECT j.id::text AS id, j.kind, j.status, j.attempts, q.attempts AS deliveries, \
                q.last_result::text AS last_result \
         FROM apalis.jobs q \
         JOIN jobs j ON j.id::text = convert_from(q.job, 'UTF8')::jsonb->>'job_id' \
         WHERE q.attempts > 1 ORDER BY j.created_at",
    )
    .fetch_all(db)
    .await;
    match rows {
        Ok(rows) => rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}: {} attempts, {} deliveries, last result {}",
                    r.get::<String, _>("kind"),
                    r.get::<String, _>("id"),
                    r.get::<String, _>("status"),
                    r.get::<i32, _>("attempts"),
                    r.get::<i32, _>("deliveries"),
                    r.get::<Option<String>, _>("last_result").unwrap_or_default()
                )
            })
            .collect(),
        Err(e) => vec![format!("<cannot read apalis.jobs: {e}>")],
    }
}

/// What [`stuck`] asks the database, each with what it shows.
const STUCK_QUERIES: [(&str, &str); 5] = [
    (
        "open jobs",
        "SELECT j.kind || ' ' || j.id || ' ' || j.status || ' attempts ' || j.attempts \
                || ' started ' || coalesce(j.started_at::text, '-') \
         FROM jobs j WHERE j.status IN ('pending', 'running') ORDER BY j.created_at LIMIT 30",
    ),
    (
        "apalis jobs not done",
        "SELECT job_type || ' ' || id || ' ' || status || ' attempts ' || attempts \
                || ' lock_by ' || coalesce(lock_by, '-') || ' lock_at ' \
                || coalesce(lock_at::text, '-') \
         FROM apalis.jobs WHERE status NOT IN ('Done') ORDER BY run_at LIMIT 30",
    ),
    (
        "apalis workers",
        "SELECT id || ' last seen ' || last_seen::text || ' (' \
                || round(EXTRACT(EPOCH FROM now() - last_seen)::numeric, 1) || ' s ago)' \
         FROM apalis.workers ORDER BY last_seen",
    ),
    (
        "sessions",
        "SELECT pid || ' ' || coalesce(application_name, '') || ' ' || coalesce(state, '') \
                || ' xact ' || coalesce(xact_start::text, '-') || ' wait ' \
                || coalesce(wait_event_type || ':' || wait_event, '-') || ' ' \
                || left(regexp_replace(query, '\\s+', ' ', 'g'), 160) \
         FROM pg_stat_activity WHERE datname = 'orgraph' AND pid <> pg_backend_pid()",
    ),
    (
        "locks not granted",
        "SELECT pid || ' ' || locktype || ' ' || mode || ' ' \
                || coalesce(relation::regclass::text, '') FROM pg_locks WHERE NOT granted",
    ),
];

/// What the queue and the server look like when jobs do not move: the open jobs, apalis' view of
/// them and of its workers, and every session of the database.
pub async fn stuck(db: &PgPool, worker: &WorkerProcess, postmaster: Option<u32>) -> String {
    let mut out = heartbeats(db, worker).await;
    out.push_str(&format!("-- worker readiness: {}\n", worker.readiness().await));
    if let Some(pid) = postmaster {
        let mut states: BTreeMap<char, Vec<u32>> = BTreeMap::new();
        for child in children_of(pid) {
            if let Some((state, _)) = proc_stat(child) {
                states.entry(state).or_default().push(child);
            }
        }
        out.push_str(&format!("-- postgres processes by state (postmaster {pid}): {states:?}\n"));
    }
    for (what, sql) in STUCK_QUERIES {
        out.push_str(&format!("-- {what}:\n"));
        match sqlx::query_scalar::<_, String>(sql).fetch_all(db).await {
            Ok(lines) => {
                for line in lines {
                    out.push_str(&format!("   {line}\n"));
                }
            }
            Err(e) => out.push_str(&format!("   <{e}>\n")),
        }
    }
    out
}

/// Each queue of the running worker process: when did any of its apalis workers last beat?
/// (A queue worker that lost the database restarts under a new name after at most 30 s.)
async fn heartbeats(db: &PgPool, worker: &WorkerProcess) -> String {
    let mut out = String::new();
    if let Some(instance) = worker.instance() {
        let beats: Result<Vec<(String, f64)>, _> = sqlx::query_as(
            "SELECT worker_type, EXTRACT(EPOCH FROM now() - max(last_seen))::float8 \
             FROM apalis.workers WHERE id LIKE '%' || $1 || '%' GROUP BY worker_type",
        )
        .bind(&instance)
        .fetch_all(db)
        .await;
        out.push_str(&format!(
            "-- queues of worker instance {instance} (pid {:?}):\n",
            worker.pid()
        ));
        match beats {
            Ok(beats) => {
                for (queue, age) in beats {
                    let verdict = if age > 45.0 { "  <- WEDGED: no heartbeat" } else { "" };
                    out.push_str(&format!("   {queue}: last heartbeat {age:.1} s ago{verdict}\n"));
                }
            }
            Err(e) => out.push_str(&format!("   <{e}>\n")),
        }
    }
    out
}
