//! What a run says: the summary every run prints (the load, the jobs by kind, status and
//! reason, each fault, the API's answers, the task counter, the redelivered jobs), and on a
//! failure the logs' tails and how to replay the seed.

use crate::api::Tally;
use crate::diagnostics::redeliveries;
use crate::faults::{FaultKind, FaultReport};
use crate::invariants::JobRecord;
use crate::load::Load;
use crate::setup::Setup;
use crate::util::{lock, tail};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use uuid::Uuid;

/// Prints the summary of the run and the jobs apalis handed out more than once.
pub async fn report(
    setup: &Setup,
    seed: u64,
    started: Instant,
    load: &Load,
    jobs: &[JobRecord],
    reports: &[FaultReport],
    metrics: &BTreeMap<(String, String), f64>,
) {
    let redelivered = redeliveries(&setup.rig.db).await;
    let tally = &setup.rig.api.tally;
    print_summary(seed, started, load, jobs, reports, &tally.lock().expect("tally"), metrics);
    println!("jobs apalis handed out more than once: {}", redelivered.len());
    for line in &redelivered {
        println!("  {line}");
    }
}

/// The run in numbers.
fn print_summary(
    seed: u64,
    started: Instant,
    load: &Load,
    jobs: &[JobRecord],
    reports: &[FaultReport],
    tally: &Tally,
    metrics: &BTreeMap<(String, String), f64>,
) {
    let mut accepted: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, kind) in &load.accepted {
        *accepted.entry(kind.as_str()).or_default() += 1;
    }
    let mut table: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for job in jobs {
        *table.entry((job.kind.as_str(), job.status.as_str())).or_default() += 1;
        if job.status == "failed" {
            let reason = job.error.as_deref().map(generalise).unwrap_or_default();
            *reasons.entry(format!("{}: {reason}", job.kind)).or_default() += 1;
        }
    }
    let mut by_kind: BTreeMap<FaultKind, u64> = BTreeMap::new();
    for r in reports {
        *by_kind.entry(r.kind).or_default() += 1;
    }
    println!(
        "==== chaos summary (CHAOS_SEED={seed}, {:.1}s) ====",
        started.elapsed().as_secs_f64()
    );
    println!("requests made by the load: {:?}", load.submitted);
    println!("accepted (202) by kind: {accepted:?}");
    println!("interventions proposed (201): {}", load.interventions.len());
    println!("jobs by kind and status: {table:?}");
    println!("failed by reason:");
    for (reason, n) in &reasons {
        println!("  {n:>4} × {reason}");
    }
    println!("faults by kind: {by_kind:?}");
    for r in reports {
        println!(
            "  +{:>6.1}s {:?}: {} (ready 503s naming postgres: {}, readers' 503s: {})",
            r.at.as_secs_f64(),
            r.kind,
            r.detail,
            r.ready_503,
            r.unavailable
        );
    }
    println!("API responses by status: {:?}", tally.by_status);
    for ((route, status), n) in &tally.by_route {
        println!("  {n:>5} × {status} {route}");
    }
    println!(
        "503 problems during faults: {}; outside faults: {}; hangs: {}; 5xx other than 503: {}",
        tally.unavailable_in_faults,
        tally.unavailable_outside.len(),
        tally.hangs.len(),
        tally.server_errors.len()
    );
    for e in tally.unavailable_outside.iter().take(10) {
        println!("  503 outside faults: {e}");
    }
    println!("orgraph_task_completed_total by (task_type, task_status): {metrics:?}");
}

/// An error text with ids and numbers blanked, so like errors group together.
fn generalise(text: &str) -> String {
    let mut out = String::new();
    for word in text.split(' ') {
        if !out.is_empty() {
            out.push(' ');
        }
        let trimmed = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if trimmed.parse::<Uuid>().is_ok() {
            out.push_str(&word.replace(trimmed, "<id>"));
        } else {
            out.push_str(
                &word.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect::<String>(),
            );
        }
    }
    out.chars().take(200).collect()
}

/// On a failing run: the logs' tails and how to replay it.
pub struct OnFailure {
    pub seed: u64,
    pub worker_log: PathBuf,
    pub pg: Arc<Mutex<testkit::Postgres>>,
}

impl Drop for OnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- worker log (last 80 lines of {}) ----", self.worker_log.display());
            eprintln!("{}", tail(&self.worker_log, 80));
            let pg_log = lock(&self.pg).log();
            let lines: Vec<&str> = pg_log.lines().collect();
            eprintln!("---- postgres log (last 40 lines) ----");
            eprintln!("{}", lines[lines.len().saturating_sub(40)..].join("\n"));
            eprintln!("chaos: FAILED; replay with CHAOS_SEED={}", self.seed);
        }
    }
}
