//! Job throughput by kind on a 10,000-employee graph: the real work, not no-ops. The release API
//! seeds the graph (`POST /api/graph/seed`, 10,000 employees), then the instrumented release
//! worker (default concurrency: analysis 1, export 2, intervention 8) drains, kind by kind, a
//! batch of causal analyses (30 PageRank iterations, 64 betweenness samples), CSV exports and
//! intervention executions (each a real reassignment). Jobs are enqueued as `domain::enqueue`
//! writes them; a kind's rate is its jobs over the time from the first start to the last finish,
//! as the worker stamped them.

use super::services::{Infra, Telemetry};
use super::{Figures, Plan, fresh_dir};
use anyhow::Context;
use std::time::Duration;

/// How long one kind's batch may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(900);

/// Adds `jobs_per_s_{analysis,export,intervention}_10k`.
pub fn per_kind(
    plan: Plan,
    infra: &Infra,
    runtime: &tokio::runtime::Runtime,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let api = infra.start_api(Telemetry::Instrumented)?;
    let url = format!("{}/api/graph/seed", api.base);
    eprintln!("[bench] seeding 10,000 employees");
    runtime.block_on(async {
        reqwest::Client::new()
            .post(&url)
            .bearer_auth(&infra.tokens.admin)
            .json(&serde_json::json!({"employees": 10_000, "avg_reports": 5, "seed": 1}))
            .timeout(Duration::from_secs(300))
            .send()
            .await?
            .error_for_status()?;
        Ok::<_, anyhow::Error>(())
    })?;
    api.stop()?;
    let exports = fresh_dir("jobs-exports")?;
    let worker = infra.start_worker(Telemetry::Instrumented, 8, &exports)?;
    let (analyses, exports_n, interventions) = if plan.quick { (1, 3, 20) } else { (3, 10, 100) };
    let batches = [
        (
            "analysis",
            enqueue(
                "analysis",
                "analysis",
                "'{\"iterations\": 30, \"samples\": 64}'::jsonb",
                analyses,
            ),
        ),
        (
            "export",
            enqueue(
                "export",
                "export",
                "'{\"kind\": \"employee_metrics\", \"format\": \"csv\"}'::jsonb",
                exports_n,
            ),
        ),
        ("intervention", enqueue_interventions(interventions)),
    ];
    for (name, sql) in batches {
        infra.sql("DELETE FROM apalis.jobs; DELETE FROM jobs")?;
        infra.sql(&sql)?;
        testkit::wait_for(&format!("the worker to drain the {name} batch"), DRAIN_TIMEOUT, || {
            let open =
                infra.sql("SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')")?;
            Ok((open.trim() == "0").then_some(()))
        })?;
        let summary = infra.sql(
            "SELECT count(*) FILTER (WHERE status = 'done') || '|' || count(*) || '|' || \
             COALESCE(EXTRACT(EPOCH FROM max(finished_at) - min(started_at)), 0) FROM jobs",
        )?;
        let parts: Vec<&str> = summary.trim().split('|').collect();
        let [done, all, seconds] = parts[..] else {
            anyhow::bail!("unexpected summary `{}`", summary.trim());
        };
        anyhow::ensure!(done == all, "{name}: only {done} of {all} jobs ended done");
        let seconds: f64 =
            seconds.parse().with_context(|| format!("`{seconds}` is not seconds"))?;
        let done: f64 = done.parse().with_context(|| format!("`{done}` is not a count"))?;
        let rate = done / seconds.max(1e-6);
        eprintln!("[bench] {name}: {done} jobs in {seconds:.2}s, {rate:.2} jobs/s");
        figures.add(&format!("jobs_per_s_{name}_10k"), format!("{rate:.2}"));
    }
    worker.stop()?;
    Ok(())
}

/// `count` jobs of `kind` with `params` on `queue`, shaped as `domain::enqueue` writes them.
fn enqueue(kind: &str, queue: &str, params: &str, count: u32) -> String {
    format!(
        "WITH queued AS (INSERT INTO jobs (id, kind, params) \
           SELECT gen_random_uuid(), '{kind}', {params} FROM generate_series(1, {count}) RETURNING id) \
         {}",
        apalis_insert(queue)
    )
}

/// `count` proposed reassignments (leaves of the seeded tree under employee 2) and one execute
/// job each.
fn enqueue_interventions(count: u32) -> String {
    format!(
        "WITH iv AS (INSERT INTO interventions (id, kind, employee_id, new_manager_id, reason) \
           SELECT gen_random_uuid(), 'reassign', 9000 + g, 2, 'cargo xtask bench' \
           FROM generate_series(1, {count}) g RETURNING id), \
         queued AS (INSERT INTO jobs (id, kind, params) \
           SELECT gen_random_uuid(), 'intervention_execute', \
             jsonb_build_object('intervention_id', iv.id::text) FROM iv RETURNING id) \
         {}",
        apalis_insert("intervention")
    )
}

fn apalis_insert(queue: &str) -> String {
    format!(
        "INSERT INTO apalis.jobs \
           (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata) \
         SELECT apalis.generate_ulid(), '{queue}', \
           convert_to(format('{{\"job_id\":\"%s\"}}', id), 'UTF8'), 'Pending', 0, 1, now(), 0, \
           ''::hstore FROM queued"
    )
}
