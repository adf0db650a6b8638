//! Postgres, postmaster and every child, SIGKILLed (then started again) or SIGSTOPped past the
//! pool timeout (then continued), preferably while jobs run, with readiness polled throughout:
//! it must answer 503 naming postgres, and be ready again afterwards.

use super::signals::{children_of, signal, wait_continued, wait_gone, wait_stopped};
use super::{FaultReport, Rig};
use crate::api::Api;
use crate::load::accepted;
use crate::util::lock;
use reqwest::Method;
use serde_json::json;
use sqlx::{PgPool, Row};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How Postgres is hit.
pub enum PgFault {
    /// Frozen for the first duration, then killed, down for the second.
    Kill(Duration, Duration),
    Stop(Duration),
}

/// SIGKILLs or SIGSTOPs Postgres with every child process, preferably while a job runs, polling
/// readiness throughout.
pub async fn pg_fault(
    rig: &Rig,
    report: &mut FaultReport,
    fault: PgFault,
    burst: u64,
    accepted_jobs: &mut Vec<(Uuid, String)>,
) -> anyhow::Result<()> {
    let Rig { db, pg, stopped, api, .. } = rig;
    let faults = &api.faults;
    // A burst of exports first, so that several jobs are in flight when the fault hits.
    for i in 0..burst {
        let format = if i % 2 == 0 { "csv" } else { "jsonl" };
        let body = json!({"kind": "employee_metrics", "format": format});
        if let Some(id) = accepted(api.call(Method::POST, "/api/exports", Some(body)).await) {
            accepted_jobs.push((id, "export".into()));
        }
    }
    let in_flight = running_jobs(db, 2, Duration::from_secs(3)).await;
    let in_flight = if in_flight.is_empty() { "none".to_string() } else { in_flight.join(", ") };
    let postmaster = lock(pg).pid().ok_or_else(|| anyhow::anyhow!("postgres is not running"))?;
    faults.begin(report.kind);
    let polling = Arc::new(AtomicBool::new(true));
    let poller = tokio::spawn(poll_ready(api.clone(), polling.clone()));
    // The postmaster first: once stopped (not merely signalled: a fork in progress completes), it
    // can fork no new backend, so its children can be listed completely.
    stopped.add(&[postmaster]);
    signal(&[postmaster], "STOP").await?;
    wait_stopped(&[postmaster], Duration::from_secs(5)).await?;
    let result = strike(rig, report, fault, postmaster, &in_flight).await;
    if result.is_ok() {
        stopped.clear();
    }
    faults.end();
    // Readiness is polled until it says ready again, or 30 s.
    let recovered = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = api.call(Method::GET, "/health/ready", None).await;
        if matches!(ready, Some((200, _))) || Instant::now() > recovered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    polling.store(false, Ordering::SeqCst);
    let answers = poller.await?;
    report.ready_503 = answers.get("503 naming postgres").copied().unwrap_or(0);
    report.detail = format!("{}; readiness during it: {answers:?}", report.detail);
    result
}

/// The fault proper, the postmaster already stopped: every child stopped too, then killed (and
/// Postgres started again) or continued; says what it did in the report's detail.
async fn strike(
    rig: &Rig,
    report: &mut FaultReport,
    fault: PgFault,
    postmaster: u32,
    in_flight: &str,
) -> anyhow::Result<()> {
    let Rig { pg, stopped, .. } = rig;
    let children = children_of(postmaster);
    let mut all = vec![postmaster];
    all.extend(&children);
    match fault {
        PgFault::Kill(frozen, down) => {
            // Frozen a moment first, so that the work in flight piles up on the server, and
            // so that no backend outlives the postmaster even for an instant (one would
            // notice and exit by itself instead of being killed).
            stopped.add(&children);
            signal(&children, "STOP").await?;
            tokio::time::sleep(frozen).await;
            signal(&all, "KILL").await?;
            wait_gone(&all, Duration::from_secs(10)).await?;
            tokio::time::sleep(down).await;
            let pg = pg.clone();
            tokio::task::spawn_blocking(move || lock(&pg).start_again()).await??;
            report.detail = format!(
                "froze {} processes {:.1}s, killed them (jobs running: {in_flight}), down \
                 {:.1}s",
                all.len(),
                frozen.as_secs_f64(),
                down.as_secs_f64()
            );
        }
        PgFault::Stop(hold) => {
            stopped.add(&all);
            signal(&children, "STOP").await?;
            wait_stopped(&all, Duration::from_secs(5)).await?;
            let late: Vec<u32> =
                children_of(postmaster).into_iter().filter(|c| !all.contains(c)).collect();
            anyhow::ensure!(late.is_empty(), "the stopped postmaster has new children {late:?}");
            tokio::time::sleep(hold).await;
            signal(&all, "CONT").await?;
            wait_continued(&all, Duration::from_secs(5)).await?;
            report.detail = format!(
                "stopped {} processes {:.1}s (jobs running: {in_flight})",
                all.len(),
                hold.as_secs_f64()
            );
        }
    }
    Ok(())
}

/// Polls `/health/ready` while `on`; returns its answers, by kind.
async fn poll_ready(api: Api, on: Arc<AtomicBool>) -> BTreeMap<String, u64> {
    let mut answers = BTreeMap::new();
    while on.load(Ordering::SeqCst) {
        let answer = match api.call(Method::GET, "/health/ready", None).await {
            Some((503, body))
                if body["detail"].as_str().is_some_and(|d| d.contains("postgres")) =>
            {
                "503 naming postgres".to_string()
            }
            Some((status, body)) if status != 200 => format!("{status} {}", body["detail"]),
            Some((status, _)) => status.to_string(),
            None => "no answer".to_string(),
        };
        *answers.entry(answer).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    answers
}

/// The jobs running right now (kind and id), waiting up to `wait` for at least `least` of them
/// (then taking what runs).
async fn running_jobs(db: &PgPool, least: usize, wait: Duration) -> Vec<String> {
    let until = Instant::now() + wait;
    loop {
        let rows = sqlx::query("SELECT id, kind FROM jobs WHERE status = 'running'")
            .fetch_all(db)
            .await
            .unwrap_or_default();
        if rows.len() >= least || Instant::now() >= until {
            return rows
                .iter()
                .map(|r| format!("{} {}", r.get::<String, _>("kind"), r.get::<Uuid, _>("id")))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
