//! The faults: what they act on, the seeded plan of them, and each one struck and reported.
//! Postgres is SIGKILLed or SIGSTOPped with every child ([`postgres`]), the API's pool is
//! saturated behind a table lock ([`saturate`]), the worker is SIGKILLed mid-job
//! ([`worker_kill`]); [`signals`] sends the signals and watches the processes through /proc.

mod postgres;
mod saturate;
pub mod signals;
mod worker_kill;

use crate::api::Api;
use crate::load::Control;
use crate::rng::Rng;
use crate::worker_process::WorkerProcess;
use postgres::PgFault;
use signals::StoppedProcesses;
use sqlx::PgPool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// What the faults act on.
pub struct Rig {
    pub db: PgPool,
    pub pg: Arc<Mutex<testkit::Postgres>>,
    pub stopped: StoppedProcesses,
    pub api: Api,
    pub pg_url: String,
}

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// Postgres (postmaster and every child) SIGKILLed, then started again.
    PgKill,
    /// Postgres (postmaster and every child) SIGSTOPped past the pool timeout, then SIGCONT.
    PgStop,
    /// The worker SIGKILLed while a job runs, then started again.
    WorkerKill,
    /// `employees` locked while readers hit the API: callers wait past the pool timeout.
    Saturate,
}

/// What one fault did.
pub struct FaultReport {
    pub kind: FaultKind,
    /// When it struck, from the start of the chaos.
    pub at: Duration,
    pub detail: String,
    /// `/health/ready` answers 503 naming postgres (Postgres faults).
    pub ready_503: u64,
    /// 503 problems the fault's own readers got (saturation).
    pub unavailable: u64,
}

/// The faults, in a seeded order: each kind at least once, some more at random.
pub fn plan(rng: &mut Rng) -> Vec<FaultKind> {
    let mut plan =
        vec![FaultKind::PgKill, FaultKind::PgStop, FaultKind::WorkerKill, FaultKind::Saturate];
    for _ in 0..rng.between(1, 3) {
        let extra =
            [FaultKind::PgKill, FaultKind::PgStop, FaultKind::Saturate, FaultKind::WorkerKill];
        plan.push(extra[rng.below(extra.len() as u64) as usize]);
    }
    rng.shuffle(&mut plan);
    plan
}

/// Strikes one fault of `kind`, `at` this far into the chaos, with seeded parameters; the jobs
/// the API accepted for the fault itself go to `extra_accepted`. Panics if the fault could not
/// be struck.
pub async fn inflict(
    kind: FaultKind,
    at: Duration,
    rig: &Rig,
    worker: &mut WorkerProcess,
    control: &Control,
    rng: &mut Rng,
    extra_accepted: &mut Vec<(Uuid, String)>,
) -> FaultReport {
    let mut report = FaultReport { kind, at, detail: String::new(), ready_503: 0, unavailable: 0 };
    match kind {
        FaultKind::PgKill => {
            let fault = PgFault::Kill(rng.millis(200, 1000), rng.millis(1500, 3000));
            postgres::pg_fault(rig, &mut report, fault, rng.between(2, 8), extra_accepted)
                .await
                .unwrap_or_else(|e| panic!("SIGKILL of postgres: {e:#}"));
        }
        FaultKind::PgStop => {
            let fault = PgFault::Stop(rng.millis(3000, 5000));
            postgres::pg_fault(rig, &mut report, fault, rng.between(2, 8), extra_accepted)
                .await
                .unwrap_or_else(|e| panic!("SIGSTOP of postgres: {e:#}"));
        }
        FaultKind::Saturate => {
            saturate::saturate(rig, &mut report, rng.millis(2000, 4000))
                .await
                .unwrap_or_else(|e| panic!("saturating the API's pool: {e:#}"));
        }
        FaultKind::WorkerKill => {
            let delay = rng.millis(0, 300);
            let accepted =
                worker_kill::kill_worker_mid_job(rig, worker, control, &mut report, delay)
                    .await
                    .unwrap_or_else(|e| panic!("SIGKILL of the worker mid-job: {e:#}"));
            extra_accepted.extend(accepted.into_iter().map(|id| (id, "analysis".to_string())));
        }
    }
    report
}
