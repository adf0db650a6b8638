//! The services of the stack, named as in compose, and how each native one is started: binary,
//! arguments, environment, listen ports and health check. Ports are compose's, bound to 127.0.0.1.
//! Every service of compose runs natively but Grafana and alert-log (Alertmanager's receiver in
//! compose; natively the live proof runs its own on 127.0.0.1:9099).
//!
//! Postgres and Redis come from the OS packages. Postgres keeps its cluster in
//! `target/stack/postgres/data` (initdb'd on the first start, with its unix socket next to it),
//! made by the same code as the tests' servers ([`testkit::pg`]): superuser `postgres` with
//! **trust** authentication, which is acceptable only because it listens on 127.0.0.1 alone; the
//! database `orgraph` is created once, so the services use
//! `postgres://postgres@127.0.0.1:5432/orgraph`. When run as root the server runs as the `postgres`
//! system user, which then owns that directory. Redis persists nothing (`--save "" --appendonly
//! no`): it is a cache. Alertmanager keeps its silences and notification log in
//! `target/stack/alertmanager` and runs without clustering. Jaeger (the trace store) keeps its
//! Badger store in `target/stack/jaeger`; its listeners are on ports of its own (the collector
//! holds compose's 4317 and 13133 here), its query service (UI and API) on compose's 16686.
//!
//! The platform's own services (the API and the worker) are built with `cargo build` before each
//! start (one invocation for all that [`build`] is given) and run from the target directory; their
//! environment is one table, [`app_env`].

use anyhow::Context;
use std::ffi::OsString;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use testkit::pg::{self, Cluster};
use testkit::process::{Output, run};
use testkit::{Redis, tools};

/// A service of the stack, as compose names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// The database (org graph, results, job queue).
    Postgres,
    /// The shared second-level cache.
    Redis,
    /// postgres_exporter, through which the collector reads Postgres' statistics.
    PostgresExporter,
    /// Jaeger v2, the trace store the collector sends spans to.
    Jaeger,
    /// The OpenTelemetry Collector.
    Collector,
    /// Prometheus.
    Prometheus,
    /// Alertmanager.
    Alertmanager,
    /// The HTTP API.
    Api,
    /// The job worker.
    Worker,
}

/// How to run one service natively.
#[derive(Debug)]
pub struct Native {
    pub service: Service,
    /// Absolute path of the binary (also how a running process is recognised).
    pub binary: PathBuf,
    args: Vec<OsString>,
    env: Vec<(&'static str, String)>,
    dirs: Vec<PathBuf>,
    kind: Kind,
    /// `<repo>/target/stack/<service>.log`.
    pub log_path: PathBuf,
    /// `<repo>/target/stack/<service>.pid`.
    pub pid_path: PathBuf,
}

/// What kind of server a service is: how it is set up, checked and stopped.
#[derive(Debug)]
enum Kind {
    /// Healthy when a GET of this URL answers 200; stopped with SIGTERM.
    Http(String),
    /// Initialised before its first start, run as the `postgres` user when root, healthy when
    /// `pg_isready` says so, given its database once healthy; stopped with SIGINT (fast shutdown:
    /// SIGTERM would wait for every client to disconnect).
    Postgres(Box<Cluster>),
    /// Healthy when `PING` on this port answers `+PONG`; stopped with SIGTERM.
    Redis(u16),
    /// One of the platform's own binaries: built with `cargo build -p <package> --bin <bin>`
    /// before each start, healthy when a GET of `health` answers 200, stopped with SIGTERM and
    /// given `stop_grace` to finish its in-flight work and flush its telemetry.
    Built {
        package: &'static str,
        bin: &'static str,
        health: String,
        /// How long it gets after SIGTERM before SIGKILL.
        stop_grace: Duration,
    },
    /// It cannot be started: its binaries are not installed, or what its environment needs
    /// cannot be found; this says why and how to fix it.
    Missing(String),
}

/// How long `cargo build` of one of the platform's binaries may take (a first build compiles
/// every dependency).
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How long a service gets to exit after its stop signal before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// How long the API gets after SIGTERM: it drains in-flight requests (at most its
/// `REQUEST_TIMEOUT_MS`, 10 s by default), then flushes its telemetry (one export, at most
/// `OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s by default, and 1 s).
const API_STOP_GRACE: Duration = Duration::from_secs(25);

/// How long the worker gets after SIGTERM: its in-flight jobs finish (at most its
/// `SHUTDOWN_GRACE_MS`, 25 s by default), then it flushes its telemetry (at most
/// `OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s by default, and 1 s).
const WORKER_STOP_GRACE: Duration = Duration::from_secs(40);

// The native ports (compose's), on 127.0.0.1. [`Service::ports`] lists each service's.

const POSTGRES_PORT: u16 = 5432;
const REDIS_PORT: u16 = 6379;
const POSTGRES_EXPORTER_PORT: u16 = 9187;
/// Jaeger's OTLP/gRPC receiver (4317 in compose, where it has a network namespace of its own).
const JAEGER_OTLP_GRPC_PORT: u16 = 14317;
/// Jaeger's query service: the UI and the HTTP API (`/api/traces`), as in compose.
const JAEGER_QUERY_PORT: u16 = 16686;
/// Jaeger's query service over gRPC (api_v2/api_v3), as in compose (not published there).
const JAEGER_QUERY_GRPC_PORT: u16 = 16685;
/// Jaeger's health endpoint (13133 in compose).
const JAEGER_HEALTH_PORT: u16 = 13134;
const OTLP_GRPC_PORT: u16 = 4317;
const OTLP_HTTP_PORT: u16 = 4318;
const COLLECTOR_TELEMETRY_PORT: u16 = 8888;
const COLLECTOR_EXPORTER_PORT: u16 = 8889;
const COLLECTOR_HEALTH_PORT: u16 = 13133;
const ALERTMANAGER_PORT: u16 = 9093;
const PROMETHEUS_PORT: u16 = 9090;
const API_PORT: u16 = 8000;
/// The worker's health listener.
const WORKER_HEALTH_PORT: u16 = 8001;

/// Written to a service's log before each start, so a failure shows only this start's lines.
pub const START_MARKER: &str = "--- cargo xtask stack: starting ";

/// Overrides where the stack keeps its state: the live proof runs its own stack in a fresh
/// directory, leaving a developer's `target/stack` (its data) alone.
pub const STACK_DIR_ENV: &str = "ORGRAPH_STACK_DIR";

/// Overrides which `prometheus.yml` the stack's Prometheus runs (its rule and target files are
/// resolved against that file's directory): the live proof runs a copy of `prometheus/`, so it can
/// deploy a broken rule or config to it, as an operator might, without touching the repository.
pub const PROMETHEUS_CONFIG_ENV: &str = "ORGRAPH_PROMETHEUS_CONFIG";

/// Set to `1`, the stack's collector also runs `collector-debug.yaml`: every span it receives goes
/// to its log too (`target/stack/collector.log`), besides Jaeger.
pub const COLLECTOR_DEBUG_ENV: &str = "ORGRAPH_COLLECTOR_DEBUG";

/// The base URL of the native stack's Jaeger query service (UI and HTTP API: `/api/traces/{id}`,
/// `/api/traces?service=…&operation=…&start=…&end=…&minDuration=…`).
pub fn jaeger_query_url() -> String {
    format!("http://127.0.0.1:{JAEGER_QUERY_PORT}")
}

/// `<repo>/target/stack` (or `$ORGRAPH_STACK_DIR`): logs, pid files and data of the native stack.
pub fn stack_dir() -> PathBuf {
    path_from_env(STACK_DIR_ENV, || testkit::repo_root().join("target").join("stack"))
}

/// The path in the variable `var` if it is set and not empty, else `default()`.
fn path_from_env(var: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => default(),
    }
}

impl Service {
    /// Dependencies first, so `up` starts in this order and `down` reverses it. Jaeger comes
    /// before the collector, which sends it spans; Alertmanager before Prometheus, which sends it
    /// alerts.
    pub const ALL: [Service; 9] = [
        Service::Postgres,
        Service::Redis,
        Service::PostgresExporter,
        Service::Jaeger,
        Service::Collector,
        Service::Alertmanager,
        Service::Prometheus,
        Service::Api,
        Service::Worker,
    ];

    /// How to run it natively.
    pub fn native(self) -> anyhow::Result<Native> {
        match self {
            Service::Postgres => postgres(),
            Service::Redis => redis(),
            Service::PostgresExporter => postgres_exporter(),
            Service::Jaeger => jaeger(),
            Service::Collector => collector(),
            Service::Alertmanager => alertmanager(),
            Service::Prometheus => prometheus(),
            Service::Api => api(),
            Service::Worker => worker(),
        }
    }

    /// The ports it listens on (compose's, on 127.0.0.1), each with what listens there: the one
    /// list of the native stack's ports.
    pub const fn ports(self) -> &'static [(u16, &'static str)] {
        match self {
            Service::Postgres => &[(POSTGRES_PORT, "postgres")],
            Service::Redis => &[(REDIS_PORT, "redis")],
            Service::PostgresExporter => &[(POSTGRES_EXPORTER_PORT, "postgres-exporter")],
            Service::Jaeger => &[
                (JAEGER_OTLP_GRPC_PORT, "jaeger OTLP/gRPC"),
                (JAEGER_QUERY_PORT, "jaeger query (UI, API)"),
                (JAEGER_QUERY_GRPC_PORT, "jaeger query gRPC"),
                (JAEGER_HEALTH_PORT, "jaeger health"),
            ],
            Service::Collector => &[
                (OTLP_GRPC_PORT, "collector OTLP/gRPC"),
                (OTLP_HTTP_PORT, "collector OTLP/HTTP"),
                (COLLECTOR_TELEMETRY_PORT, "collector telemetry"),
                (COLLECTOR_EXPORTER_PORT, "collector prometheus exporter"),
                (COLLECTOR_HEALTH_PORT, "collector health"),
            ],
            Service::Alertmanager => &[(ALERTMANAGER_PORT, "alertmanager")],
            Service::Prometheus => &[(PROMETHEUS_PORT, "prometheus")],
            Service::Api => &[(API_PORT, "api")],
            Service::Worker => &[(WORKER_HEALTH_PORT, "worker")],
        }
    }

    /// The services that must be healthy before this one starts (compose's `depends_on` with
    /// `condition: service_healthy`). Not Jaeger for the collector: as in compose (`required:
    /// false`), the metrics never wait on the trace store; `up` starts Jaeger first anyway.
    pub fn needs(self) -> &'static [Service] {
        match self {
            Service::Api => &[Service::Postgres, Service::Redis, Service::Collector],
            Service::Worker => &[Service::Postgres, Service::Collector],
            Service::PostgresExporter => &[Service::Postgres],
            Service::Postgres
            | Service::Redis
            | Service::Jaeger
            | Service::Collector
            | Service::Prometheus
            | Service::Alertmanager => &[],
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis",
            Service::PostgresExporter => "postgres-exporter",
            Service::Jaeger => "jaeger",
            Service::Collector => "collector",
            Service::Prometheus => "prometheus",
            Service::Alertmanager => "alertmanager",
            Service::Api => "api",
            Service::Worker => "worker",
        };
        f.write_str(name)
    }
}

/// The stack's Postgres cluster: data in `target/stack/postgres/data`, socket next to it, on
/// 127.0.0.1:5432. Fails when the Postgres binaries are not installed.
fn postgres_cluster() -> anyhow::Result<Cluster> {
    let dir = stack_dir().join("postgres");
    Cluster::new(&dir.join("data"), &dir, POSTGRES_PORT)
}

/// Postgres on 127.0.0.1:5432, its cluster in `target/stack/postgres/data`.
fn postgres() -> anyhow::Result<Native> {
    let cluster = match postgres_cluster() {
        Ok(cluster) => cluster,
        // `status` and `down` work without the binaries; only a start needs them.
        Err(e) => return Native::new(Service::Postgres, "postgres".into(), missing(e)),
    };
    Native::new(Service::Postgres, cluster.server_binary(), Kind::Postgres(Box::new(cluster)))
}

/// Redis on 127.0.0.1:6379, persisting nothing; its working directory is `target/stack/redis`.
fn redis() -> anyhow::Result<Native> {
    let binary = match tools::redis_server() {
        Ok(binary) => binary,
        Err(e) => return Native::new(Service::Redis, "redis-server".into(), missing(e)),
    };
    let dir = stack_dir().join("redis");
    let mut native = Native::new(Service::Redis, binary, Kind::Redis(REDIS_PORT))?;
    native.args = Redis::server_args(REDIS_PORT, &dir);
    // As in compose: a bound below the memory it may use, evicting the least recently used keys.
    native
        .args
        .extend(["--maxmemory", "192mb", "--maxmemory-policy", "allkeys-lru"].map(Into::into));
    native.dirs = vec![dir];
    Ok(native)
}

/// postgres_exporter on 127.0.0.1:9187, logged in to the stack's database as the monitoring role
/// ([`super::monitoring`]), which Postgres' start made; the collector's `prometheus/postgres`
/// receiver scrapes it.
fn postgres_exporter() -> anyhow::Result<Native> {
    let health = Kind::Http(format!("http://127.0.0.1:{POSTGRES_EXPORTER_PORT}/"));
    let mut native =
        Native::new(Service::PostgresExporter, tools::postgres_exporter_path()?, health)?;
    native.args = vec![format!("--web.listen-address=127.0.0.1:{POSTGRES_EXPORTER_PORT}").into()];
    native.args.extend(testkit::postgres_exporter::args().into_iter().map(Into::into));
    native.env = vec![
        ("DATA_SOURCE_URI", format!("127.0.0.1:{POSTGRES_PORT}/{}?sslmode=disable", pg::DATABASE)),
        ("DATA_SOURCE_USER", pg::MONITOR_USER.to_string()),
        ("DATA_SOURCE_PASS_FILE", utf8(super::monitoring::password_file())?),
    ];
    Ok(native)
}

/// What the collector's infrastructure receivers read natively: the stack's Postgres (through
/// the exporter), Redis and this host.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The lookup error names the OS packages to install.
fn missing(e: anyhow::Error) -> Kind {
    Kind::Missing(format!("{e:#}"))
}

/// Jaeger with `jaeger/config.yaml`, its listeners on loopback, its Badger store in
/// `target/stack/jaeger`.
fn jaeger() -> anyhow::Result<Native> {
    let config = testkit::repo_root().join("jaeger").join("config.yaml");
    let store = stack_dir().join("jaeger");
    let health = Kind::Http(format!("http://127.0.0.1:{JAEGER_HEALTH_PORT}/status"));
    let mut native = Native::new(Service::Jaeger, tools::jaeger_path()?, health)?;
    native.args = vec!["--config".into(), config.into()];
    native.env = vec![
        ("JAEGER_OTLP_GRPC_ENDPOINT", format!("127.0.0.1:{JAEGER_OTLP_GRPC_PORT}")),
        ("JAEGER_QUERY_HTTP_ENDPOINT", format!("127.0.0.1:{JAEGER_QUERY_PORT}")),
        ("JAEGER_QUERY_GRPC_ENDPOINT", format!("127.0.0.1:{JAEGER_QUERY_GRPC_PORT}")),
        ("JAEGER_HEALTH_ENDPOINT", format!("127.0.0.1:{JAEGER_HEALTH_PORT}")),
        ("JAEGER_BADGER_DIR", utf8(store.clone())?),
    ];
    native.dirs = vec![store];
    Ok(native)
}

/// The collector with `collector-config.yaml` (and `collector-debug.yaml` when
/// [`COLLECTOR_DEBUG_ENV`] is `1`), its listeners moved to loopback, sending spans to the stack's
/// Jaeger.
fn collector() -> anyhow::Result<Native> {
    let root = testkit::repo_root();
    let health = Kind::Http(format!("http://127.0.0.1:{COLLECTOR_HEALTH_PORT}/"));
    let mut native = Native::new(Service::Collector, tools::otelcol_path()?, health)?;
    native.args = vec!["--config".into(), root.join("collector-config.yaml").into()];
    if std::env::var(COLLECTOR_DEBUG_ENV).is_ok_and(|v| v == "1") {
        native.args.extend(["--config".into(), root.join("collector-debug.yaml").into()]);
    }
    native.env = vec![
        ("JAEGER_OTLP_ENDPOINT", format!("127.0.0.1:{JAEGER_OTLP_GRPC_PORT}")),
        ("COLLECTOR_OTLP_GRPC_ENDPOINT", format!("127.0.0.1:{OTLP_GRPC_PORT}")),
        ("COLLECTOR_OTLP_HTTP_ENDPOINT", format!("127.0.0.1:{OTLP_HTTP_PORT}")),
        ("COLLECTOR_PROMETHEUS_ENDPOINT", format!("127.0.0.1:{COLLECTOR_EXPORTER_PORT}")),
        ("COLLECTOR_HEALTH_ENDPOINT", format!("127.0.0.1:{COLLECTOR_HEALTH_PORT}")),
        ("COLLECTOR_TELEMETRY_HOST", "127.0.0.1".into()),
        ("COLLECTOR_TELEMETRY_PORT", COLLECTOR_TELEMETRY_PORT.to_string()),
        ("POSTGRES_EXPORTER_ENDPOINT", format!("127.0.0.1:{POSTGRES_EXPORTER_PORT}")),
        ("POSTGRES_INSTANCE", format!("127.0.0.1:{POSTGRES_PORT}")),
        ("REDIS_ENDPOINT", format!("127.0.0.1:{REDIS_PORT}")),
        ("HOST_INSTANCE", host_name()),
    ];
    Ok(native)
}

/// `--<name>=<value>` for a path value (which need not be UTF-8).
fn path_flag(name: &str, value: &std::path::Path) -> OsString {
    let mut arg = OsString::from(format!("--{name}="));
    arg.push(value);
    arg
}

/// Alertmanager with `alertmanager/alertmanager.yml` on 127.0.0.1:9093, its silences and
/// notification log under `target/stack/alertmanager`, without clustering (an empty
/// `--cluster.listen-address` turns the gossip listener off).
fn alertmanager() -> anyhow::Result<Native> {
    let config = testkit::repo_root().join("alertmanager").join("alertmanager.yml");
    let storage = stack_dir().join("alertmanager");
    let health = Kind::Http(format!("http://127.0.0.1:{ALERTMANAGER_PORT}/-/ready"));
    let mut native = Native::new(Service::Alertmanager, tools::alertmanager_path()?, health)?;
    native.args = vec![
        path_flag("config.file", &config),
        path_flag("storage.path", &storage),
        format!("--web.listen-address=127.0.0.1:{ALERTMANAGER_PORT}").into(),
        "--cluster.listen-address=".into(),
    ];
    native.dirs = vec![storage];
    Ok(native)
}

/// Prometheus with `prometheus/prometheus.yml` (or `$ORGRAPH_PROMETHEUS_CONFIG`), data under
/// `target/stack/prometheus/data`.
fn prometheus() -> anyhow::Result<Native> {
    let config = path_from_env(PROMETHEUS_CONFIG_ENV, || {
        testkit::repo_root().join("prometheus").join("prometheus.yml")
    });
    let data = stack_dir().join("prometheus").join("data");
    let health = Kind::Http(format!("http://127.0.0.1:{PROMETHEUS_PORT}/-/ready"));
    let mut native = Native::new(Service::Prometheus, tools::prometheus_path()?, health)?;
    native.args = vec![
        path_flag("config.file", &config),
        path_flag("storage.tsdb.path", &data),
        "--storage.tsdb.retention.time=30d".into(),
        format!("--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}").into(),
        "--web.enable-lifecycle".into(),
    ];
    // prometheus.yml's `replica` external label comes from the environment.
    native.env = vec![("PROMETHEUS_REPLICA", "prometheus".to_string())];
    native.dirs = vec![data];
    Ok(native)
}

/// The API (`services/api`) on 127.0.0.1:8000, from the target directory, with [`app_env`].
fn api() -> anyhow::Result<Native> {
    let health = format!("http://127.0.0.1:{API_PORT}/health/ready");
    let kind = Kind::Built { package: "api", bin: "api", health, stop_grace: API_STOP_GRACE };
    built(Service::Api, kind)
}

/// The worker (`services/worker`), its health listener on 127.0.0.1:8001, writing exports to
/// `target/stack/exports`, from the target directory, with [`app_env`].
fn worker() -> anyhow::Result<Native> {
    let health = format!("http://127.0.0.1:{WORKER_HEALTH_PORT}/health/ready");
    let kind =
        Kind::Built { package: "worker", bin: "worker", health, stop_grace: WORKER_STOP_GRACE };
    let mut native = built(Service::Worker, kind)?;
    native.dirs = vec![exports_dir()];
    Ok(native)
}

/// One of the platform's services (`kind` is [`Kind::Built`]), run from the target directory as
/// `<target>/debug/<bin>` with its [`app_env`].
fn built(service: Service, kind: Kind) -> anyhow::Result<Native> {
    let Kind::Built { bin, .. } = &kind else {
        anyhow::bail!("{service} is not one of the platform's services");
    };
    let binary = target_dir().join("debug").join(bin);
    // As for Postgres: `status` and `down` work without what only a start needs.
    let env = match postgres_cluster().and_then(|c| app_env(service, c.url(pg::DATABASE))) {
        Ok(env) => env,
        Err(e) => return Native::new(service, binary, missing(e)),
    };
    let mut native = Native::new(service, binary, kind)?;
    native.env = env;
    Ok(native)
}

/// `<repo>/target/stack/exports`: where the worker writes export files.
fn exports_dir() -> PathBuf {
    stack_dir().join("exports")
}

/// The environment of the platform's own services in the native stack, in one table: compose's
/// ports on 127.0.0.1, the stack's Postgres (`database_url`), Redis for the API (the worker does
/// not use it), the worker's exports under `target/stack/exports`, OTLP/gRPC to the collector,
/// exporting as often as Prometheus scrapes, JSON logs, and the trace settings of `.env`
/// ([`testkit::trace_env`]: OTLP, the sampler and its ratio).
fn app_env(service: Service, database_url: String) -> anyhow::Result<Vec<(&'static str, String)>> {
    let own = match service {
        Service::Api => vec![
            ("API_ADDR", format!("127.0.0.1:{API_PORT}")),
            ("REDIS_URL", format!("redis://127.0.0.1:{REDIS_PORT}")),
            ("API_TOKENS_FILE", utf8(super::tokens::tokens_file())?),
        ],
        Service::Worker => vec![
            ("WORKER_HEALTH_ADDR", format!("127.0.0.1:{WORKER_HEALTH_PORT}")),
            ("EXPORT_DIR", utf8(exports_dir())?),
        ],
        Service::Postgres
        | Service::Redis
        | Service::PostgresExporter
        | Service::Jaeger
        | Service::Collector
        | Service::Prometheus
        | Service::Alertmanager => anyhow::bail!("{service} is not one of the platform's services"),
    };
    let shared = [
        ("DATABASE_URL", database_url),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{OTLP_GRPC_PORT}")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_SERVICE_NAME", service.to_string()),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.namespace=orgraph,deployment.environment.name=native".into(),
        ),
        ("OTEL_METRIC_EXPORT_INTERVAL", scrape_interval_ms()?.to_string()),
        ("LOG_FORMAT", "json".into()),
    ];
    // Spans to the collector (and so to Jaeger), sampled as .env says, as in compose.
    let traces = testkit::trace_env()?;
    Ok(own.into_iter().chain(shared).chain(traces).collect())
}

/// `path` as a string, for an environment variable of the table.
fn utf8(path: PathBuf) -> anyhow::Result<String> {
    path.into_os_string()
        .into_string()
        .map_err(|p| anyhow::anyhow!("{} is not valid UTF-8", PathBuf::from(p).display()))
}

/// `global.scrape_interval` of `prometheus/prometheus.yml`, in milliseconds: the services export
/// exactly as often as Prometheus scrapes (that file says so too).
pub fn scrape_interval_ms() -> anyhow::Result<u64> {
    let path = testkit::repo_root().join("prometheus").join("prometheus.yml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let doc: serde_norway::Value =
        serde_norway::from_str(&text).with_context(|| format!("{} is not YAML", path.display()))?;
    let interval = doc
        .get("global")
        .and_then(|g| g.get("scrape_interval"))
        .and_then(serde_norway::Value::as_str)
        .with_context(|| format!("no `global.scrape_interval` in {}", path.display()))?;
    duration_ms(interval).with_context(|| format!("`global.scrape_interval` in {}", path.display()))
}

/// A Prometheus duration of one unit (`15s`, `500ms`, `1m`, `1h`) in milliseconds.
fn duration_ms(text: &str) -> anyhow::Result<u64> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => anyhow::bail!("`{text}` is not a whole number of ms, s, m or h"),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(factor))
        .filter(|&ms| ms > 0)
        .with_context(|| format!("`{text}` is not a positive duration"))
}

/// Where cargo puts its builds: `$CARGO_TARGET_DIR` if set (relative to the repo root unless
/// absolute), else `<repo>/target`.
pub fn target_dir() -> PathBuf {
    let root = testkit::repo_root();
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Builds those of `natives` that are the platform's own with ONE `cargo build -p <package>… --bin
/// <bin>…` (output shown; one invocation resolves and links once, where one per service would
/// repeat it), so that [`Native::spawn`] runs the current code. The others are skipped; nothing
/// to build runs nothing.
pub fn build(natives: &[&Native]) -> anyhow::Result<()> {
    let built: Vec<(&Native, &str, &str)> = natives
        .iter()
        .filter_map(|native| match &native.kind {
            Kind::Built { package, bin, .. } => Some((*native, *package, *bin)),
            Kind::Http(_) | Kind::Postgres(_) | Kind::Redis(_) | Kind::Missing(_) => None,
        })
        .collect();
    if built.is_empty() {
        return Ok(());
    }
    let targets: Vec<(&str, &str)> =
        built.iter().map(|&(_, package, bin)| (package, bin)).collect();
    let args = cargo_build_args(&targets);
    let cargo = std::env::var_os("CARGO").filter(|c| !c.is_empty()).unwrap_or("cargo".into());
    let mut command = Command::new(cargo);
    command.args(&args).current_dir(testkit::repo_root());
    let what = format!("cargo {}", args.join(" "));
    let names: Vec<String> = built.iter().map(|(native, ..)| native.service.to_string()).collect();
    eprintln!("{}: {what}", names.join(", "));
    run(&what, &mut command, Output::Inherit, BUILD_TIMEOUT)?;
    for (native, ..) in built {
        anyhow::ensure!(
            native.binary.is_file(),
            "{what} succeeded but left no {} (is the target directory configured elsewhere, \
             e.g. build.target-dir in a cargo config? Set CARGO_TARGET_DIR instead)",
            native.binary.display()
        );
    }
    Ok(())
}

/// `build -p <package>… --bin <bin>…` for `(package, bin)` targets.
fn cargo_build_args<'a>(targets: &[(&'a str, &'a str)]) -> Vec<&'a str> {
    let mut args = vec!["build"];
    args.extend(targets.iter().flat_map(|&(package, _)| ["-p", package]));
    args.extend(targets.iter().flat_map(|&(_, bin)| ["--bin", bin]));
    args
}

impl Native {
    fn new(service: Service, binary: PathBuf, kind: Kind) -> anyhow::Result<Native> {
        // Not required to exist here: `status` and `down` work without it.
        let dir = stack_dir();
        Ok(Native {
            service,
            binary,
            args: Vec::new(),
            env: Vec::new(),
            dirs: Vec::new(),
            kind,
            log_path: dir.join(format!("{service}.log")),
            pid_path: dir.join(format!("{service}.pid")),
        })
    }

    /// Fails naming the first listen port ([`Service::ports`]) something else already holds.
    pub fn check_ports_free(&self) -> anyhow::Result<()> {
        for &(port, what) in self.service.ports() {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).with_context(|| {
                format!(
                    "{}: 127.0.0.1:{port} ({what}) is already in use by a process this tool did \
                     not start (a compose stack, or a stack run from another clone?)",
                    self.service
                )
            })?;
        }
        Ok(())
    }

    /// Builds the service if it is one of the platform's own; see [`build`].
    pub fn build(&self) -> anyhow::Result<()> {
        build(&[self])
    }

    /// Spawns the service detached (own process group, output appended to its log) and writes
    /// its pid file.
    pub fn spawn(&self) -> anyhow::Result<Child> {
        let name = self.service;
        if let Kind::Missing(why) = &self.kind {
            anyhow::bail!("{name}: {why}");
        }
        tools::require(&self.binary, &name.to_string())?;
        for dir in self.dirs.iter().chain([&stack_dir()]) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut command = match &self.kind {
            Kind::Postgres(cluster) => {
                if cluster.init()? {
                    eprintln!(
                        "{name}: initialised a cluster in {} (superuser {}, trust auth on \
                         127.0.0.1)",
                        cluster.data_dir().display(),
                        pg::SUPERUSER
                    );
                }
                cluster.server_command()?
            }
            Kind::Http(_) | Kind::Built { .. } | Kind::Redis(_) | Kind::Missing(_) => {
                Command::new(&self.binary)
            }
        };
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        writeln!(log, "{START_MARKER}{name} ---")
            .with_context(|| format!("writing {}", self.log_path.display()))?;
        let err_log = log.try_clone().context("duplicating the log file handle")?;
        let child = command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(testkit::repo_root())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name} ({})", self.binary.display()))?;
        super::pid::write(self, child.id())?;
        Ok(child)
    }

    /// What [`Native::health`] checks, for messages: a URL, or an address and the check.
    pub fn health_target(&self) -> String {
        match &self.kind {
            Kind::Http(url) | Kind::Built { health: url, .. } => url.clone(),
            Kind::Postgres(cluster) => format!("127.0.0.1:{} (pg_isready)", cluster.port()),
            Kind::Redis(port) => format!("127.0.0.1:{port} (PING)"),
            Kind::Missing(_) => "nothing (cannot be started)".to_string(),
        }
    }

    /// `Ok` if the service is healthy: its health URL answers 200, Postgres accepts connections,
    /// Redis answers `PING`.
    pub fn health(&self) -> anyhow::Result<()> {
        match &self.kind {
            Kind::Http(url) | Kind::Built { health: url, .. } => match testkit::http_get(url)? {
                (200, _) => Ok(()),
                (status, body) => anyhow::bail!("{url} answered {status}: {}", body.trim()),
            },
            Kind::Postgres(cluster) => cluster.ready(),
            Kind::Redis(port) => Redis::ping_port(*port),
            Kind::Missing(why) => anyhow::bail!("{why}"),
        }
    }

    /// What a healthy service still needs before others can use it: Postgres its database
    /// (created once). Returns a line to print if it did something.
    pub fn after_healthy(&self) -> anyhow::Result<Option<String>> {
        match &self.kind {
            Kind::Postgres(cluster) => {
                let created = !cluster.has_database(pg::DATABASE)?;
                let url = cluster.ensure_database(pg::DATABASE)?;
                super::monitoring::apply(cluster, pg::DATABASE)?;
                Ok(created.then(|| format!("created database {} ({url})", pg::DATABASE)))
            }
            Kind::Http(_) | Kind::Built { .. } | Kind::Redis(_) | Kind::Missing(_) => Ok(None),
        }
    }

    /// The signal that shuts the service down cleanly and promptly.
    pub fn stop_signal(&self) -> &'static str {
        match self.kind {
            Kind::Postgres(_) => "INT",
            Kind::Http(_) | Kind::Built { .. } | Kind::Redis(_) | Kind::Missing(_) => "TERM",
        }
    }

    /// How long the service gets after [`Native::stop_signal`] before SIGKILL.
    pub fn stop_grace(&self) -> Duration {
        match self.kind {
            Kind::Built { stop_grace, .. } => stop_grace,
            Kind::Http(_) | Kind::Postgres(_) | Kind::Redis(_) | Kind::Missing(_) => STOP_GRACE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_of_one_unit_are_read() {
        assert_eq!(duration_ms("15s").ok(), Some(15_000));
        assert_eq!(duration_ms("500ms").ok(), Some(500));
        assert_eq!(duration_ms("1m").ok(), Some(60_000));
        for bad in ["", "15", "s", "1m30s", "0s", "-1s", "1.5s"] {
            assert!(duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_api_exports_as_often_as_prometheus_scrapes() -> anyhow::Result<()> {
        let url = "postgres://postgres@127.0.0.1:5432/orgraph".to_string();
        let env = app_env(Service::Api, url.clone())?;
        let get = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("API_ADDR"), Some("127.0.0.1:8000"));
        assert_eq!(get("DATABASE_URL"), Some(url.as_str()));
        assert_eq!(get("OTEL_SERVICE_NAME"), Some("api"));
        assert_eq!(
            get("OTEL_METRIC_EXPORT_INTERVAL"),
            Some(scrape_interval_ms()?.to_string()).as_deref()
        );
        assert!(app_env(Service::Redis, url).is_err());
        Ok(())
    }

    #[test]
    fn the_worker_gets_its_health_address_exports_and_the_shared_rows() -> anyhow::Result<()> {
        let url = "postgres://postgres@127.0.0.1:5432/orgraph".to_string();
        let env = app_env(Service::Worker, url.clone())?;
        let get = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("WORKER_HEALTH_ADDR"), Some("127.0.0.1:8001"));
        assert_eq!(get("DATABASE_URL"), Some(url.as_str()));
        assert_eq!(get("EXPORT_DIR").map(PathBuf::from), Some(stack_dir().join("exports")));
        assert_eq!(get("OTEL_SERVICE_NAME"), Some("worker"));
        assert_eq!(get("OTEL_EXPORTER_OTLP_ENDPOINT"), Some("http://127.0.0.1:4317"));
        assert_eq!(get("API_ADDR"), None);
        assert_eq!(get("REDIS_URL"), None, "the worker does not use Redis");
        Ok(())
    }

    #[test]
    fn alertmanager_starts_before_prometheus_and_the_platform_last() {
        let at = |s: Service| Service::ALL.iter().position(|&x| x == s);
        assert!(at(Service::Alertmanager) < at(Service::Prometheus));
        assert_eq!(&Service::ALL[7..], &[Service::Api, Service::Worker]);
        assert!(at(Service::Jaeger) < at(Service::Collector), "the collector sends it spans");
        for service in Service::ALL {
            for needed in service.needs() {
                assert!(at(*needed) < at(service), "{service} needs {needed} started before it");
            }
        }
    }

    #[test]
    fn every_port_belongs_to_one_service() {
        let ports: Vec<u16> =
            Service::ALL.iter().flat_map(|s| s.ports()).map(|&(port, _)| port).collect();
        let distinct: std::collections::BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        assert!(Service::ALL.iter().all(|s| !s.ports().is_empty()));
        assert_eq!(Service::Collector.ports().len(), 5);
    }

    #[test]
    fn the_platform_is_built_with_one_cargo_invocation() {
        assert_eq!(
            cargo_build_args(&[("api", "api"), ("worker", "worker")]),
            ["build", "-p", "api", "-p", "worker", "--bin", "api", "--bin", "worker"]
        );
        assert_eq!(
            cargo_build_args(&[("worker", "worker")]),
            ["build", "-p", "worker", "--bin", "worker"]
        );
    }

    #[test]
    fn the_services_send_spans_as_env_says_and_the_collector_sends_them_to_jaeger()
    -> anyhow::Result<()> {
        let url = "postgres://postgres@127.0.0.1:5432/orgraph".to_string();
        for service in [Service::Api, Service::Worker] {
            let env = app_env(service, url.clone())?;
            for (key, value) in testkit::trace_env()? {
                let got = env.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
                assert_eq!(got, Some(&value), "{service}: {key}");
            }
        }
        let collector = collector()?;
        let endpoint = collector.env.iter().find(|(k, _)| *k == "JAEGER_OTLP_ENDPOINT");
        assert_eq!(
            endpoint.map(|(_, v)| v.as_str()),
            Some(format!("127.0.0.1:{JAEGER_OTLP_GRPC_PORT}").as_str())
        );
        let jaeger = jaeger()?;
        let get = |key: &str| jaeger.env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
        assert_eq!(get("JAEGER_OTLP_GRPC_ENDPOINT"), Some("127.0.0.1:14317".into()));
        assert_eq!(get("JAEGER_QUERY_HTTP_ENDPOINT"), Some("127.0.0.1:16686".into()));
        assert_eq!(get("JAEGER_BADGER_DIR").map(PathBuf::from), Some(stack_dir().join("jaeger")));
        assert_eq!(jaeger.health_target(), "http://127.0.0.1:13134/status");
        assert_eq!(jaeger_query_url(), "http://127.0.0.1:16686");
        // Every variable the stack gives Jaeger is one jaeger/config.yaml reads.
        let config = std::fs::read_to_string(testkit::repo_root().join("jaeger/config.yaml"))?;
        for (key, _) in &jaeger.env {
            assert!(config.contains(&format!("${{env:{key}:-")), "jaeger/config.yaml lacks {key}");
        }
        Ok(())
    }

    #[test]
    fn alertmanager_runs_the_repo_config_without_clustering() -> anyhow::Result<()> {
        let native = alertmanager()?;
        let args: Vec<String> =
            native.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let config = testkit::repo_root().join("alertmanager").join("alertmanager.yml");
        assert!(args.contains(&format!("--config.file={}", config.display())), "{args:?}");
        assert!(args.contains(&"--cluster.listen-address=".to_string()), "{args:?}");
        assert!(args.contains(&"--web.listen-address=127.0.0.1:9093".to_string()), "{args:?}");
        assert_eq!(native.health_target(), "http://127.0.0.1:9093/-/ready");
        Ok(())
    }
}
