//! What must hold once no fault is left, each check adding a line per broken invariant: every
//! accepted job ended `done` or `failed` with a reason, every done export has exactly its one
//! file, every intervention changed the graph exactly as its jobs say and the reporting lines
//! have no loop, the task counter in Prometheus equals the jobs table, and the API answered the
//! faults with 503 problems, never a 500 or a hang.

use crate::api::Tally;
use crate::faults::{FaultKind, FaultReport};
use crate::load::Planned;
use crate::prometheus::Prometheus;
use crate::{METRICS_DEADLINE, ROOT};
use serde_json::Value;
use sqlx::{PgPool, Row};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A row of the jobs table.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: Uuid,
    pub kind: String,
    pub status: String,
    pub error: Option<String>,
    params: Value,
    result: Option<Value>,
    pub attempts: i32,
}

/// Every job, oldest first.
pub async fn all_jobs(db: &PgPool) -> anyhow::Result<Vec<JobRecord>> {
    let rows = sqlx::query(
        "SELECT id, kind, status, error, params, result, attempts FROM jobs ORDER BY created_at",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| JobRecord {
            id: r.get("id"),
            kind: r.get("kind"),
            status: r.get("status"),
            error: r.get("error"),
            params: r.get("params"),
            result: r.get("result"),
            attempts: r.get("attempts"),
        })
        .collect())
}

/// Every employee's manager.
pub async fn managers(db: &PgPool) -> anyhow::Result<HashMap<i64, i64>> {
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT source_id, target_id FROM relations WHERE kind = 'reports_to'")
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Every accepted job ended `done`, or `failed` with a reason.
pub fn check_jobs(jobs: &[JobRecord], accepted: &[(Uuid, String)], violations: &mut Vec<String>) {
    let by_id: HashMap<Uuid, &JobRecord> = jobs.iter().map(|j| (j.id, j)).collect();
    for (id, kind) in accepted {
        match by_id.get(id) {
            None => violations.push(format!("accepted {kind} job {id} has no row")),
            Some(job) if job.kind != *kind => {
                violations.push(format!("accepted {kind} job {id} is a {} job", job.kind));
            }
            Some(job) => match job.status.as_str() {
                "done" => {}
                "failed" if job.error.as_deref().is_some_and(|e| !e.trim().is_empty()) => {}
                "failed" => violations.push(format!("{kind} job {id} failed without a reason")),
                other => violations.push(format!("{kind} job {id} ended {other}")),
            },
        }
    }
}

/// One file per done export, none for anything else, no temporaries.
pub fn check_exports(jobs: &[JobRecord], dir: &Path, violations: &mut Vec<String>) {
    let mut files: BTreeMap<String, u64> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                (e.file_name().to_string_lossy().into_owned(), size)
            })
            .collect(),
        Err(e) => {
            violations.push(format!("cannot list {}: {e}", dir.display()));
            return;
        }
    };
    for job in jobs.iter().filter(|j| j.kind == "export" && j.status == "done") {
        let ext = job.params["format"].as_str().unwrap_or("?");
        let name = format!("{}.{ext}", job.id);
        match files.remove(&name) {
            None => violations.push(format!("done export {} has no file {name}", job.id)),
            Some(size) => {
                let reported = job.result.as_ref().and_then(|r| r["bytes"].as_u64());
                if reported != Some(size) {
                    violations.push(format!(
                        "export file {name} has {size} bytes, its job says {reported:?}"
                    ));
                }
            }
        }
    }
    for (name, _) in files {
        violations.push(format!("{name} in the export directory belongs to no done export"));
    }
}

/// Each intervention changed the graph exactly as its finished jobs say, nothing else changed,
/// and the reporting lines have no loop.
pub async fn check_interventions(
    db: &PgPool,
    jobs: &[JobRecord],
    planned: &[Planned],
    initial: &HashMap<i64, i64>,
    violations: &mut Vec<String>,
) {
    let now = match managers(db).await {
        Ok(m) => m,
        Err(e) => {
            violations.push(format!("reading the reporting lines: {e:#}"));
            return;
        }
    };
    let states: HashMap<Uuid, String> =
        match sqlx::query_as::<_, (Uuid, String)>("SELECT id, state FROM interventions")
            .fetch_all(db)
            .await
        {
            Ok(rows) => rows.into_iter().collect(),
            Err(e) => {
                violations.push(format!("reading the interventions: {e}"));
                return;
            }
        };
    let mut expected = initial.clone();
    let mut touched = 0;
    for p in planned {
        let (manager, had_jobs) = check_intervention(p, jobs, &states, initial, violations);
        expected.insert(p.employee, manager);
        if had_jobs {
            touched += 1;
        }
    }
    check_reporting_lines(&now, &expected, violations);
    println!("chaos: {touched} interventions had jobs; {} reporting lines checked", expected.len());
    check_no_loop(db, violations).await;
}

/// One intervention: its state agrees with its finished jobs. Returns the manager those jobs
/// leave its employee with, and whether it had any job.
fn check_intervention(
    p: &Planned,
    jobs: &[JobRecord],
    states: &HashMap<Uuid, String>,
    initial: &HashMap<i64, i64>,
    violations: &mut Vec<String>,
) -> (i64, bool) {
    // The intervention's jobs, in the order they were accepted (the API queues one at a time).
    let mine: Vec<&JobRecord> = jobs
        .iter()
        .filter(|j| j.params["intervention_id"].as_str() == Some(&p.id.to_string()))
        .collect();
    let mut manager = p.before;
    let mut state = "proposed";
    for job in &mine {
        match (job.kind.as_str(), job.status.as_str()) {
            ("intervention_execute", "done") => (manager, state) = (ROOT, "executed"),
            ("intervention_rollback", "done") => (manager, state) = (p.before, "rolled_back"),
            _ => {}
        }
    }
    if initial.get(&p.employee) != Some(&p.before) {
        violations.push(format!("intervention {}: employee {} had moved before", p.id, p.employee));
    }
    if states.get(&p.id).map(String::as_str) != Some(state) {
        violations.push(format!(
            "intervention {} is {:?}, its jobs ({}) say {state}",
            p.id,
            states.get(&p.id),
            mine.iter().map(|j| format!("{} {}", j.kind, j.status)).collect::<Vec<_>>().join(", ")
        ));
    }
    (manager, !mine.is_empty())
}

/// Every employee reports to whom the interventions' jobs say, and nobody else has a manager.
fn check_reporting_lines(
    now: &HashMap<i64, i64>,
    expected: &HashMap<i64, i64>,
    violations: &mut Vec<String>,
) {
    let mut wrong = 0;
    for (employee, manager) in expected {
        if now.get(employee) != Some(manager) {
            wrong += 1;
            if wrong <= 20 {
                violations.push(format!(
                    "employee {employee} reports to {:?}, expected {manager}",
                    now.get(employee)
                ));
            }
        }
    }
    if now.len() != expected.len() {
        violations.push(format!(
            "{} employees have a manager, expected {}",
            now.len(),
            expected.len()
        ));
    }
}

/// Following the reporting lines up from anyone never comes back to them.
async fn check_no_loop(db: &PgPool, violations: &mut Vec<String>) {
    let loops: Result<i64, _> = sqlx::query_scalar(
        "WITH RECURSIVE walk(start, id, depth) AS ( \
           SELECT source_id, target_id, 1 FROM relations WHERE kind = 'reports_to' \
           UNION ALL \
           SELECT w.start, r.target_id, w.depth + 1 FROM walk w \
           JOIN relations r ON r.source_id = w.id AND r.kind = 'reports_to' \
           WHERE w.id <> w.start AND w.depth <= (SELECT count(*) FROM employees)) \
         SELECT count(*) FROM walk WHERE id = start",
    )
    .fetch_one(db)
    .await;
    match loops {
        Ok(0) => {}
        Ok(n) => violations.push(format!("the reporting lines have {n} loop(s)")),
        Err(e) => violations.push(format!("checking the reporting lines for loops: {e}")),
    }
}

/// `orgraph_task_completed_total` in Prometheus equals the jobs table; returns the last reading.
pub async fn check_metrics(
    prometheus: &Prometheus,
    jobs: &[JobRecord],
    violations: &mut Vec<String>,
) -> BTreeMap<(String, String), f64> {
    // What the table says: success is `done`; failure, timeout and panic are `failed`.
    let mut want: BTreeMap<(String, String), f64> = BTreeMap::new();
    for job in jobs {
        let status = if job.status == "done" { "done" } else { "failed" };
        *want.entry((job.kind.clone(), status.to_string())).or_default() += 1.0;
    }
    // A killed worker's series keeps its last value in Prometheus; `last_over_time` adds it in
    // even after the collector stops serving it.
    let promql = "sum by (task_type, task_status) \
                  (last_over_time(orgraph_task_completed_total{job=\"orgraph/worker\"}[15m]))";
    let until = Instant::now() + METRICS_DEADLINE;
    let mut last = BTreeMap::new();
    loop {
        let last_error;
        match prometheus.query(promql).await {
            Ok(series) => {
                last = series
                    .into_iter()
                    .map(|(labels, v)| {
                        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
                        ((get("task_type"), get("task_status")), v)
                    })
                    .collect();
                let mut got: BTreeMap<(String, String), f64> = BTreeMap::new();
                for ((kind, status), v) in &last {
                    let table = match status.as_str() {
                        "success" => "done",
                        "failure" | "timeout" | "panic" => "failed",
                        _ => continue,
                    };
                    *got.entry((kind.clone(), table.to_string())).or_default() += v;
                }
                got.retain(|_, v| *v != 0.0);
                if got == want {
                    return last;
                }
                last_error = format!("Prometheus says {got:?}\nthe jobs table says {want:?}");
            }
            Err(e) => last_error = format!("{e:#}"),
        }
        if Instant::now() > until {
            violations.push(format!(
                "orgraph_task_completed_total never matched the jobs table within \
                 {METRICS_DEADLINE:?}: {last_error}\n(every series: {last:?})"
            ));
            return last;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// No 500, no hang, a 503 problem during the faults, readiness naming postgres in each
/// Postgres fault.
pub fn check_api(tally: &Tally, reports: &[FaultReport], violations: &mut Vec<String>) {
    for e in tally.server_errors.iter().take(20) {
        violations.push(format!("server error: {e}"));
    }
    for e in tally.hangs.iter().take(20) {
        violations.push(format!("hang: {e}"));
    }
    for e in tally.transport.iter().take(20) {
        violations.push(format!("no answer: {e}"));
    }
    for e in tally.not_problems.iter().take(20) {
        violations.push(format!("not a problem document: {e}"));
    }
    if tally.unavailable_in_faults == 0 {
        violations.push("the API answered no 503 problem during the faults".into());
    }
    for r in reports {
        match r.kind {
            FaultKind::PgKill | FaultKind::PgStop if r.ready_503 == 0 => violations.push(format!(
                "/health/ready never answered 503 naming postgres during {:?} at +{:.1}s",
                r.kind,
                r.at.as_secs_f64()
            )),
            _ => {}
        }
    }
}
