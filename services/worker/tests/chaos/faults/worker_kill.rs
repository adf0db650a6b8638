//! The worker SIGKILLed mid-job, at a moment when the kill can lose nothing the checks count:
//! one long analysis runs and nothing else does, and no job finished since the last metric
//! export. Then it is started again, and the analysis must still end.

use super::signals::{signal, wait_stopped};
use super::{FaultReport, Rig};
use crate::QUIET_BEFORE_KILL;
use crate::api::Api;
use crate::diagnostics::stuck;
use crate::load::{Control, accepted};
use crate::util::lock;
use crate::worker_process::WorkerProcess;
use reqwest::Method;
use serde_json::json;
use sqlx::{PgPool, Row};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// SIGKILLs the worker while a long analysis runs and nothing else does, at a moment when every
/// count it recorded has been exported: no job finished in the last 2.5 export intervals (checked
/// with the worker SIGSTOPped, so nothing can change between the check and the kill). Returns the
/// analyses it had accepted.
pub async fn kill_worker_mid_job(
    rig: &Rig,
    worker: &mut WorkerProcess,
    control: &Control,
    report: &mut FaultReport,
    delay: Duration,
) -> anyhow::Result<Vec<Uuid>> {
    let (db, api, faults) = (&rig.db, &rig.api, &rig.api.faults);
    control.pause().await?;
    let mut analyses = Vec::new();
    let mut refused = Vec::new();
    let until = Instant::now() + Duration::from_secs(150);
    let killed = loop {
        anyhow::ensure!(
            Instant::now() < until,
            "no moment to kill the worker within 150 s; tries: {refused:?}"
        );
        // Drained: nothing pending or running, and long enough ago that it was exported.
        wait_drained(rig, worker).await?;
        tokio::time::sleep(QUIET_BEFORE_KILL).await;
        let job = long_analysis(api, until).await?;
        analyses.push(job);
        let status = first_status(db, job).await?;
        if status != "running" {
            refused.push(format!("analysis {job} was {status} when looked at"));
            continue;
        }
        tokio::time::sleep(delay).await;
        let pid = worker.pid().ok_or_else(|| anyhow::anyhow!("the worker is not running"))?;
        signal(&[pid], "STOP").await?;
        wait_stopped(&[pid], Duration::from_secs(5)).await?;
        match verdict(db, job).await {
            Ok(()) => {
                faults.begin(report.kind);
                worker.kill();
                break job;
            }
            Err(why) => {
                signal(&[pid], "CONT").await?;
                refused.push(why);
            }
        }
    };
    worker.start(&api.client).await?;
    faults.end();
    control.resume();
    report.detail = format!(
        "killed while analysis {killed} ran (worker start #{}); declined moments: {refused:?}",
        worker.starts
    );
    Ok(analyses)
}

/// Waits (up to 60 s) until no job is pending or running; if they do not drain, says what is
/// stuck.
async fn wait_drained(rig: &Rig, worker: &WorkerProcess) -> anyhow::Result<()> {
    let db = &rig.db;
    let drained = Instant::now() + Duration::from_secs(60);
    loop {
        let open: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')")
                .fetch_one(db)
                .await
                .unwrap_or(-1);
        if open == 0 {
            return Ok(());
        }
        if Instant::now() > drained {
            let postmaster = lock(&rig.pg).pid();
            let state = stuck(db, worker, postmaster).await;
            anyhow::bail!(
                "the queues did not drain within 60 s before killing the worker ({open} \
                 open)\n{state}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A long analysis, accepted (asked again until it is, or `until`).
async fn long_analysis(api: &Api, until: Instant) -> anyhow::Result<Uuid> {
    loop {
        let body = json!({"iterations": 200, "samples": 2000});
        if let Some(id) = accepted(api.call(Method::POST, "/api/analysis", Some(body)).await) {
            return Ok(id);
        }
        anyhow::ensure!(Instant::now() < until, "the API accepted no analysis");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The job's status once it is no longer pending (or after 30 s).
async fn first_status(db: &PgPool, job: Uuid) -> anyhow::Result<String> {
    let caught = Instant::now() + Duration::from_secs(30);
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
            .bind(job)
            .fetch_one(db)
            .await?;
        if status != "pending" || Instant::now() > caught {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// With the worker stopped: whether killing it now loses nothing, or why not.
async fn verdict(db: &PgPool, job: Uuid) -> Result<(), String> {
    let row = sqlx::query(
        "SELECT (SELECT status FROM jobs WHERE id = $1) AS status, \
                (SELECT count(*) FROM influence_scores WHERE job_id = $1) AS scores, \
                (SELECT count(*) FROM jobs WHERE status = 'running' AND id <> $1) AS others, \
                (SELECT COALESCE(EXTRACT(EPOCH FROM now() - max(finished_at))::float8, 1e9) \
                 FROM jobs WHERE id <> $1) AS quiet",
    )
    .bind(job)
    .fetch_one(db)
    .await;
    match &row {
        Ok(row) => {
            let (status, scores, others, quiet): (String, i64, i64, f64) =
                (row.get("status"), row.get("scores"), row.get("others"), row.get("quiet"));
            if status == "running"
                && scores == 0
                && others == 0
                && quiet >= QUIET_BEFORE_KILL.as_secs_f64()
            {
                Ok(())
            } else {
                Err(format!(
                    "analysis {job}: {status}, {scores} scores, {others} other jobs running, \
                     last finish {quiet:.1}s ago"
                ))
            }
        }
        Err(e) => Err(format!("checking before the kill: {e}")),
    }
}
