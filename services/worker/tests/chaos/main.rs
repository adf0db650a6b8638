//! Chaos: while the three job kinds flow through the API's HTTP endpoints, Postgres is SIGKILLed
//! and SIGSTOPped, the worker is SIGKILLed mid-job and the API's pool is saturated, at moments
//! drawn from a seed. Afterwards, with no fault left, the invariants must hold: every accepted job
//! ends `done` or `failed` (with a reason), every done export has exactly its one file, every
//! intervention changed the graph exactly once (and a rollback undid it), the reporting lines have
//! no loop, the worker's `orgraph_task_completed_total` read from a real Prometheus equals the jobs
//! table, and the API answered 503 problems during the faults, never a 500 and never a hang.
//!
//! The other tests prove each mechanism alone; this one exists because the failures that matter
//! happen where they meet: a connection lost while a job records its outcome, a job handed out
//! again after its worker died, callers queueing for a pool whose connections wait on a lock, an
//! OTLP export that dies with the process.
//!
//! The seed comes from `CHAOS_SEED` (default 1) and decides the fault schedule and the requests;
//! a failing run prints it. Replay one with
//! `CHAOS_SEED=N cargo test -p worker --test chaos -- --nocapture`.
//!
//! The test reads as its five steps: [`Setup::start`] starts the rig, [`run_chaos`] runs the load
//! while the faults strike, [`wait_for_quiet`] waits until every job has ended,
//! [`check_invariants`] checks what must hold, and [`report::report`] prints what happened.

#[path = "../support/mod.rs"]
mod support;

mod api;
mod diagnostics;
mod faults;
mod invariants;
mod load;
mod prometheus;
mod report;
mod rng;
mod setup;
mod util;
mod worker_process;

use faults::FaultReport;
use invariants::JobRecord;
use load::{Control, Load};
use rng::Rng;
use setup::Setup;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Employees of the seeded graph.
const EMPLOYEES: u32 = 2000;
/// The API's settings: a small pool, so a locked table saturates it.
const PG_POOL_MAX: &str = "4";
const PG_POOL_TIMEOUT_MS: u64 = 1000;
const REQUEST_TIMEOUT_MS: u64 = 5000;
/// A request unanswered this long hangs (the API's own timeout plus a margin).
const CLIENT_TIMEOUT: Duration = Duration::from_millis(REQUEST_TIMEOUT_MS + 3000);
/// The worker's metric export interval; Prometheus scrapes the collector as often.
const EXPORT_INTERVAL_MS: u64 = 1000;
/// How long before a SIGKILL of the worker no job may have finished: increments recorded since
/// the last export die with the process.
const QUIET_BEFORE_KILL: Duration = Duration::from_millis(EXPORT_INTERVAL_MS * 5 / 2);
/// The worker's heartbeat: a killed worker's job runs again after 5 missed beats (5 s), longer
/// than any SIGSTOP of Postgres here, so a merely paused worker never loses its jobs.
const HEARTBEAT_MS: &str = "1000";
const MISSED_HEARTBEATS: &str = "5";
/// How long the load runs with faults.
const CHAOS_FOR: Duration = Duration::from_secs(180);
/// Bounds of the waits after the chaos.
const SETTLE_DEADLINE: Duration = Duration::from_secs(90);
const METRICS_DEADLINE: Duration = Duration::from_secs(60);
/// The root of the generated graph (the CEO): reporting to them can never close a loop.
const ROOT: i64 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_database_chaos() {
    let seed = seed();
    println!("chaos: CHAOS_SEED={seed}");
    let started = Instant::now();
    let mut rng = Rng::new(seed);

    let mut setup = Setup::start(seed).await;
    println!("chaos: set up in {:.1}s", started.elapsed().as_secs_f64());
    let (load, reports) = run_chaos(&mut setup, &mut rng, seed).await;
    let jobs = wait_for_quiet(&mut setup).await;
    let (violations, metrics) = check_invariants(&setup, &jobs, &load, &reports).await;
    report::report(&setup, seed, started, &load, &jobs, &reports, &metrics).await;

    assert!(
        violations.is_empty(),
        "{} invariant(s) broken:\n- {}\nreplay with CHAOS_SEED={seed}",
        violations.len(),
        violations.join("\n- ")
    );
    setup.stop();
}

/// `CHAOS_SEED`, or 1.
fn seed() -> u64 {
    match std::env::var("CHAOS_SEED") {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().unwrap_or_else(|_| panic!("CHAOS_SEED={v:?} is not a number"))
        }
        _ => 1,
    }
}

/// The load (all three job kinds through the API) runs for [`CHAOS_FOR`] while the faults strike
/// at seeded moments; returns what the load did and what each fault did.
async fn run_chaos(setup: &mut Setup, rng: &mut Rng, seed: u64) -> (Load, Vec<FaultReport>) {
    let control = Arc::new(Control::default());
    let mut candidates: Vec<i64> =
        setup.initial.iter().filter(|(_, m)| **m != ROOT).map(|(e, _)| *e).collect();
    candidates.sort_unstable();
    rng.shuffle(&mut candidates);
    let load = tokio::spawn(load::drive_load(
        setup.rig.api.clone(),
        Rng::new(rng.next()),
        control.clone(),
        candidates,
        setup.initial.clone(),
        seed,
    ));

    let plan = faults::plan(rng);
    println!("chaos: fault plan {plan:?}");
    let chaos_started = Instant::now();
    let mut reports: Vec<FaultReport> = Vec::new();
    let mut extra_accepted = Vec::new();
    let gap_budget = CHAOS_FOR.as_millis() as u64 / (plan.len() as u64 + 1);
    for kind in plan {
        let gap = rng.millis(gap_budget / 3, gap_budget);
        tokio::time::sleep(gap).await;
        let at = chaos_started.elapsed();
        let (rig, worker) = (&setup.rig, &mut setup.worker);
        let report =
            faults::inflict(kind, at, rig, worker, &control, rng, &mut extra_accepted).await;
        println!(
            "chaos: +{:.1}s {:?} done after {:.1}s: {}",
            at.as_secs_f64(),
            kind,
            chaos_started.elapsed().as_secs_f64() - at.as_secs_f64(),
            report.detail
        );
        reports.push(report);
        assert!(
            setup.worker.exited().is_none(),
            "the worker exited by itself during the chaos (replay with CHAOS_SEED={seed})"
        );
    }
    if let Some(rest) = CHAOS_FOR.checked_sub(chaos_started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    control.stop.store(true, Ordering::SeqCst);
    let mut load = tokio::time::timeout(Duration::from_secs(60), load)
        .await
        .expect("the load stops within 60 s")
        .expect("the load task does not panic");
    load.accepted.extend(extra_accepted);
    println!(
        "chaos: load ran {:.1}s; settling (no fault left)",
        chaos_started.elapsed().as_secs_f64()
    );
    (load, reports)
}

/// Every job ends, within [`SETTLE_DEADLINE`]; returns them all.
async fn wait_for_quiet(setup: &mut Setup) -> Vec<JobRecord> {
    let db = &setup.rig.db;
    let settle_started = Instant::now();
    let jobs = loop {
        let jobs = match invariants::all_jobs(db).await {
            Ok(jobs) => jobs,
            Err(e) => panic!("reading the jobs table: {e:#}"),
        };
        let open: Vec<&JobRecord> =
            jobs.iter().filter(|j| j.status == "pending" || j.status == "running").collect();
        if open.is_empty() {
            break jobs;
        }
        if settle_started.elapsed() > SETTLE_DEADLINE {
            let listed: Vec<String> = open
                .iter()
                .map(|j| {
                    format!(
                        "{} {} {} attempts {} error {:?}",
                        j.id, j.kind, j.status, j.attempts, j.error
                    )
                })
                .collect();
            let postmaster = util::lock(&setup.rig.pg).pid();
            let state = diagnostics::stuck(db, &setup.worker, postmaster).await;
            panic!(
                "timed out after {SETTLE_DEADLINE:?} waiting for every job to be done or failed; \
                 {} still open:\n{}\n{state}",
                open.len(),
                listed.join("\n"),
            );
        }
        assert!(setup.worker.exited().is_none(), "the worker exited while jobs were settling");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "chaos: every job finished {:.1}s after the load",
        settle_started.elapsed().as_secs_f64()
    );
    jobs
}

/// Every invariant, each broken one a line; and the last reading of the task counter.
async fn check_invariants(
    setup: &Setup,
    jobs: &[JobRecord],
    load: &Load,
    reports: &[FaultReport],
) -> (Vec<String>, BTreeMap<(String, String), f64>) {
    let db = &setup.rig.db;
    let mut violations: Vec<String> = Vec::new();
    invariants::check_jobs(jobs, &load.accepted, &mut violations);
    invariants::check_exports(jobs, &setup.export_dir, &mut violations);
    invariants::check_interventions(db, jobs, &load.interventions, &setup.initial, &mut violations)
        .await;
    let metrics = invariants::check_metrics(&setup.prometheus, jobs, &mut violations).await;
    invariants::check_api(&setup.rig.api.tally.lock().expect("tally"), reports, &mut violations);
    (violations, metrics)
}
