//! The export job: employee metrics (degree, team, the latest analysis' scores) written as CSV or
//! JSON Lines to `EXPORT_DIR/<job id>.<ext>`, atomically (temp file, then rename), on a blocking
//! thread. A retried export rewrites the same file, so one export is one file. Records the
//! export's outcome, duration and size once, for the attempt that ends it, also when the runner
//! cancels it at `TIMEOUT_EXPORT_MS` (as `timeout`): a slow export must show in
//! `orgraph.export.duration` however it ends. An attempt the runner retries shows only in
//! `orgraph.task.*` (as `retry`). CSV text cells that a spreadsheet would run as a formula are
//! neutralised ([`crate::export_file::neutralise_formula`]); the files are removed again by the
//! export retention ([`crate::retention`]), which marks the job's result as expired.

use crate::context::Ctx;
use crate::export_file::{EmployeeRow, ExportFileError, Format, write_export_until};
use crate::runner::{JobError, JobRow, joined};
use otel::catalogue::{ExportFormat, ExportKind, Label, Queue};
use otel::metrics::ExportMetrics;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Runs an export job.
pub async fn run(ctx: Ctx, row: JobRow) -> Result<Value, JobError> {
    let asked = row.params.get("format").and_then(Value::as_str);
    let Some(label) = asked.and_then(ExportFormat::parse) else {
        return Err(JobError::Invalid(format!("unknown export format {asked:?}")));
    };
    let format = match label {
        ExportFormat::Csv => Format::Csv,
        ExportFormat::Jsonl => Format::Jsonl,
    };
    let attempt = Attempt::start(&ctx.exports, ExportKind::EmployeeMetrics, label);
    let result = export(&ctx, &row, format).await;
    match &result {
        Ok((_, bytes)) => attempt.succeeded(*bytes),
        // The runner tries again: this attempt is no outcome of the export (it shows in
        // `orgraph.task.completed` as `retry`).
        Err(e) if row.retries_after(e) => attempt.retried(),
        Err(_) => attempt.failed(),
    }
    result.map(|(value, _)| value)
}

/// One export attempt's metrics. The runner cancels an attempt at `TIMEOUT_EXPORT_MS` by dropping
/// its future, so nothing after the `await` runs; the attempt then records itself when dropped:
/// `timeout` with the time it ran (`failure` if the drop is a panic unwinding), unless it already
/// recorded `success` or `failure`.
struct Attempt {
    metrics: ExportMetrics,
    kind: ExportKind,
    format: ExportFormat,
    started: Instant,
    recorded: bool,
}

impl Attempt {
    fn start(metrics: &ExportMetrics, kind: ExportKind, format: ExportFormat) -> Attempt {
        Attempt { metrics: metrics.clone(), kind, format, started: Instant::now(), recorded: false }
    }

    fn succeeded(mut self, bytes: u64) {
        self.recorded = true;
        self.metrics.succeeded(self.kind, self.format, self.started.elapsed(), bytes);
    }

    fn retried(mut self) {
        self.recorded = true;
    }

    fn failed(mut self) {
        self.recorded = true;
        self.metrics.failed(self.kind, self.format, self.started.elapsed());
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        let took = self.started.elapsed();
        if std::thread::panicking() {
            self.metrics.failed(self.kind, self.format, took);
        } else {
            self.metrics.timed_out(self.kind, self.format, took);
        }
    }
}

/// How long after the job's own timeout Postgres cancels the export's query itself. Dropping the
/// timed-out future does not stop a query the server is still running (e.g. waiting on a lock):
/// its connection stays busy, and a run of such exports exhausts the pool, wedging every queue and
/// the queue statistics. The server-side timeout frees the connection; the margin lets the
/// runner's timeout fire first, so the attempt ends as `timeout`, not as a retried query error.
const QUERY_TIMEOUT_MARGIN: Duration = Duration::from_secs(1);

async fn export(ctx: &Ctx, row: &JobRow, format: Format) -> Result<(Value, u64), JobError> {
    let limit = ctx.config.timeout_of(Queue::Export) + QUERY_TIMEOUT_MARGIN;
    let mut tx = ctx.pool.begin().await?;
    // `SET LOCAL statement_timeout`, with the value bound.
    sqlx::query("SELECT set_config('statement_timeout', $1, true)")
        .bind(limit.as_millis().to_string())
        .execute(&mut *tx)
        .await?;
    let rows: Vec<EmployeeRow> = sqlx::query_as(
        "WITH latest AS (SELECT id FROM jobs WHERE kind = 'analysis' AND status = 'done' \
                         ORDER BY finished_at DESC LIMIT 1), \
              ends AS (SELECT source_id AS id FROM relations UNION ALL SELECT target_id FROM relations), \
              deg AS (SELECT id, count(*) AS d FROM ends GROUP BY id) \
         SELECT e.id, e.name, e.team, e.title, COALESCE(deg.d, 0)::int8 AS degree, s.pagerank, s.betweenness \
         FROM employees e \
         LEFT JOIN deg ON deg.id = e.id \
         LEFT JOIN influence_scores s ON s.employee_id = e.id AND s.job_id = (SELECT id FROM latest) \
         ORDER BY e.id",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let dir = ctx.config.export_dir.clone();
    let stem = row.id.to_string();
    let cancelled = row.cancelled.clone();
    let written = tokio::task::spawn_blocking(move || {
        write_export_until(&dir, &stem, format, rows, &cancelled)
    });
    let written = joined(written.await, "export")?.map_err(|e| match e {
        ExportFileError::Io { .. } => JobError::Transient(e.into()),
        other => JobError::Invalid(other.to_string()),
    })?;
    let value = json!({
        "path": written.path.display().to_string(),
        "bytes": written.bytes,
        "rows": written.rows,
        "format": format.extension(),
    });
    Ok((value, written.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use otel::metrics::testing::{Points, Recorder};
    use std::panic::AssertUnwindSafe;
    use std::time::Duration;

    fn status(points: &Points, status: &str) -> (f64, u64, f64) {
        let labels = [("export.format", "csv"), ("export.status", status)];
        let requests = points
            .0
            .iter()
            .filter(|p| p.name == "orgraph.export.requests")
            .filter(|p| {
                labels.iter().all(|(k, v)| p.attributes.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|p| p.value)
            .sum();
        let count = points.count("orgraph.export.duration", &labels);
        let sum = points.sum("orgraph.export.duration", &labels);
        (requests, count, sum)
    }

    #[tokio::test]
    async fn an_attempt_cancelled_by_the_timeout_records_timeout_with_its_duration() {
        let recorder = Recorder::new();
        let exports = ExportMetrics::new(recorder.meter());
        let work = async {
            let _attempt = Attempt::start(&exports, ExportKind::EmployeeMetrics, ExportFormat::Csv);
            std::future::pending::<()>().await;
        };
        let started = Instant::now();
        assert!(tokio::time::timeout(Duration::from_millis(50), work).await.is_err());
        let waited = started.elapsed().as_secs_f64();
        let points = recorder.collect();
        points.assert_conforms();
        let (requests, count, sum) = status(&points, "timeout");
        assert_eq!((requests, count), (1.0, 1));
        assert!((0.045..=waited).contains(&sum), "recorded {sum}s, cancelled after {waited}s");
        assert_eq!(status(&points, "success").1 + status(&points, "failure").1, 0);
    }

    #[test]
    fn a_finished_attempt_records_its_outcome_once_and_no_timeout() {
        let recorder = Recorder::new();
        let exports = ExportMetrics::new(recorder.meter());
        Attempt::start(&exports, ExportKind::EmployeeMetrics, ExportFormat::Csv).succeeded(10);
        Attempt::start(&exports, ExportKind::EmployeeMetrics, ExportFormat::Csv).failed();
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!(status(&points, "success").1, 1);
        assert_eq!(status(&points, "failure").1, 1);
        assert_eq!(status(&points, "timeout").1, 0);
    }

    #[test]
    fn an_attempt_the_runner_retries_records_no_outcome() {
        let recorder = Recorder::new();
        let exports = ExportMetrics::new(recorder.meter());
        Attempt::start(&exports, ExportKind::EmployeeMetrics, ExportFormat::Csv).retried();
        Attempt::start(&exports, ExportKind::EmployeeMetrics, ExportFormat::Csv).succeeded(10);
        let points = recorder.collect();
        assert_eq!(status(&points, "success").0, 1.0);
        assert_eq!(status(&points, "failure").0 + status(&points, "timeout").0, 0.0);
    }

    #[tokio::test]
    async fn a_panicking_attempt_counts_as_failure_not_timeout() {
        let recorder = Recorder::new();
        let exports = ExportMetrics::new(recorder.meter());
        let work = async {
            let _attempt = Attempt::start(&exports, ExportKind::EmployeeMetrics, ExportFormat::Csv);
            tokio::task::yield_now().await;
            panic!("export bug");
        };
        assert!(AssertUnwindSafe(work).catch_unwind().await.is_err());
        let points = recorder.collect();
        assert_eq!(status(&points, "failure").1, 1);
        assert_eq!(status(&points, "timeout").1, 0);
    }
}
