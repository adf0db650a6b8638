//! What every job shares: the database pool, the settings, and the metric helpers, built once on
//! the global meter at start-up.

use crate::config::Config;
use otel::metrics::{
    ExportMetrics, GraphMetrics, InterventionMetrics, QueueMetrics, WorkerMetrics,
};
use sqlx::PgPool;
use std::sync::Arc;

/// The jobs' shared context; cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    /// Postgres (the graph, the job rows, the queue).
    pub pool: PgPool,
    /// Settings.
    pub config: Arc<Config>,
    /// Active tasks, finished attempts and their durations.
    pub worker: WorkerMetrics,
    /// Queue depth (from the backend) and jobs taken.
    pub queues: QueueMetrics,
    /// Exports by kind, format and status.
    pub exports: ExportMetrics,
    /// Intervention executions and rollbacks.
    pub interventions: InterventionMetrics,
    /// Graph update durations.
    pub graph: GraphMetrics,
}

impl Ctx {
    /// The context on the global meter (call after `otel::init`).
    pub fn new(pool: PgPool, config: Config) -> Ctx {
        let meter = otel::meter();
        Ctx {
            pool,
            config: Arc::new(config),
            worker: WorkerMetrics::new(&meter),
            queues: QueueMetrics::new(&meter),
            exports: ExportMetrics::new(&meter),
            interventions: InterventionMetrics::new(&meter),
            graph: GraphMetrics::new(&meter),
        }
    }
}
