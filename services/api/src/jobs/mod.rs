//! Background jobs as API resources: accepting one (a `jobs` row and its queue entry in one
//! transaction, [`queries::enqueue`]) and reading its state. A finished job never changes, so
//! finished jobs are served from an in-process cache (`job_status`); pending and running ones
//! always come from Postgres. The one exception is a done export whose file is still there: the
//! worker's export retention removes the file later and then adds `expired_at` and
//! `expired_reason` to the job's result, so such a job is read from Postgres each time until it
//! has expired (and is cached from then on).

pub mod queries;

use crate::cache::L1Cache;
use crate::db::Db;
use crate::error::ApiError;
use chrono::{DateTime, Utc};
use domain::{JobKind, JobStatus};
use otel::catalogue::{CacheName, Label};
use otel::metrics::CacheMetrics;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// The job id.
    pub id: Uuid,
    /// `analysis`, `export`, `intervention_execute` or `intervention_rollback`.
    pub kind: String,
    /// `pending`, `running`, `done` or `failed`.
    pub status: String,
    /// What was asked.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// The result, once `done`. An export's result has `path`, `bytes`, `rows` and `format`;
    /// once the worker's retention removed its file (`EXPORT_RETENTION_MAX_AGE_MS`,
    /// `EXPORT_RETENTION_MAX_FILES`) it also has `expired_at` (a timestamp) and `expired_reason`
    /// (`age` or `count`), and `path` names a file that is gone.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Why it failed, once `failed`.
    pub error: Option<String>,
    /// Attempts started so far.
    pub attempts: i32,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
    /// When its last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// What accepting a job returns (202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// The job id.
    pub id: Uuid,
    /// Always `pending`.
    pub status: String,
    /// Where to follow it.
    pub location: String,
}

/// Finished jobs, kept in process.
#[derive(Clone)]
pub struct JobCache {
    l1: L1Cache<Arc<JobView>>,
}

impl JobCache {
    /// A cache bounded by `max_bytes`; entries live 10 minutes.
    pub fn new(metrics: CacheMetrics, max_bytes: u64) -> JobCache {
        let l1 = L1Cache::new(
            CacheName::JobStatus,
            max_bytes,
            Duration::from_secs(600),
            |job: &Arc<JobView>| {
                let json = job.result.as_ref().map_or(0, |r| r.to_string().len());
                (std::mem::size_of::<JobView>() + json).min(u32::MAX as usize) as u32
            },
            metrics,
        );
        JobCache { l1 }
    }

    /// The job `id` of one of `kinds`: from the cache if finished, else from Postgres.
    pub async fn get(&self, db: &Db, id: Uuid, kinds: &[JobKind]) -> Result<JobView, ApiError> {
        let key = id.to_string();
        if let Some(job) = self.l1.get(&key) {
            if kinds.iter().any(|k| k.as_str() == job.kind) {
                return Ok((*job).clone());
            }
            return Err(not_found(id));
        }
        let job = db
            .run(async |c| queries::fetch(c, id, kinds).await)
            .await?
            .ok_or_else(|| not_found(id))?;
        if is_final(&job) {
            self.l1.insert(key, Arc::new(job.clone()));
        }
        Ok(job)
    }
}

/// How long a client refused by a full job queue is asked to wait: the worker drains a queue in
/// seconds to minutes, and asking again sooner only adds load.
pub const QUEUE_RETRY_AFTER: Duration = Duration::from_secs(5);

impl From<queries::QueueFull> for ApiError {
    /// 429 with `Retry-After`: the queue drains, the same request will be taken later.
    fn from(full: queries::QueueFull) -> ApiError {
        let kind = full.kind.as_str();
        ApiError::TooManyRequests {
            detail: format!(
                "the {kind} job queue is full: {} {kind} jobs are pending and at most {} may be \
                 (API_MAX_QUEUED_JOBS)",
                full.pending, full.cap
            ),
            retry_after: QUEUE_RETRY_AFTER,
        }
    }
}

/// Whether `job` will never change again: finished, and not a done export whose file the
/// retention has yet to remove (and mark in its result).
fn is_final(job: &JobView) -> bool {
    match JobStatus::parse(&job.status) {
        Some(JobStatus::Failed) => true,
        Some(JobStatus::Done) => {
            job.kind != JobKind::Export.as_str()
                || job.result.as_ref().is_some_and(|r| r.get("expired_at").is_some())
        }
        _ => false,
    }
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no job {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(kind: JobKind, status: &str, result: Option<serde_json::Value>) -> JobView {
        JobView {
            id: Uuid::nil(),
            kind: kind.as_str().to_string(),
            status: status.to_string(),
            params: json!({}),
            result,
            error: None,
            attempts: 1,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn a_done_export_is_final_only_once_its_file_expired() {
        let file = json!({"path": "exports/x.csv", "bytes": 1, "rows": 0, "format": "csv"});
        assert!(!is_final(&job(JobKind::Export, "done", Some(file.clone()))));
        let mut expired = file;
        expired["expired_at"] = json!("2026-01-01T00:00:00Z");
        expired["expired_reason"] = json!("age");
        assert!(is_final(&job(JobKind::Export, "done", Some(expired))));
        assert!(is_final(&job(JobKind::Export, "failed", None)));
        assert!(is_final(&job(JobKind::Analysis, "done", Some(json!({})))));
        assert!(!is_final(&job(JobKind::Analysis, "running", None)));
        assert!(!is_final(&job(JobKind::Export, "pending", None)));
    }
}
