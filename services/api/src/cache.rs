//! The API's in-process, first-level (L1) cache in front of Redis (L2) and Postgres, instrumented.
//!
//! Every in-process cache of the API (graph stats, finished jobs) is one of these, so each is
//! bounded the same way and shows up the same way in metrics: memory is capped in bytes (a weigher plus `moka`'s size-aware eviction), entries
//! expire after a time-to-live, every look-up counts as a hit or miss on layer `l1`, and the size
//! in items and bytes is reported; a look-up is also an event on the current span (when traced). Keys are the caller's strings and are never used as labels.
//!
//! Size reporting: moka's counts are eventually consistent, so writes (`insert`, `invalidate`,
//! `invalidate_all`) first run moka's pending maintenance, then report the exact size. Writes
//! follow a miss that went to Redis or Postgres, so this costs nothing noticeable; `get`, the hot
//! path, never does it. Entries that expire while nobody writes are reflected at the next write,
//! or whenever the owner calls [`L1Cache::report_size`] (e.g. from a periodic task).

use moka::sync::Cache;
use otel::catalogue::{CacheLayer, CacheName, CacheResult};
use otel::metrics::CacheMetrics;
use std::time::Duration;

/// Bytes counted per entry on top of its key and value, a rough stand-in for the cache's own
/// bookkeeping. It also keeps the byte bound an entry-count bound: no entry weighs nothing.
pub const ENTRY_OVERHEAD_BYTES: u32 = 64;

/// A byte-bounded, time-limited, instrumented in-process cache of `V` by string key.
/// Cheap to clone: clones share the entries.
#[derive(Clone)]
pub struct L1Cache<V: Clone + Send + Sync + 'static> {
    name: CacheName,
    entries: Cache<String, V>,
    metrics: CacheMetrics,
}

impl<V: Clone + Send + Sync + 'static> L1Cache<V> {
    /// A cache named `name` holding at most about `max_bytes` bytes, each entry for at most
    /// `ttl` after it was inserted. `weigh` estimates a value's size in bytes; an entry weighs
    /// its key's length plus `weigh(value)` plus [`ENTRY_OVERHEAD_BYTES`] (saturating at
    /// `u32::MAX`). An entry heavier than `max_bytes` is never kept. Reports the (empty) size at
    /// once and starts its hit and miss counts at 0, so its series exist from the start.
    pub fn new(
        name: CacheName,
        max_bytes: u64,
        ttl: Duration,
        weigh: impl Fn(&V) -> u32 + Send + Sync + 'static,
        metrics: CacheMetrics,
    ) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .time_to_live(ttl)
            .weigher(move |key: &String, value: &V| {
                let key_len = u32::try_from(key.len()).unwrap_or(u32::MAX);
                key_len.saturating_add(weigh(value)).saturating_add(ENTRY_OVERHEAD_BYTES)
            })
            .build();
        metrics.start_at_zero(CacheLayer::L1, name);
        let cache = L1Cache { name, entries, metrics };
        cache.report_size();
        cache
    }

    /// Which cache this is.
    pub fn name(&self) -> CacheName {
        self.name
    }

    /// The live value for `key`, if any; records a hit or a miss on layer `l1`, in the metrics
    /// and as an event on the current span.
    pub fn get(&self, key: &str) -> Option<V> {
        let found = self.entries.get(key);
        let result = if found.is_some() { CacheResult::Hit } else { CacheResult::Miss };
        self.metrics.lookup(CacheLayer::L1, self.name, result);
        otel::trace::client::cache_lookup(CacheLayer::L1, self.name, result);
        found
    }

    /// Stores `value` under `key`, replacing any previous value, then reports the size.
    pub fn insert(&self, key: String, value: V) {
        self.entries.insert(key, value);
        self.report_size();
    }

    /// Drops the entry for `key`, if any, then reports the size.
    pub fn invalidate(&self, key: &str) {
        self.entries.invalidate(key);
        self.report_size();
    }

    /// Drops every entry, then reports the size.
    pub fn invalidate_all(&self) {
        self.entries.invalidate_all();
        self.report_size();
    }

    /// Runs moka's pending maintenance (applying writes, expiring and evicting entries) and
    /// reports the resulting number of entries and weighted size in bytes. Not for the hot path.
    pub fn report_size(&self) {
        self.entries.run_pending_tasks();
        let (items, bytes) = (self.entries.entry_count(), self.entries.weighted_size());
        self.metrics.set_size(CacheLayer::L1, self.name, items, bytes);
    }

    /// The number of entries and their weighted size in bytes as of the last maintenance
    /// (moka's eventually consistent counts; no maintenance is run).
    pub fn approximate_size(&self) -> (u64, u64) {
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use otel::metrics::testing::{Points, Recorder};
    use std::time::Instant;

    const HOUR: Duration = Duration::from_secs(3600);

    fn cache(recorder: &Recorder, max_bytes: u64, ttl: Duration) -> L1Cache<String> {
        let metrics = CacheMetrics::new(recorder.meter());
        let weigh = |value: &String| u32::try_from(value.len()).unwrap_or(u32::MAX);
        L1Cache::new(CacheName::GraphStats, max_bytes, ttl, weigh, metrics)
    }

    fn requests(points: &Points, result: &str) -> f64 {
        let labels =
            [("cache.layer", "l1"), ("cache.name", "graph_stats"), ("cache.result", result)];
        points.value("orgraph.cache.requests", &labels)
    }

    fn size(points: &Points) -> (f64, f64) {
        let labels = [("cache.layer", "l1"), ("cache.name", "graph_stats")];
        (points.value("orgraph.cache.items", &labels), points.value("orgraph.cache.size", &labels))
    }

    /// The weight of an entry, as the cache computes it.
    fn weight(key: &str, value: &str) -> f64 {
        f64::from(ENTRY_OVERHEAD_BYTES) + (key.len() + value.len()) as f64
    }

    #[test]
    fn hits_and_misses_start_at_zero_before_the_first_look_up() {
        let recorder = Recorder::new();
        let _c = cache(&recorder, 1 << 20, HOUR);
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!((requests(&points, "hit"), requests(&points, "miss")), (0.0, 0.0));
        assert_eq!(points.series("orgraph.cache.requests"), 2);
    }

    #[test]
    fn counts_hits_and_misses_on_layer_l1() {
        let recorder = Recorder::new();
        let c = cache(&recorder, 1 << 20, HOUR);
        assert_eq!(c.get("org:1"), None);
        c.insert("org:1".to_string(), "stats".to_string());
        assert_eq!(c.get("org:1").as_deref(), Some("stats"));
        assert_eq!(c.get("org:1").as_deref(), Some("stats"));
        assert_eq!(c.get("org:2"), None);
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!((requests(&points, "hit"), requests(&points, "miss")), (2.0, 2.0));
        assert_eq!(points.series("orgraph.cache.requests"), 2, "keys never become labels");
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let recorder = Recorder::new();
        let c = cache(&recorder, 1 << 20, Duration::from_millis(50));
        c.insert("org:1".to_string(), "stats".to_string());
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.get("org:1").is_some() {
            assert!(Instant::now() < deadline, "the entry never expired");
            std::thread::sleep(Duration::from_millis(10));
        }
        c.report_size();
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!(size(&points), (0.0, 0.0), "expired entries leave the size");
    }

    #[test]
    fn the_byte_bound_evicts() {
        let recorder = Recorder::new();
        let max_bytes = 2_000;
        let c = cache(&recorder, max_bytes, HOUR);
        let value = "x".repeat(100);
        for i in 0..100 {
            c.insert(format!("org:{i}"), value.clone());
            let _ = c.get(&format!("org:{i}"));
        }
        c.report_size();
        let (items, bytes) = c.approximate_size();
        assert!(bytes <= max_bytes, "{bytes} bytes held, bound {max_bytes}");
        assert!(items > 0 && items < 100, "{items} entries held");
        let present = (0..100).filter(|i| c.entries.contains_key(&format!("org:{i}"))).count();
        assert_eq!(present as u64, items);

        let too_big = "y".repeat(5_000);
        c.insert("huge".to_string(), too_big);
        assert_eq!(c.get("huge"), None, "an entry over the bound is not kept");
        recorder.collect().assert_conforms();
    }

    #[test]
    fn reports_size_in_items_and_bytes() {
        let recorder = Recorder::new();
        let c = cache(&recorder, 1 << 20, HOUR);
        assert_eq!(size(&recorder.collect()), (0.0, 0.0), "reported from construction");

        c.insert("a".to_string(), "1234".to_string());
        c.insert("bb".to_string(), "12".to_string());
        c.insert("ccc".to_string(), String::new());
        let points = recorder.collect();
        points.assert_conforms();
        let all = weight("a", "1234") + weight("bb", "12") + weight("ccc", "");
        assert_eq!(size(&points), (3.0, all));

        c.invalidate("bb");
        assert_eq!(size(&recorder.collect()), (2.0, all - weight("bb", "12")));

        c.insert("a".to_string(), "123456".to_string());
        let expected = weight("a", "123456") + weight("ccc", "");
        assert_eq!(size(&recorder.collect()), (2.0, expected), "a replacement re-weighs");

        c.invalidate_all();
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!(size(&points), (0.0, 0.0));
        assert_eq!(c.get("a"), None);
    }
}
