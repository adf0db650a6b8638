//! The platform under the services: the Postgres, Redis and host metrics the collector reads
//! itself with its infrastructure receivers (`prometheus/postgres`, `redis`, `host_metrics` in
//! `collector-config.yaml`).
//!
//! These series are not recorded through [`crate::metrics`], so the services' catalogue
//! ([`super::ALL`]) cannot name them; yet the dashboards and the alert rules read them by exact
//! name, labels and type, and a receiver upgrade or a config change can rename or drop them as
//! silently as a unit change renames a service's. So this sibling table lists every one the
//! dashboards and rules may use, with the job it appears under and what each job may cost in
//! series ([`Job::series_budget`]). `docs/METRICS.md` renders it, and the infrastructure
//! translation proof (`otel/tests/infrastructure.rs`) checks it against the real collector scraping
//! real Postgres (through postgres_exporter), Redis and this host.

mod host;
mod postgres;
mod redis;

use super::prometheus::MetricType;
use super::{Attribute, Kind};

/// Most series `orgraph/postgres` may serve: 11 fixed (`pg_up`, the two settings, replication lag,
/// WAL size, `up`, the 4 `scrape_*`, `target_info`), 4 per database (3 `pg_stat_database_*`, 1
/// size; a cluster has at least `postgres`, `template0`, `template1` besides `orgraph`), 6 more per
/// database that is not a template (the connection states of `postgres/exporter-queries.yaml`,
/// which labels connections by database and state only: the exporter's built-in query would add
/// the client-set `application_name`, an unbounded label), and 1 per user table of `orgraph` (the
/// schema's 5, `_sqlx_migrations`, apalis' few). About 50 on the platform; 120 leaves room for a
/// few more databases or tables; a budget blown means someone enabled a per-query or per-index
/// collector.
pub const POSTGRES_SERIES_BUDGET: usize = 120;

/// Most series `orgraph/redis` may serve: the 9 metrics have no attributes, so one series each,
/// plus `target_info`: exactly 10 whatever Redis holds (measured: 10).
pub const REDIS_SERIES_BUDGET: usize = 10;

/// Most series `orgraph/host` may serve: 19 fixed (CPU time 8 states, summed over the logical
/// CPUs because the scraper's `cpu` attribute is opt-in and off, so it does not grow with cores;
/// logical CPU count 1; load 2; memory usage 6 states on Linux; memory limit 1; `target_info` 1),
/// 3 per real filesystem mount (free, reserved, used) and 4 per network interface outside the
/// exclusions (bytes and errors, each receive and transmit). Measured by the proof: 34 (1 mount,
/// 3 interfaces). 80 covers a host with 6 mounts and 10 interfaces (19 + 18 + 40 = 77).
pub const HOST_SERIES_BUDGET: usize = 80;

/// One job the infrastructure receivers emit under: `job` is `service.namespace/service.name`,
/// set by the pipeline's `resource/<x>` processor, and `instance` comes from a config variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// The `job` label.
    pub job: &'static str,
    /// The receiver, as named in `collector-config.yaml`.
    pub receiver: &'static str,
    /// The collector config variable that sets `instance` (`service.instance.id`).
    pub instance_variable: &'static str,
    /// Most series (`target_info` included) the job may serve on a typical deployment: a
    /// dashboard of this platform must never become the costliest thing in Prometheus.
    pub series_budget: usize,
    /// What its series count grows with, for docs.
    pub cost: &'static str,
}

/// Postgres, through postgres_exporter, scraped by the collector's `prometheus/postgres`.
pub const POSTGRES: Job = Job {
    job: "orgraph/postgres",
    receiver: "prometheus/postgres",
    instance_variable: "POSTGRES_INSTANCE",
    series_budget: POSTGRES_SERIES_BUDGET,
    cost: "11 + 4 per database + 6 per database that is not a template + 1 per user table of `orgraph`",
};

/// Redis, read by the `redis` receiver.
pub const REDIS: Job = Job {
    job: "orgraph/redis",
    receiver: "redis",
    instance_variable: "REDIS_ENDPOINT",
    series_budget: REDIS_SERIES_BUDGET,
    cost: "10, fixed",
};

/// The host the collector runs on, read by the `host_metrics` receiver.
pub const HOST: Job = Job {
    job: "orgraph/host",
    receiver: "host_metrics",
    instance_variable: "HOST_INSTANCE",
    series_budget: HOST_SERIES_BUDGET,
    cost: "19 + 3 per filesystem mount + 4 per network interface (not per CPU core)",
};

/// Every infrastructure job: the one list tests and tools use to tell these series from the
/// services'.
pub const JOBS: &[Job] = &[POSTGRES, REDIS, HOST];

/// Whether `job` (a `job` label value) is one of the infrastructure jobs.
pub fn is_infrastructure_job(job: &str) -> bool {
    JOBS.iter().any(|j| j.job == job)
}

/// The `# TYPE` the exporter writes for a receiver's OpenTelemetry metric: monotonic sums are
/// counters, everything these receivers emit besides is a gauge (no histogram among them).
const fn otel_metric_type(kind: Kind) -> MetricType {
    match kind {
        Kind::Counter => MetricType::Counter,
        Kind::UpDownCounter | Kind::Gauge | Kind::Histogram => MetricType::Gauge,
    }
}

/// What a receiver calls the metric before the collector's `prometheus` exporter names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A postgres_exporter metric, by the exporter's name; the collector adds `_total` to its
    /// counters.
    Exporter(&'static str),
    /// A series the `prometheus` receiver adds to every scrape of its own (`up`).
    Scrape(&'static str),
    /// An OpenTelemetry metric a receiver declares, named by the exporter's usual translation
    /// ([`super::prometheus::metric_name`]).
    Otel {
        /// The OpenTelemetry name.
        name: &'static str,
        /// Its UCUM unit.
        unit: &'static str,
        /// Its kind (a non-monotonic sum is an `UpDownCounter`).
        kind: Kind,
    },
}

impl Source {
    /// The receiver's name for it.
    pub fn name(&self) -> &'static str {
        match *self {
            Source::Exporter(name) | Source::Scrape(name) => name,
            Source::Otel { name, .. } => name,
        }
    }
}

/// One metric family the collector serves for the infrastructure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InfraMetric {
    /// The job it appears under (which says the receiver).
    pub job: Job,
    /// The `host_metrics` scraper that emits it (`None` for the other receivers).
    pub scraper: Option<&'static str>,
    /// What the receiver calls it.
    pub source: Source,
    /// The family name the collector's `prometheus` exporter serves.
    pub family: &'static str,
    /// The `# TYPE`.
    pub metric_type: MetricType,
    /// The label keys beyond `job`, `instance` and the `otel_scope_*` ones, with their values;
    /// `only_when` marks those on some series only.
    pub labels: &'static [Attribute],
    /// The `# HELP` text, exactly as served (the receiver's or exporter's own).
    pub help: &'static str,
    /// What it says and what reads it.
    pub description: &'static str,
}

/// Every infrastructure metric the dashboards and rules may use, by job.
pub const INFRA_METRICS: &[InfraMetric] = &[
    postgres::PG_UP,
    postgres::UP,
    postgres::MAX_CONNECTIONS,
    postgres::SUPERUSER_RESERVED_CONNECTIONS,
    postgres::ACTIVITY_COUNT,
    postgres::XACT_COMMIT,
    postgres::XACT_ROLLBACK,
    postgres::DEADLOCKS,
    postgres::DATABASE_SIZE,
    postgres::REPLICATION_LAG,
    postgres::WAL_SIZE,
    postgres::USER_TABLE_SIZE,
    redis::CLIENTS_CONNECTED,
    redis::COMMANDS_PROCESSED,
    redis::KEYS_EVICTED,
    redis::KEYSPACE_HITS,
    redis::KEYSPACE_MISSES,
    redis::MAXMEMORY,
    redis::MEMORY_USED,
    redis::SLAVES_CONNECTED,
    redis::UPTIME,
    host::CPU_TIME,
    host::CPU_LOGICAL_COUNT,
    host::LOAD_1M,
    host::LOAD_15M,
    host::MEMORY_USAGE,
    host::MEMORY_LIMIT,
    host::FILESYSTEM_USAGE,
    host::NETWORK_IO,
    host::NETWORK_ERRORS,
];

/// Families the `prometheus/postgres` receiver serves under `orgraph/postgres` that are not in
/// [`INFRA_METRICS`]: the scrape's own statistics, one series per target each. They cannot be
/// switched off (the receiver adds them to every scrape, after `metric_relabel_configs`, and has
/// no setting for them), nothing reads them (the "Postgres down" alert reads `up` and `pg_up`),
/// and dropping them would take a filter processor for 4 series; so they are left, counted in
/// [`POSTGRES_SERIES_BUDGET`], and the proof checks that they are exactly these.
pub const UNUSED_SCRAPE_FAMILIES: &[&str] = &[
    "scrape_duration_seconds",
    "scrape_samples_post_metric_relabeling",
    "scrape_samples_scraped",
    "scrape_series_added",
];

/// The catalogued metrics of `job`.
pub fn metrics_of(job: &str) -> impl Iterator<Item = &'static InfraMetric> + '_ {
    INFRA_METRICS.iter().filter(move |m| m.job.job == job)
}

/// The catalogued metric served as `family`, if any.
pub fn find(family: &str) -> Option<&'static InfraMetric> {
    INFRA_METRICS.iter().find(|m| m.family == family)
}

#[cfg(test)]
mod tests;
