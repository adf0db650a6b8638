//! The export job: employee metrics (degree, team, the latest analysis' scores) written as CSV or
//! JSON Lines to `EXPORT_DIR/<job id>.<ext>`, atomically (temp file, then rename), on a blocking
//! thread. A retried export rewrites the same file, so one export is one file. Records the
//! export's outcome, duration and size.

use crate::context::Ctx;
use crate::export_file::{EmployeeRow, ExportFileError, Format, write_export};
use crate::runner::{JobError, JobRow};
use otel::metrics::labels::{ExportFormat, ExportKind};
use serde_json::{Value, json};
use std::time::Instant;

/// Runs an export job.
pub async fn run(ctx: Ctx, row: JobRow) -> Result<Value, JobError> {
    let (format, label) = match row.params.get("format").and_then(Value::as_str) {
        Some("csv") => (Format::Csv, ExportFormat::Csv),
        Some("jsonl") => (Format::Jsonl, ExportFormat::Jsonl),
        other => return Err(JobError::Invalid(format!("unknown export format {other:?}"))),
    };
    let started = Instant::now();
    let result = export(&ctx, &row, format).await;
    let kind = ExportKind::EmployeeMetrics;
    match &result {
        Ok((_, bytes)) => ctx.exports.succeeded(kind, label, started.elapsed(), *bytes),
        Err(_) => ctx.exports.failed(kind, label, started.elapsed()),
    }
    result.map(|(value, _)| value)
}

async fn export(ctx: &Ctx, row: &JobRow, format: Format) -> Result<(Value, u64), JobError> {
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
    .fetch_all(&ctx.pool)
    .await?;
    let dir = ctx.config.export_dir.clone();
    let stem = row.id.to_string();
    let written = tokio::task::spawn_blocking(move || write_export(&dir, &stem, format, rows))
        .await
        .map_err(|e| JobError::Transient(anyhow::anyhow!("export thread: {e}")))?
        .map_err(|e| match e {
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
