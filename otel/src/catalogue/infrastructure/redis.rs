//! Redis' series: the `redis` receiver's metrics that `collector-config.yaml` enables (every
//! other one is switched off there). None has attributes: one series each per Redis.

use super::{InfraMetric, REDIS, Source};
use crate::catalogue::Kind;

const fn metric(
    name: &'static str,
    unit: &'static str,
    kind: Kind,
    family: &'static str,
    help: &'static str,
    description: &'static str,
) -> InfraMetric {
    let metric_type = super::otel_metric_type(kind);
    InfraMetric {
        job: REDIS,
        scraper: None,
        source: Source::Otel { name, unit, kind },
        family,
        metric_type,
        labels: &[],
        help,
        description,
    }
}

pub(super) const CLIENTS_CONNECTED: InfraMetric = metric(
    "redis.clients.connected",
    "{client}",
    Kind::UpDownCounter,
    "redis_clients_connected",
    "Number of client connections (excluding connections from replicas)",
    "Open client connections: the services' pools and anything else connected.",
);

pub(super) const COMMANDS_PROCESSED: InfraMetric = metric(
    "redis.commands.processed",
    "{command}",
    Kind::Counter,
    "redis_commands_processed_total",
    "Total number of commands processed by the server",
    "Commands served: Redis' throughput.",
);

pub(super) const KEYS_EVICTED: InfraMetric = metric(
    "redis.keys.evicted",
    "{key}",
    Kind::Counter,
    "redis_keys_evicted_total",
    "Number of evicted keys due to maxmemory limit",
    "Keys dropped to stay under `maxmemory`: the cache is too small for its working set.",
);

pub(super) const KEYSPACE_HITS: InfraMetric = metric(
    "redis.keyspace.hits",
    "{hit}",
    Kind::Counter,
    "redis_keyspace_hits_total",
    "Number of successful lookup of keys in the main dictionary",
    "Lookups that found their key: with misses, Redis' own hit ratio.",
);

pub(super) const KEYSPACE_MISSES: InfraMetric = metric(
    "redis.keyspace.misses",
    "{miss}",
    Kind::Counter,
    "redis_keyspace_misses_total",
    "Number of failed lookup of keys in the main dictionary",
    "Lookups that did not find their key.",
);

pub(super) const MAXMEMORY: InfraMetric = metric(
    "redis.maxmemory",
    "By",
    Kind::Gauge,
    "redis_maxmemory_bytes",
    "The value of the maxmemory configuration directive",
    "The `maxmemory` setting (0: no limit): the ceiling memory use is measured against.",
);

pub(super) const MEMORY_USED: InfraMetric = metric(
    "redis.memory.used",
    "By",
    Kind::Gauge,
    "redis_memory_used_bytes",
    "Total number of bytes allocated by Redis using its allocator",
    "Memory Redis allocated: against `maxmemory`, how close eviction is.",
);

pub(super) const SLAVES_CONNECTED: InfraMetric = metric(
    "redis.slaves.connected",
    "{replica}",
    Kind::UpDownCounter,
    "redis_slaves_connected",
    "Number of connected replicas",
    "Replicas connected to this Redis (0 without replication).",
);

pub(super) const UPTIME: InfraMetric = metric(
    "redis.uptime",
    "s",
    Kind::Counter,
    "redis_uptime_seconds_total",
    "Number of seconds since Redis server start",
    "Seconds since Redis started: a drop is a restart, which empties a cache without persistence.",
);
