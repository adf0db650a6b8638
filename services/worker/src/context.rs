//! What every job shares: the database pool, the settings, and the metric helpers, built once on
//! the global meter at start-up (which also reports the settings alerts compare against, such as
//! `EXPORT_SLOW_MS`).

use crate::config::Config;
use domain::JobKind;
use otel::catalogue;
use otel::catalogue::{ExportFormat, ExportKind, ExportStatus, InterventionKind, Label, Queue};
use otel::metrics::{
    ExportMetrics, GraphMetrics, InterventionMetrics, QueueMetrics, RetentionMetrics,
    WorkerMetrics, start_counter_at_zero,
};
use sqlx::PgPool;
use std::sync::Arc;

/// The jobs' shared context; cheap to clone.
#[derive(Clone)]
pub struct Ctx {
    /// Postgres (the graph, the job rows, the queue).
    pub pool: PgPool,
    pub config: Arc<Config>,
    /// Active tasks, finished attempts and their durations.
    pub worker: WorkerMetrics,
    /// Queue depth (from the backend) and jobs taken.
    pub queues: QueueMetrics,
    /// Exports by kind, format and status, and the slow-export threshold.
    pub exports: ExportMetrics,
    /// Export files removed by retention, and its passes (see [`crate::retention`]).
    pub retention: RetentionMetrics,
    /// Intervention executions and rollbacks.
    pub interventions: InterventionMetrics,
    /// Graph update durations.
    pub graph: GraphMetrics,
    /// Our jobs running now, by queue (see [`crate::stall`]).
    pub in_flight: Arc<crate::stall::InFlight>,
}

impl Ctx {
    /// The context on the global meter (call after `otel::init`); reports `EXPORT_SLOW_MS` as
    /// `orgraph.export.slow_threshold`.
    pub fn new(pool: PgPool, config: Config) -> Ctx {
        let meter = otel::meter();
        let exports = ExportMetrics::new(&meter);
        exports.set_slow_threshold(config.export_slow);
        let ctx = Ctx {
            pool,
            config: Arc::new(config),
            worker: WorkerMetrics::new(&meter),
            queues: QueueMetrics::new(&meter),
            exports,
            retention: RetentionMetrics::new(&meter),
            interventions: InterventionMetrics::new(&meter),
            graph: GraphMetrics::new(&meter),
            in_flight: Arc::default(),
        };
        ctx.start_counters_at_zero();
        ctx
    }

    /// Starts every counter the worker records at 0 for the label sets the worker really has, 37
    /// series in all, so a first event (the first timeout, the first failed intervention) is a
    /// visible 0 → 1 step and no panel reads "No data":
    /// * `messaging.client.consumed.messages`: the 3 queues it takes jobs from;
    /// * `orgraph.task.completed`: its 4 task types × 5 statuses = 20;
    /// * `orgraph.export.requests`: 1 kind × 2 formats × 3 statuses = 6;
    /// * `orgraph.intervention.executions` and `.rollbacks`: 1 kind × 2 outcomes each = 4;
    /// * `orgraph.export.retention.removed`: 2 reasons; `orgraph.export.retention.runs`: 2
    ///   outcomes.
    ///
    /// Never the API's counters (jobs sent, proposals, caches, breakers, pool timeouts).
    fn start_counters_at_zero(&self) {
        for queue in Queue::ALL {
            self.queues.start_dequeued_at_zero(*queue);
        }
        for &kind in JobKind::ALL {
            self.worker.start_at_zero(kind);
        }
        self.retention.start_at_zero();
        for kind in InterventionKind::ALL {
            self.interventions.start_executions_at_zero(*kind);
        }
        let mut exports = Vec::new();
        for kind in ExportKind::ALL {
            for format in ExportFormat::ALL {
                for status in ExportStatus::ALL {
                    exports.push([kind.key_value(), format.key_value(), status.key_value()]);
                }
            }
        }
        let sets = exports.iter().map(|set| &set[..]);
        start_counter_at_zero(&otel::meter(), &catalogue::EXPORT_REQUESTS, sets);
    }
}
