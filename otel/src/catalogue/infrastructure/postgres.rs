//! Postgres' series: postgres_exporter's metrics that `prometheus/postgres` keeps (its
//! `metric_relabel_configs` keep regex lists exactly these sources), and the receiver's `up`.

use super::{InfraMetric, POSTGRES, Source};
use crate::catalogue::Attribute;
use crate::catalogue::prometheus::MetricType;

/// `server`: the exporter's `host:port` of the server it reads (the legacy queries add it).
const SERVER: Attribute = Attribute::bounded_by("server", "one per monitored server, `host:port`");
/// `datname` where the exporter reports every database of the cluster.
const DATNAME: Attribute = Attribute::bounded_by("datname", "the databases of the cluster");
/// `datid`, the database's OID, beside its name.
const DATID: Attribute = Attribute::bounded_by("datid", "the databases' OIDs");

/// The connection states our activity query (`postgres/exporter-queries.yaml`, which replaces the
/// exporter's built-in one) lists in its `VALUES`, every one reported for every database that is
/// not a template, at 0 when no connection is in it.
const STATE: Attribute = Attribute::one_of(
    "state",
    &[
        "active",
        "idle",
        "idle in transaction",
        "idle in transaction (aborted)",
        "fastpath function call",
        "disabled",
    ],
);

/// `datname` of the activity query: the databases one can connect to.
const CONNECTABLE_DATNAME: Attribute =
    Attribute::bounded_by("datname", "the cluster's databases but the templates");

const fn metric(
    source: Source,
    family: &'static str,
    metric_type: MetricType,
    labels: &'static [Attribute],
    help: &'static str,
    description: &'static str,
) -> InfraMetric {
    InfraMetric {
        job: POSTGRES,
        scraper: None,
        source,
        family,
        metric_type,
        labels,
        help,
        description,
    }
}

pub(super) const PG_UP: InfraMetric = metric(
    Source::Exporter("pg_up"),
    "pg_up",
    MetricType::Gauge,
    &[],
    "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 for \
     yes, 0 for no).",
    "1 when postgres_exporter could log in as the monitoring role and query Postgres, 0 when it \
     could not: Postgres down (or the role broken) while the exporter runs.",
);

pub(super) const UP: InfraMetric = metric(
    Source::Scrape("up"),
    "up",
    MetricType::Gauge,
    &[],
    "The scraping was successful",
    "1 when the collector could scrape postgres_exporter, 0 when it could not: the exporter \
     down, so nothing about Postgres is known (`up{job=\"orgraph/postgres\"}`).",
);

pub(super) const MAX_CONNECTIONS: InfraMetric = metric(
    Source::Exporter("pg_settings_max_connections"),
    "pg_settings_max_connections",
    MetricType::Gauge,
    &[SERVER],
    "Server Parameter: max_connections",
    "The server's `max_connections`: the ceiling connection saturation is measured against.",
);

pub(super) const SUPERUSER_RESERVED_CONNECTIONS: InfraMetric = metric(
    Source::Exporter("pg_settings_superuser_reserved_connections"),
    "pg_settings_superuser_reserved_connections",
    MetricType::Gauge,
    &[SERVER],
    "Server Parameter: superuser_reserved_connections",
    "Connections only a superuser may use: `max_connections` minus these is what clients get.",
);

pub(super) const ACTIVITY_COUNT: InfraMetric = metric(
    Source::Exporter("pg_stat_activity_count"),
    "pg_stat_activity_count",
    MetricType::Gauge,
    &[CONNECTABLE_DATNAME, STATE, SERVER],
    "Client connections to this database in this state",
    "Client connections by database and state (`sum by (state)` over the rest): connection \
     saturation, and sessions stuck idle in a transaction.",
);

pub(super) const XACT_COMMIT: InfraMetric = metric(
    Source::Exporter("pg_stat_database_xact_commit"),
    "pg_stat_database_xact_commit_total",
    MetricType::Counter,
    &[DATID, DATNAME],
    "Number of transactions in this database that have been committed",
    "Committed transactions: with rollbacks, the database's transaction rate.",
);

pub(super) const XACT_ROLLBACK: InfraMetric = metric(
    Source::Exporter("pg_stat_database_xact_rollback"),
    "pg_stat_database_xact_rollback_total",
    MetricType::Counter,
    &[DATID, DATNAME],
    "Number of transactions in this database that have been rolled back",
    "Rolled-back transactions: their share of all transactions is the rollback ratio.",
);

pub(super) const DEADLOCKS: InfraMetric = metric(
    Source::Exporter("pg_stat_database_deadlocks"),
    "pg_stat_database_deadlocks_total",
    MetricType::Counter,
    &[DATID, DATNAME],
    "Number of deadlocks detected in this database",
    "Deadlocks Postgres broke by aborting a transaction: any increase deserves a look.",
);

pub(super) const DATABASE_SIZE: InfraMetric = metric(
    Source::Exporter("pg_database_size_bytes"),
    "pg_database_size_bytes",
    MetricType::Gauge,
    &[DATNAME],
    "Disk space used by the database",
    "Each database's size on disk: growth of `orgraph`.",
);

pub(super) const REPLICATION_LAG: InfraMetric = metric(
    Source::Exporter("pg_replication_lag_seconds"),
    "pg_replication_lag_seconds",
    MetricType::Gauge,
    &[],
    "Replication lag behind master in seconds",
    "How far a replica's replay is behind its primary; 0 on a primary.",
);

pub(super) const WAL_SIZE: InfraMetric = metric(
    Source::Exporter("pg_wal_size_bytes"),
    "pg_wal_size_bytes",
    MetricType::Gauge,
    &[],
    "Total size of WAL segments",
    "The WAL segments on disk: grows when archiving or a replication slot holds them back.",
);

pub(super) const USER_TABLE_SIZE: InfraMetric = metric(
    Source::Exporter("pg_stat_user_tables_size_bytes"),
    "pg_stat_user_tables_size_bytes",
    MetricType::Gauge,
    &[
        Attribute::bounded_by("datname", "the database the exporter connects to (`orgraph`)"),
        Attribute::bounded_by("schemaname", "the schemas of `orgraph`"),
        Attribute::bounded_by("relname", "the tables of `orgraph`"),
    ],
    "Total disk space used by this table, in bytes, including all indexes and TOAST data",
    "Each table of `orgraph` with its indexes and TOAST: which table the database grows by.",
);
