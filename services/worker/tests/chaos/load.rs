//! The load: the three job kinds (analyses, exports, interventions executed and some rolled
//! back) submitted through the API's HTTP endpoints at a seeded pace, until told to stop, with
//! every job the API accepted remembered for the checks.

use crate::ROOT;
use crate::api::Api;
use crate::rng::Rng;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Pauses and stops the load.
#[derive(Default)]
pub struct Control {
    paused: AtomicBool,
    /// Set by the load while it is paused (no request of it in flight).
    parked: AtomicBool,
    pub stop: AtomicBool,
}

impl Control {
    pub async fn pause(&self) -> anyhow::Result<()> {
        self.paused.store(true, Ordering::SeqCst);
        let until = Instant::now() + Duration::from_secs(30);
        while !self.parked.load(Ordering::SeqCst) {
            anyhow::ensure!(Instant::now() < until, "the load did not pause within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    pub fn resume(&self) {
        self.parked.store(false, Ordering::SeqCst);
        self.paused.store(false, Ordering::SeqCst);
    }
}

/// What the load did.
#[derive(Default)]
pub struct Load {
    /// Every job the API accepted (202), with its kind.
    pub accepted: Vec<(Uuid, String)>,
    /// Every intervention the API created (201).
    pub interventions: Vec<Planned>,
    /// Requests by what they asked for.
    pub submitted: BTreeMap<&'static str, u64>,
}

/// One proposed intervention and what became of its jobs.
#[derive(Debug, Clone)]
pub struct Planned {
    pub id: Uuid,
    pub employee: i64,
    /// The manager before the proposal.
    pub before: i64,
    want_rollback: bool,
    execute: Option<Uuid>,
    execute_tries: u32,
    rollback: Option<Uuid>,
    rollback_tries: u32,
    /// Looks at the execution's job while waiting to roll it back.
    polls: u32,
}

/// Submits jobs until `control` says stop, pausing when it says pause.
pub async fn drive_load(
    api: Api,
    mut rng: Rng,
    control: Arc<Control>,
    mut candidates: Vec<i64>,
    initial: HashMap<i64, i64>,
    seed: u64,
) -> Load {
    let mut load = Load::default();
    let mut proposals = 0u64;
    while !control.stop.load(Ordering::SeqCst) {
        if control.paused.load(Ordering::SeqCst) {
            control.parked.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        control.parked.store(false, Ordering::SeqCst);
        match rng.below(10) {
            0..=1 => submit_analysis(&api, &mut rng, &mut load).await,
            2..=4 => submit_export(&api, &mut rng, &mut load).await,
            _ => {
                if let Some(employee) = candidates.pop() {
                    proposals += 1;
                    let reason = format!("chaos seed {seed}, proposal {proposals}");
                    propose(&api, &mut rng, &mut load, employee, &initial, reason).await;
                }
            }
        }
        move_one_on(&api, &mut rng, &mut load).await;
        tokio::time::sleep(rng.millis(100, 450)).await;
    }
    load
}

/// An analysis of seeded size.
async fn submit_analysis(api: &Api, rng: &mut Rng, load: &mut Load) {
    *load.submitted.entry("analysis").or_default() += 1;
    let body = json!({"iterations": rng.between(5, 40), "samples": rng.between(8, 64)});
    if let Some(id) = accepted(api.call(Method::POST, "/api/analysis", Some(body)).await) {
        load.accepted.push((id, "analysis".into()));
    }
}

/// An export, CSV or JSON lines.
async fn submit_export(api: &Api, rng: &mut Rng, load: &mut Load) {
    *load.submitted.entry("export").or_default() += 1;
    let format = if rng.chance(50) { "csv" } else { "jsonl" };
    let body = json!({"kind": "employee_metrics", "format": format});
    if let Some(id) = accepted(api.call(Method::POST, "/api/exports", Some(body)).await) {
        load.accepted.push((id, "export".into()));
    }
}

/// Proposes moving `employee` under the root and, once created, queues its execution.
async fn propose(
    api: &Api,
    rng: &mut Rng,
    load: &mut Load,
    employee: i64,
    initial: &HashMap<i64, i64>,
    reason: String,
) {
    *load.submitted.entry("intervention").or_default() += 1;
    let body = json!({
        "kind": "reassign",
        "employee_id": employee,
        "new_manager_id": ROOT,
        "reason": reason,
    });
    let reply = api.call(Method::POST, "/api/interventions", Some(body)).await;
    if let Some((201, body)) = reply {
        let id = body["id"].as_str().and_then(|s| s.parse().ok());
        if let Some(id) = id {
            load.interventions.push(Planned {
                id,
                employee,
                before: initial[&employee],
                want_rollback: rng.chance(40),
                execute: None,
                execute_tries: 0,
                rollback: None,
                rollback_tries: 0,
                polls: 0,
            });
            let planned = load.interventions.last_mut().expect("just pushed");
            execute(api, planned, &mut load.accepted).await;
        }
    }
}

/// Moves one earlier intervention on: an execute the API refused during a fault, or a rollback
/// of an executed one.
async fn move_one_on(api: &Api, rng: &mut Rng, load: &mut Load) {
    let waiting: Vec<usize> = (0..load.interventions.len())
        .filter(|&i| {
            let p = &load.interventions[i];
            (p.execute.is_none() && p.execute_tries < 5)
                || (p.want_rollback
                    && p.execute.is_some()
                    && p.rollback.is_none()
                    && p.rollback_tries < 5
                    && p.polls < 40)
        })
        .collect();
    if !waiting.is_empty() && rng.chance(60) {
        let i = waiting[rng.below(waiting.len() as u64) as usize];
        let planned = &mut load.interventions[i];
        if planned.execute.is_none() {
            execute(api, planned, &mut load.accepted).await;
        } else if let Some(job) = planned.execute {
            roll_back_once_done(api, planned, job, &mut load.accepted).await;
        }
    }
}

/// Looks at the execution's `job`; once it is done, queues the rollback of `planned`.
async fn roll_back_once_done(
    api: &Api,
    planned: &mut Planned,
    job: Uuid,
    accepted_jobs: &mut Vec<(Uuid, String)>,
) {
    planned.polls += 1;
    let reply = api.call(Method::GET, &format!("/api/jobs/{job}"), None).await;
    match reply {
        Some((200, body)) if body["status"] == "done" => {
            planned.rollback_tries += 1;
            let path = format!("/api/interventions/{}/rollback", planned.id);
            if let Some(id) = accepted(api.call(Method::POST, &path, None).await) {
                planned.rollback = Some(id);
                accepted_jobs.push((id, "intervention_rollback".into()));
            }
        }
        // Failed for good: nothing to roll back.
        Some((200, body)) if body["status"] == "failed" => planned.rollback_tries = 99,
        _ => {}
    }
}

/// Queues the execution of `planned`.
async fn execute(api: &Api, planned: &mut Planned, accepted_jobs: &mut Vec<(Uuid, String)>) {
    planned.execute_tries += 1;
    let path = format!("/api/interventions/{}/execute", planned.id);
    let reply = api.call(Method::POST, &path, None).await;
    match reply {
        Some((202, _)) => {
            if let Some(id) = accepted(reply) {
                planned.execute = Some(id);
                accepted_jobs.push((id, "intervention_execute".into()));
            }
        }
        // A 503 that came after the commit: the job exists but its id never reached us. The
        // checks read the intervention's jobs from the table, so stop asking.
        Some((409, _)) => planned.execute_tries = 99,
        _ => {}
    }
}

/// The job id of a 202.
pub fn accepted(reply: Option<(u16, Value)>) -> Option<Uuid> {
    match reply {
        Some((202, body)) => body["id"].as_str().and_then(|s| s.parse().ok()),
        _ => None,
    }
}
