//! What every handler shares: the database, Redis, the caches and the metric helpers, built once
//! at start-up from the config and the global meter.

use crate::config::Config;
use crate::db::Db;
use crate::graph::stats::StatsCache;
use crate::jobs::JobCache;
use crate::redis::Redis;
use otel::metrics::{
    BreakerMetrics, CacheMetrics, GraphMetrics, InterventionMetrics, QueueMetrics,
};

/// The handlers' state; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Postgres.
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
}

impl AppState {
    /// Builds the state on the global meter (call after `otel::init`). Connects lazily: the API
    /// starts even while Postgres or Redis are down, and readiness says so.
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
        Ok(AppState {
            db,
            redis,
            stats,
            jobs: JobCache::new(cache_metrics, config.l1_max_bytes),
            graph_metrics: GraphMetrics::new(&meter),
            queue_metrics: QueueMetrics::new(&meter),
            intervention_metrics: InterventionMetrics::new(&meter),
        })
    }
}
