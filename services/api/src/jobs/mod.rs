//! Background jobs as API resources: accepting one (a `jobs` row and its queue entry in one
//! transaction, [`queries::enqueue`]) and reading its state. A finished job never changes, so
//! finished jobs are served from an in-process cache (`job_status`); pending and running ones
//! always come from Postgres.

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
    /// The result, once `done`.
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
        let finished = matches!(
            JobStatus::parse(&job.status),
            Some(JobStatus::Done) | Some(JobStatus::Failed)
        );
        if finished {
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

fn not_found(id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no job {id}"))
}
