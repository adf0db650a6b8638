//! What every handler shares: the database, Redis, the caches and the metric helpers, built once
//! at start-up from the config and the global meter. Building them also starts the API's counters
//! at 0 for every label set it can produce, so its first events are visible (see
//! [`AppState::new`]).

use crate::config::Config;
use crate::db::Db;
use crate::graph::stats::StatsCache;
use crate::jobs::JobCache;
use crate::redis::Redis;
use domain::JobKind;
use otel::catalogue::{InterventionKind, Label};
use otel::metrics::{
    BreakerMetrics, CacheMetrics, GraphMetrics, InterventionMetrics, QueueMetrics,
};
use std::collections::BTreeSet;

/// The handlers' state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// Redis (L2 cache).
    pub redis: Redis,
    /// Graph statistics, cached.
    pub stats: StatsCache,
    /// Finished jobs, cached in process.
    pub jobs: JobCache,
    /// Node/edge counts and graph update durations.
    pub graph_metrics: GraphMetrics,
    /// Jobs enqueued.
    pub queue_metrics: QueueMetrics,
    /// Interventions proposed.
    pub intervention_metrics: InterventionMetrics,
    /// How much work may wait at once.
    pub caps: Caps,
}

/// The caps on work waiting for a worker or a human (`API_MAX_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Interventions in state `proposed` at most.
    pub open_proposals: u32,
    /// Pending jobs of one kind at most.
    pub queued_jobs: u32,
}

impl AppState {
    /// Builds the state on the global meter (call after `otel::init`). Connects lazily: the API
    /// starts even while Postgres or Redis are down, and readiness says so.
    ///
    /// Every counter the API records starts at 0 for the label sets the API really has, 18
    /// series in all, so a first event is a visible 0 → 1 step and no panel reads "No data":
    /// * `db.client.connection.timeouts`: its 2 pools (`postgres`, `redis`), by [`Db::new`] and
    ///   [`Redis::new`];
    /// * `orgraph.circuit_breaker.calls`: its 2 breakers × 3 outcomes = 6, by the breakers;
    /// * `orgraph.cache.requests`: its 3 caches (`l1`/`graph_stats`, `l2`/`graph_stats`,
    ///   `l1`/`job_status`) × hit/miss = 6, by [`StatsCache::new`] and [`JobCache::new`];
    /// * `messaging.client.sent.messages`: the 3 queues it sends jobs to, here;
    /// * `orgraph.intervention.proposals`: the 1 intervention kind it accepts, here.
    ///
    /// Never `l2`/`job_status` or `graph_nodes` (no such cache), nor the worker's counters.
    pub fn new(config: &Config) -> anyhow::Result<AppState> {
        let meter = otel::meter();
        let breakers = BreakerMetrics::new(&meter);
        let cache_metrics = CacheMetrics::new(&meter);
        let db = Db::new(config, &breakers)?;
        let redis = Redis::new(config, &breakers, cache_metrics.clone())?;
        let stats = StatsCache::new(
            redis.clone(),
            cache_metrics.clone(),
            config.l1_max_bytes,
            config.l1_ttl,
            config.l2_ttl,
        );
        let queue_metrics = QueueMetrics::new(&meter);
        let queues: BTreeSet<_> = JobKind::ALL.iter().map(|k| k.queue()).collect();
        for queue in queues {
            queue_metrics.start_enqueued_at_zero(queue);
        }
        let intervention_metrics = InterventionMetrics::new(&meter);
        intervention_metrics.start_proposals_at_zero(InterventionKind::Reassign);
        Ok(AppState {
            db,
            redis,
            stats,
            jobs: JobCache::new(cache_metrics, config.l1_max_bytes),
            graph_metrics: GraphMetrics::new(&meter),
            queue_metrics,
            intervention_metrics,
            caps: Caps {
                open_proposals: config.max_open_proposals,
                queued_jobs: config.max_queued_jobs,
            },
        })
    }
}
