//! Graph statistics through two cache layers: the in-process L1 (short TTL, per instance), then
//! Redis as L2 (shared by instances), then Postgres. A graph change through the API drops both
//! entries. With Redis down the L2 steps are skipped (its breaker answers at once), so stats still
//! come from L1 and Postgres.
//!
//! A reader that computed the stats before a change committed must not store them after the
//! change dropped the entries: every instance would serve them for the L2 TTL. So a change bumps a
//! generation (in Redis for L2, in process for L1) as it drops them, and a reader stores only if
//! the generation it saw before computing is still current (in Redis, compare-and-set). Another
//! instance's L1 may serve the old stats for its short TTL. The worker's interventions change the
//! graph without dropping the entries (the worker has no Redis): their change shows once the
//! entries expire.

use super::model::GraphStats;
use super::queries;
use crate::cache::L1Cache;
use crate::db::Db;
use crate::error::ApiError;
use crate::redis::Redis;
use otel::catalogue::{CacheLayer, CacheName};
use otel::metrics::CacheMetrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

// Both keys share one hash tag, so the scripts that touch both also work on a Redis cluster.
const KEY: &str = "orgraph:{graph-stats}:v1";
/// Bumped by every graph change (see the module docs).
const GENERATION: &str = "orgraph:{graph-stats}:generation";

#[derive(Clone)]
pub struct StatsCache {
    l1: L1Cache<Arc<GraphStats>>,
    redis: Redis,
    l2_ttl: Duration,
    /// This instance's count of graph changes, for L1.
    generation: Arc<AtomicU64>,
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
        StatsCache { l1, redis, l2_ttl, generation: Arc::default() }
    }

    /// The current stats: L1, else L2, else computed (and stored in both).
    pub async fn get(&self, db: &Db) -> Result<Arc<GraphStats>, ApiError> {
        if let Some(stats) = self.l1.get(KEY) {
            return Ok(stats);
        }
        let local = self.generation.load(Ordering::Acquire);
        if let Some(bytes) = self.redis.get(CacheName::GraphStats, KEY).await {
            match serde_json::from_slice::<GraphStats>(&bytes) {
                Ok(stats) => {
                    let stats = Arc::new(stats);
                    self.keep_in_l1(local, &stats);
                    return Ok(stats);
                }
                // An entry of another shape (an older release): recompute and overwrite.
                Err(e) => tracing::warn!(error = %e, "undecodable L2 stats entry"),
            }
        }
        let shared = self.redis.counter(GENERATION).await;
        let stats = Arc::new(db.run(async |c| queries::stats(c).await).await?);
        if let (Some(generation), Ok(bytes)) = (shared, serde_json::to_vec(&*stats)) {
            self.redis.set_if_counter(KEY, &bytes, self.l2_ttl, GENERATION, generation).await;
        }
        self.keep_in_l1(local, &stats);
        Ok(stats)
    }

    /// Keeps `stats` in L1 unless the graph changed since this reader began (`local`): stored,
    /// then checked, so a change between the two still drops it.
    fn keep_in_l1(&self, local: u64, stats: &Arc<GraphStats>) {
        self.l1.insert(KEY.to_string(), stats.clone());
        if self.generation.load(Ordering::Acquire) != local {
            self.l1.invalidate(KEY);
        }
    }

    /// The graph changed: bump the generations and drop both layers' entries. Redis first: a
    /// reader of this instance that still finds the old L2 entry then began before the local
    /// bump, and its L1 copy is dropped by it.
    pub async fn invalidate(&self) {
        self.redis.bump_and_delete(KEY, GENERATION).await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.l1.invalidate(KEY);
    }
}
