//! Graph statistics through two cache layers: the in-process L1 (short TTL, per instance), then
//! Redis as L2 (shared by instances), then Postgres. A graph change drops both entries. With Redis
//! down the L2 steps are skipped (its breaker answers at once), so stats still come from L1 and
//! Postgres.

use super::model::GraphStats;
use super::queries;
use crate::db::Db;
use crate::error::ApiError;
use crate::redis::Redis;
use otel::layers::cache::L1Cache;
use otel::metrics::CacheMetrics;
use otel::metrics::labels::{CacheLayer, CacheName};
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "orgraph:graph:stats:v1";

/// The stats cache.
#[derive(Clone)]
pub struct StatsCache {
    l1: L1Cache<Arc<GraphStats>>,
    redis: Redis,
    l2_ttl: Duration,
}

impl StatsCache {
    /// A cache of at most `l1_max_bytes` in process, `l1_ttl` there and `l2_ttl` in Redis. The
    /// look-up counts of both layers start at 0.
    pub fn new(
        redis: Redis,
        metrics: CacheMetrics,
        l1_max_bytes: u64,
        l1_ttl: Duration,
        l2_ttl: Duration,
    ) -> StatsCache {
        metrics.start_at_zero(CacheLayer::L2, CacheName::GraphStats);
        let l1 = L1Cache::new(
            CacheName::GraphStats,
            l1_max_bytes,
            l1_ttl,
            |_: &Arc<GraphStats>| std::mem::size_of::<GraphStats>() as u32,
            metrics,
        );
        StatsCache { l1, redis, l2_ttl }
    }

    /// The current stats: L1, else L2, else computed (and stored in both).
    pub async fn get(&self, db: &Db) -> Result<Arc<GraphStats>, ApiError> {
        if let Some(stats) = self.l1.get(KEY) {
            return Ok(stats);
        }
        if let Some(bytes) = self.redis.get(CacheName::GraphStats, KEY).await {
            match serde_json::from_slice::<GraphStats>(&bytes) {
                Ok(stats) => {
                    let stats = Arc::new(stats);
                    self.l1.insert(KEY.to_string(), stats.clone());
                    return Ok(stats);
                }
                // An entry of another shape (an older release): recompute and overwrite.
                Err(e) => tracing::warn!(error = %e, "undecodable L2 stats entry"),
            }
        }
        let stats = Arc::new(db.run(async |c| queries::stats(c).await).await?);
        if let Ok(bytes) = serde_json::to_vec(&*stats) {
            self.redis.set(KEY, &bytes, self.l2_ttl).await;
        }
        self.l1.insert(KEY.to_string(), stats.clone());
        Ok(stats)
    }

    /// The graph changed: drop both layers' entries.
    pub async fn invalidate(&self) {
        self.l1.invalidate(KEY);
        self.redis.delete(KEY).await;
    }
}
