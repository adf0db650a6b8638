//! Cache metrics: look-ups by layer, cache and result, and each cache's size in items and bytes.

use super::zero;
use crate::catalogue::{self, CacheLayer, CacheName, CacheResult, Label};
use opentelemetry::metrics::{Counter, Gauge, Meter};

/// The cache instruments of one service.
#[derive(Clone)]
pub struct CacheMetrics {
    requests: Counter<u64>,
    size: Gauge<u64>,
    items: Gauge<u64>,
}

impl CacheMetrics {
    /// Builds the instruments from the catalogue on `meter`.
    pub fn new(meter: &Meter) -> Self {
        CacheMetrics {
            requests: catalogue::CACHE_REQUESTS.u64_counter(meter),
            size: catalogue::CACHE_SIZE.u64_gauge(meter),
            items: catalogue::CACHE_ITEMS.u64_gauge(meter),
        }
    }

    /// The look-up series of cache `name` on `layer` exist from now on, at 0 hits and 0 misses
    /// (2 series). Call it where the cache is built, for the layers it really has.
    pub fn start_at_zero(&self, layer: CacheLayer, name: CacheName) {
        for result in CacheResult::ALL {
            let attributes = [layer.key_value(), name.key_value(), result.key_value()];
            zero::start_at_zero(&self.requests, &catalogue::CACHE_REQUESTS, &attributes);
        }
    }

    /// A look-up found its entry.
    pub fn hit(&self, layer: CacheLayer, name: CacheName) {
        self.lookup(layer, name, CacheResult::Hit);
    }

    /// A look-up did not find its entry.
    pub fn miss(&self, layer: CacheLayer, name: CacheName) {
        self.lookup(layer, name, CacheResult::Miss);
    }

    /// A look-up with the given result.
    pub fn lookup(&self, layer: CacheLayer, name: CacheName, result: CacheResult) {
        self.requests.add(1, &[layer.key_value(), name.key_value(), result.key_value()]);
    }

    /// The cache now holds `items` entries of about `bytes` bytes.
    pub fn set_size(&self, layer: CacheLayer, name: CacheName, items: u64, bytes: u64) {
        let attributes = [layer.key_value(), name.key_value()];
        self.items.record(items, &attributes);
        self.size.record(bytes, &attributes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::Recorder;

    #[test]
    fn counts_hits_and_misses_and_records_size() {
        let recorder = Recorder::new();
        let cache = CacheMetrics::new(recorder.meter());
        cache.hit(CacheLayer::L1, CacheName::GraphStats);
        cache.hit(CacheLayer::L1, CacheName::GraphStats);
        cache.miss(CacheLayer::L2, CacheName::GraphStats);
        cache.set_size(CacheLayer::L1, CacheName::GraphStats, 3, 1024);
        cache.set_size(CacheLayer::L1, CacheName::GraphStats, 2, 700);
        let points = recorder.collect();
        points.assert_conforms();
        let hits = [("cache.layer", "l1"), ("cache.result", "hit")];
        assert_eq!(points.value("orgraph.cache.requests", &hits), 2.0);
        assert_eq!(points.value("orgraph.cache.requests", &[("cache.result", "miss")]), 1.0);
        assert_eq!(points.value("orgraph.cache.items", &[("cache.name", "graph_stats")]), 2.0);
        assert_eq!(points.value("orgraph.cache.size", &[("cache.layer", "l1")]), 700.0);
    }

    #[test]
    fn a_started_cache_shows_zero_hits_and_misses_before_any_look_up() {
        let recorder = Recorder::new();
        let cache = CacheMetrics::new(recorder.meter());
        cache.start_at_zero(CacheLayer::L2, CacheName::GraphStats);
        let points = recorder.collect();
        points.assert_conforms();
        let l2 = [("cache.layer", "l2"), ("cache.name", "graph_stats")];
        for result in ["hit", "miss"] {
            let labels = [l2[0], l2[1], ("cache.result", result)];
            assert_eq!(points.value("orgraph.cache.requests", &labels), 0.0, "{result}");
        }
        assert_eq!(points.series("orgraph.cache.requests"), 2, "only the cache that exists");
        cache.miss(CacheLayer::L2, CacheName::GraphStats);
        let points = recorder.collect();
        assert_eq!(points.value("orgraph.cache.requests", &[("cache.result", "miss")]), 1.0);
        assert_eq!(points.series("orgraph.cache.requests"), 2);
    }
}
