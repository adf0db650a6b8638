//! Worker throughput on no-op jobs: one intervention already `rolled_back` (an employee pair and
//! an `interventions` row, inserted with SQL into the platform's schema), and N
//! `intervention_rollback` jobs for it, each a no-op success (the worker finds the intervention
//! rolled back and changes nothing), so the figure is the cost of the job machinery and its
//! telemetry rather than of the work.
//!
//! Jobs are enqueued exactly as `domain::enqueue` does it (a `jobs` row and an `apalis.jobs`
//! entry with the JSON payload `{"job_id": …}`, status `Pending`, `max_attempts` 1), all N in one
//! transaction, while the release worker (`CONCURRENCY_INTERVENTION=8`) is already running and
//! idle, instrumented, with `OTEL_SDK_DISABLED=true`, or traced (instrumented, and its spans
//! exported to the same collector), A B C A B C. The drain is over when no job is `pending` or
//! `running`; the rate is N over the time from the first job's start to the last one's finish,
//! both stamped by the worker in the `jobs` rows (so the polling does not blur it). A traced run
//! counts only if the collector received its spans and passed every one on; the other runs must
//! send none.

use super::services::{Infra, Telemetry};
use super::traces::{SpanCounts, TracedTotals};
use super::{Figures, Plan, best_of, fresh_dir};
use anyhow::Context;
use std::time::Duration;

/// `CONCURRENCY_INTERVENTION` of the worker.
const CONCURRENCY: u32 = 8;

/// How long a drain may take at most.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// Adds `worker_jobs_per_s_instrumented`, `worker_jobs_per_s_disabled`,
/// `worker_jobs_per_s_traced`, `worker_throughput_ratio`, `worker_throughput_ratio_traced`, and
/// over both traced runs the spans the worker lost before export and their share of all its spans
/// (`worker_spans_dropped_traced`, `worker_spans_dropped_share_traced`).
pub fn throughput(plan: Plan, infra: &Infra, figures: &mut Figures) -> anyhow::Result<()> {
    let exports = fresh_dir("worker-exports")?;
    let jobs = plan.worker_jobs();
    let mut intervention = None;
    let mut runs = Vec::new();
    let mut traced_spans = TracedTotals::default();
    let total = Telemetry::ALTERNATING.len();
    for (i, telemetry) in Telemetry::ALTERNATING.into_iter().enumerate() {
        let spans = SpanCounts::read(&infra.collector)?;
        // The worker migrates the schema at start, so the tables exist once it is ready.
        let worker = infra.start_worker(telemetry, CONCURRENCY, &exports)?;
        let id = match &intervention {
            Some(id) => String::clone(id),
            None => intervention.insert(rolled_back_intervention(infra)?).clone(),
        };
        infra.sql(CLEAR_JOBS)?;
        eprintln!(
            "[bench] worker run {}/{total} ({}): enqueueing {jobs} no-op rollbacks, concurrency \
             {CONCURRENCY}",
            i + 1,
            telemetry.name()
        );
        infra.sql(&enqueue_sql(&id, jobs))?;
        testkit::wait_for(&format!("the worker to drain {jobs} jobs"), DRAIN_TIMEOUT, || {
            let open: u64 = number(&infra.sql(OPEN_JOBS)?)?;
            Ok((open == 0).then_some(()))
        })?;
        let summary = infra.sql(SUMMARY)?;
        let (done, seconds) = parse_summary(&summary)?;
        anyhow::ensure!(done == jobs, "{done} of {jobs} jobs ended `done` (the others failed)");
        anyhow::ensure!(seconds > 0.0, "the drain took no measurable time: {summary}");
        let rate = jobs as f64 / seconds;
        eprintln!(
            "[bench] worker run {}/{total} ({}): {jobs} jobs in {seconds:.2}s, {rate:.1} jobs/s",
            i + 1,
            telemetry.name()
        );
        let stopped = worker.stop()?;
        traced_spans.record(
            &infra.collector,
            (telemetry, &spans, &stopped),
            "worker",
            (i + 1, total),
        )?;
        runs.push((telemetry, rate));
    }
    let disabled = best_of(&runs, Telemetry::Disabled);
    let instrumented = best_of(&runs, Telemetry::Instrumented);
    let traced = best_of(&runs, Telemetry::Traced);
    figures.add("worker_jobs_per_s_instrumented", format!("{instrumented:.1}"));
    figures.add("worker_jobs_per_s_disabled", format!("{disabled:.1}"));
    figures.add("worker_jobs_per_s_traced", format!("{traced:.1}"));
    figures.add("worker_throughput_ratio", format!("{:.3}", instrumented / disabled));
    figures.add("worker_throughput_ratio_traced", format!("{:.3}", traced / disabled));
    figures.add("worker_spans_dropped_traced", traced_spans.lost().to_string());
    figures.add("worker_spans_dropped_share_traced", format!("{:.4}", traced_spans.lost_share()));
    Ok(())
}

/// Jobs not finished yet.
const OPEN_JOBS: &str = "SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')";

/// `<done jobs>|<seconds from the first start to the last finish>`.
const SUMMARY: &str = "SELECT count(*) FILTER (WHERE status = 'done'), \
     COALESCE(EXTRACT(EPOCH FROM max(finished_at) - min(started_at)), 0) FROM jobs";

/// Removes the previous run's jobs (all finished), so each run starts from the same tables.
const CLEAR_JOBS: &str = "DELETE FROM apalis.jobs; DELETE FROM jobs";

/// Inserts an employee pair and an intervention between them that is already rolled back;
/// returns its id.
fn rolled_back_intervention(infra: &Infra) -> anyhow::Result<String> {
    let sql = "WITH pair AS (\
           INSERT INTO employees (name, team) \
           VALUES ('bench employee', 'bench'), ('bench manager', 'bench') RETURNING id) \
         INSERT INTO interventions \
           (id, kind, employee_id, new_manager_id, reason, state, executed_at, rolled_back_at) \
         SELECT gen_random_uuid(), 'reassign', min(id), max(id), \
           'cargo xtask bench: no-op rollbacks', 'rolled_back', now(), now() FROM pair \
         RETURNING id";
    let id = infra.sql(sql)?.trim().to_string();
    anyhow::ensure!(id.len() == 36, "inserting the intervention returned `{id}`, not a UUID");
    Ok(id)
}

/// `jobs` rows and their `apalis.jobs` entries for `count` rollbacks of `intervention`, in one
/// statement (one transaction), shaped as `domain::enqueue` writes them.
fn enqueue_sql(intervention: &str, count: u64) -> String {
    format!(
        "WITH queued AS (\
           INSERT INTO jobs (id, kind, params) \
           SELECT gen_random_uuid(), 'intervention_rollback', \
             jsonb_build_object('intervention_id', '{intervention}'::text) \
           FROM generate_series(1, {count}) RETURNING id) \
         INSERT INTO apalis.jobs \
           (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata) \
         SELECT apalis.generate_ulid(), 'intervention', \
           convert_to(format('{{\"job_id\":\"%s\"}}', id), 'UTF8'), 'Pending', 0, 1, now(), 0, \
           ''::hstore \
         FROM queued"
    )
}

fn number(text: &str) -> anyhow::Result<u64> {
    text.trim().parse().with_context(|| format!("`{}` is not a count", text.trim()))
}

/// `(done, seconds)` from the [`SUMMARY`] row (`psql -A`: `|`-separated).
fn parse_summary(text: &str) -> anyhow::Result<(u64, f64)> {
    let (done, seconds) = text
        .trim()
        .split_once('|')
        .with_context(|| format!("`{}` is not `done|seconds`", text.trim()))?;
    let seconds = seconds.parse().with_context(|| format!("`{seconds}` is not seconds"))?;
    Ok((number(done)?, seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_row_is_read() {
        assert_eq!(parse_summary("3000|12.345678\n").ok(), Some((3000, 12.345678)));
        assert!(parse_summary("3000").is_err());
        assert!(parse_summary("x|1").is_err());
    }

    #[test]
    fn enqueueing_mirrors_domain_enqueue() {
        let sql = enqueue_sql("00000000-0000-0000-0000-000000000001", 500);
        assert!(sql.contains("generate_series(1, 500)"));
        assert!(sql.contains("'intervention', convert_to(format('{\"job_id\":\"%s\"}', id)"));
        assert!(sql.contains("'Pending', 0, 1, now(), 0"));
    }
}
