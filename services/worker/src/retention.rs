//! Export retention: every export job leaves a file in `EXPORT_DIR`, so without a limit a client
//! allowed to start exports could fill the worker's disk. A pass removes the files of finished
//! exports that are older than `EXPORT_RETENTION_MAX_AGE_MS` (reason `age`), then, of the rest,
//! all but the newest `EXPORT_RETENTION_MAX_FILES` (reason `count`). It runs at start-up and every
//! `EXPORT_RETENTION_INTERVAL_MS` ([`ExportRetention::run_forever`]).
//!
//! What a pass never touches:
//! * a file being written: exports write to a hidden temporary file (`.<name>.tmp-…`) renamed into
//!   place when complete ([`crate::export_file`]); only final names `<job id>.csv|jsonl` are
//!   considered;
//! * the file of a job that is not finished (`pending` or `running`: it may be written again by a
//!   retry or a redelivery), nor counted towards the limit;
//! * anything else in the directory: a file whose name is not an export job's, or whose job row
//!   is unknown.
//!
//! An export's age is the time since its job finished, read from Postgres' clock (`now() -
//! finished_at`), so the worker's clock does not matter. Before its file is removed, a `done` job's
//! `result` gains `expired_at` (when) and `expired_reason` (`age` or `count`), keeping its other
//! keys (`path` then names a file that is gone): `GET /api/exports/{id}` says the file expired
//! instead of pointing at nothing. The row is marked first so a crash in between leaves a marked
//! row and a file the next pass removes, never an unmarked row without its file; marking is
//! idempotent (a second worker, or a second pass, keeps the first mark). A file another worker
//! removed meanwhile is not counted.
//!
//! Each pass records `orgraph.export.retention.removed` by reason and
//! `orgraph.export.retention.runs` / `.duration` by outcome; a pass that could not read the
//! directory or the job rows, or could not remove a file, is a `failure` (the next pass tries
//! again).

use crate::config::Retention;
use crate::context::Ctx;
use otel::catalogue::{Label, RetentionOutcome, RetentionReason};
use otel::metrics::RetentionMetrics;
use sqlx::PgPool;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;
use uuid::Uuid;

/// Why a retention pass failed.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// The export directory could not be listed.
    #[error("export retention: cannot list {}: {source}", dir.display())]
    List { dir: PathBuf, source: io::Error },
    /// The export jobs could not be read or marked.
    #[error("export retention: cannot {action} the export jobs: {source}")]
    Jobs { action: &'static str, source: sqlx::Error },
    /// Some files could not be removed (their rows are marked; the next pass tries again).
    #[error("export retention: {failed} file(s) not removed, e.g. {}: {source}", path.display())]
    Remove { failed: usize, path: PathBuf, source: io::Error },
    /// The blocking thread listing or removing files did not finish.
    #[error("export retention: file system thread: {0}")]
    Thread(#[from] tokio::task::JoinError),
}

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Files of exports older than the maximum age.
    pub age: u64,
    /// Files beyond the maximum count.
    pub count: u64,
}

/// A final export file: `<job id>.<csv|jsonl>`.
#[derive(Debug, Clone)]
struct ExportFile {
    job: Uuid,
    path: PathBuf,
}

/// The retention of one export directory.
#[derive(Clone)]
pub struct ExportRetention {
    pool: PgPool,
    dir: PathBuf,
    settings: Retention,
    metrics: RetentionMetrics,
}

impl ExportRetention {
    /// Retention of `dir`, whose exports' job rows are in `pool`, recording through `metrics`.
    pub fn new(pool: PgPool, dir: PathBuf, settings: Retention, metrics: RetentionMetrics) -> Self {
        ExportRetention { pool, dir, settings, metrics }
    }

    /// The worker's retention: its pool, `EXPORT_DIR`, settings and metrics.
    pub fn of(ctx: &Ctx) -> Self {
        ExportRetention::new(
            ctx.pool.clone(),
            ctx.config.export_dir.clone(),
            ctx.config.retention,
            ctx.retention.clone(),
        )
    }

    /// Runs a pass now and then every `EXPORT_RETENTION_INTERVAL_MS`, until the task is dropped.
    /// A failed pass is logged and recorded; the next one runs on schedule.
    pub async fn run_forever(self) {
        let mut ticks = tokio::time::interval(self.settings.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match self.run_pass().await {
                Ok(removed) if removed == Removed::default() => {}
                Ok(removed) => {
                    tracing::info!(age = removed.age, count = removed.count, "export files removed")
                }
                Err(e) => tracing::error!(error = %e, "export retention pass failed"),
            }
        }
    }

    /// One pass (see the module docs), recorded in the retention metrics.
    pub async fn run_pass(&self) -> Result<Removed, RetentionError> {
        let started = Instant::now();
        let result = self.pass().await;
        let outcome = match &result {
            Ok(_) => RetentionOutcome::Success,
            Err(_) => RetentionOutcome::Failure,
        };
        self.metrics.pass_finished(outcome, started.elapsed());
        result
    }

    async fn pass(&self) -> Result<Removed, RetentionError> {
        let dir = self.dir.clone();
        let files = tokio::task::spawn_blocking(move || list(&dir)).await??;
        if files.is_empty() {
            return Ok(Removed::default());
        }
        let ids: Vec<Uuid> = files.iter().map(|f| f.job).collect();
        // Finished exports with a file, newest first.
        let finished: Vec<(Uuid, f64)> = sqlx::query_as(
            "SELECT id, EXTRACT(EPOCH FROM now() - finished_at)::float8 AS age \
             FROM jobs \
             WHERE kind = 'export' AND id = ANY($1) AND status IN ('done', 'failed') \
               AND finished_at IS NOT NULL \
             ORDER BY finished_at DESC, id",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| RetentionError::Jobs { action: "read", source })?;

        let max_age = self.settings.max_age.as_secs_f64();
        let max_files = self.settings.max_files as usize;
        // `rank` 0 is the newest. Exports past the age are the oldest, so every export before
        // them is within the age, and the first `max_files` of those are kept.
        let mut due: HashMap<Uuid, RetentionReason> = HashMap::new();
        for (rank, (id, age)) in finished.into_iter().enumerate() {
            if age > max_age {
                due.insert(id, RetentionReason::Age);
            } else if rank >= max_files {
                due.insert(id, RetentionReason::Count);
            }
        }
        if due.is_empty() {
            return Ok(Removed::default());
        }
        for reason in RetentionReason::ALL {
            let ids: Vec<Uuid> =
                due.iter().filter(|(_, r)| *r == reason).map(|(id, _)| *id).collect();
            if !ids.is_empty() {
                self.mark_expired(&ids, *reason).await?;
            }
        }

        let doomed: Vec<(PathBuf, RetentionReason)> = files
            .into_iter()
            .filter_map(|f| due.get(&f.job).map(|reason| (f.path, *reason)))
            .collect();
        let (removed, failures) = tokio::task::spawn_blocking(move || remove(doomed)).await?;
        if removed.age > 0 {
            self.metrics.removed(RetentionReason::Age, removed.age);
        }
        if removed.count > 0 {
            self.metrics.removed(RetentionReason::Count, removed.count);
        }
        let failed = failures.len();
        for (path, e) in &failures {
            tracing::warn!(path = %path.display(), error = %e, "export file not removed");
        }
        match failures.into_iter().next() {
            None => Ok(removed),
            Some((path, source)) => Err(RetentionError::Remove { failed, path, source }),
        }
    }

    /// Adds `expired_at` and `expired_reason` to the results of the `done` exports `ids` that do
    /// not have them yet.
    async fn mark_expired(
        &self,
        ids: &[Uuid],
        reason: RetentionReason,
    ) -> Result<(), RetentionError> {
        sqlx::query(
            "UPDATE jobs \
             SET result = COALESCE(result, '{}'::jsonb) \
                          || jsonb_build_object('expired_at', now(), 'expired_reason', $2::text) \
             WHERE kind = 'export' AND status = 'done' AND id = ANY($1) \
               AND NOT (COALESCE(result, '{}'::jsonb) ? 'expired_at')",
        )
        .bind(ids)
        .bind(reason.as_str())
        .execute(&self.pool)
        .await
        .map_err(|source| RetentionError::Jobs { action: "mark", source })?;
        Ok(())
    }
}

/// The final export files in `dir` (none if it does not exist). Temporary files (hidden names),
/// directories, symbolic links and names that are not `<uuid>.<csv|jsonl>` are left out.
fn list(dir: &Path) -> Result<Vec<ExportFile>, RetentionError> {
    let error = |source| RetentionError::List { dir: dir.to_path_buf(), source };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(error(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(error)?;
        let Some(job) = entry.file_name().to_str().and_then(export_job) else {
            continue;
        };
        if entry.file_type().map_err(error)?.is_file() {
            files.push(ExportFile { job, path: entry.path() });
        }
    }
    Ok(files)
}

/// The job id of a final export file name `<uuid>.<csv|jsonl>` (the form the export job writes).
fn export_job(name: &str) -> Option<Uuid> {
    let (stem, ext) = name.rsplit_once('.')?;
    if !matches!(ext, "csv" | "jsonl") {
        return None;
    }
    let id = Uuid::parse_str(stem).ok()?;
    (id.to_string() == stem).then_some(id)
}

/// Removes the files; a file already gone is neither removed by us nor a failure.
fn remove(files: Vec<(PathBuf, RetentionReason)>) -> (Removed, Vec<(PathBuf, io::Error)>) {
    let mut removed = Removed::default();
    let mut failures = Vec::new();
    for (path, reason) in files {
        match std::fs::remove_file(&path) {
            Ok(()) => match reason {
                RetentionReason::Age => removed.age += 1,
                RetentionReason::Count => removed.count += 1,
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => failures.push((path, e)),
        }
    }
    (removed, failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_final_export_names_are_export_files() {
        let id = Uuid::new_v4();
        assert_eq!(export_job(&format!("{id}.csv")), Some(id));
        assert_eq!(export_job(&format!("{id}.jsonl")), Some(id));
        for name in [
            format!(".{id}.csv.tmp-0123456789abcdef"),
            format!("{id}.txt"),
            format!("{id}.csv.bak"),
            format!("{}.csv", id.simple()),
            format!("{}.csv", id.to_string().to_uppercase()),
            "notes.csv".to_string(),
            "csv".to_string(),
        ] {
            assert_eq!(export_job(&name), None, "{name}");
        }
    }

    #[test]
    fn listing_skips_temporaries_directories_and_foreign_names() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        std::fs::write(dir.path().join(format!("{a}.csv")), "x").unwrap();
        std::fs::write(dir.path().join(format!(".{b}.jsonl.tmp-abc")), "x").unwrap();
        std::fs::create_dir(dir.path().join(format!("{b}.jsonl"))).unwrap();
        std::fs::write(dir.path().join("readme.txt"), "x").unwrap();
        let files = list(dir.path()).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].job, a);
        assert!(list(&dir.path().join("missing")).unwrap().is_empty());
    }
}
