//! The HA topology of docs/SCALING.md, natively: 2 APIs and 2 workers sending OTLP to an agent
//! collector (collector-config.yaml + collector/agent.yaml), which routes every resource to one of
//! 2 gateway collectors (collector/gateway.yaml); 2 Prometheus replicas (`replica` a and b, the
//! repo's prometheus.yml and rules) scraping the gateways, each with a Thanos sidecar uploading to
//! a filesystem bucket (thanos/bucket.yaml); Thanos Query deduplicating on `replica`, the Store
//! Gateway and the Compactor; 2 Alertmanagers in one cluster posting to the proof's own webhook
//! sink. Postgres, Redis and postgres_exporter are testkit's. Every listener is on a free
//! loopback port and every file under `target/e2e-ha`, so it runs beside the single-node live
//! proof, which holds the compose ports.
//!
//! The orchestrator's part (compose's DNS, Kubernetes' endpoints) is [`Membership`]'s: a thread
//! that checks the gateways' health every second and, when the set of healthy ones changes,
//! rewrites the agent's static resolver and Prometheus' file-SD list and reloads the agent
//! (SIGHUP).

use super::membership::Membership;
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testkit::process::{Output, Restartable, run};
use testkit::tokens::ApiTokens;
use testkit::{Postgres, PostgresExporter, Redis, free_port, http_get, tools};

/// How long a process may take to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a process gets after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Prometheus' block length here: the sidecars upload a block only once Prometheus cuts it, and
/// the proof needs uploaded blocks within minutes (compose keeps the default 2h).
pub const BLOCK_DURATION: &str = "2m";

/// The replicas of each kind, by name; `start`, `kill` and `stop` take these names.
pub const GATEWAYS: [&str; 2] = ["gateway-1", "gateway-2"];
pub const PROMETHEUS: [&str; 2] = ["prometheus-a", "prometheus-b"];
pub const SIDECARS: [&str; 2] = ["sidecar-a", "sidecar-b"];
pub const ALERTMANAGERS: [&str; 2] = ["alertmanager-1", "alertmanager-2"];
pub const APIS: [&str; 2] = ["api-1", "api-2"];
pub const WORKERS: [&str; 2] = ["worker-1", "worker-2"];

/// One process of the topology: how to start it and where it says it is healthy.
struct Proc {
    server: Restartable,
    command: Box<dyn Fn() -> Command + Send>,
    health: String,
}

/// Every port of the topology, picked once (distinct, free when picked).
#[derive(Debug, Clone)]
pub struct Ports {
    pub gateway_otlp: [u16; 2],
    pub gateway_exporter: [u16; 2],
    pub gateway_health: [u16; 2],
    pub gateway_telemetry: [u16; 2],
    pub agent_otlp_grpc: u16,
    pub agent_otlp_http: u16,
    pub agent_exporter: u16,
    pub agent_health: u16,
    pub agent_telemetry: u16,
    pub jaeger_unused: u16,
    pub prometheus: [u16; 2],
    pub sidecar_grpc: [u16; 2],
    pub sidecar_http: [u16; 2],
    pub store_grpc: u16,
    pub store_http: u16,
    pub query_grpc: u16,
    pub query_http: u16,
    pub compact_http: u16,
    pub alertmanager: [u16; 2],
    pub alertmanager_cluster: [u16; 2],
    pub api: [u16; 2],
    pub worker: [u16; 2],
    pub sink: u16,
}

impl Ports {
    fn pick() -> Ports {
        let mut seen = std::collections::BTreeSet::new();
        let mut next = || loop {
            let port = free_port();
            if seen.insert(port) {
                return port;
            }
        };
        let mut two = || [next(), next()];
        Ports {
            gateway_otlp: two(),
            gateway_exporter: two(),
            gateway_health: two(),
            gateway_telemetry: two(),
            prometheus: two(),
            sidecar_grpc: two(),
            sidecar_http: two(),
            alertmanager: two(),
            alertmanager_cluster: two(),
            api: two(),
            worker: two(),
            agent_otlp_grpc: next(),
            agent_otlp_http: next(),
            agent_exporter: next(),
            agent_health: next(),
            agent_telemetry: next(),
            jaeger_unused: next(),
            store_grpc: next(),
            store_http: next(),
            query_grpc: next(),
            query_http: next(),
            compact_http: next(),
            sink: next(),
        }
    }
}

/// The running topology; every process is stopped on drop.
pub struct HaStack {
    pub dir: PathBuf,
    pub ports: Ports,
    pub tokens: ApiTokens,
    pub postgres: Postgres,
    pub redis: Redis,
    _exporter: PostgresExporter,
    procs: BTreeMap<&'static str, Proc>,
    membership: Membership,
}

fn loopback(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

impl HaStack {
    /// Thanos Query's HTTP API (the Prometheus API, deduplicated).
    pub fn query_url(&self) -> String {
        url(self.ports.query_http)
    }

    /// Prometheus replica `i`'s HTTP API.
    pub fn prometheus_url(&self, i: usize) -> String {
        url(self.ports.prometheus[i])
    }

    /// API replica `i`'s base URL.
    pub fn api_url(&self, i: usize) -> String {
        url(self.ports.api[i])
    }

    /// Gateway `i`'s exporter (the series it serves).
    pub fn gateway_metrics_url(&self, i: usize) -> String {
        format!("{}/metrics", url(self.ports.gateway_exporter[i]))
    }

    /// Where Prometheus replica `i` keeps its TSDB.
    pub fn tsdb_dir(&self, i: usize) -> PathBuf {
        self.dir.join(PROMETHEUS[i]).join("data")
    }

    /// The filesystem bucket (thanos/bucket.yaml's `./bucket`, from the Thanos processes' working
    /// directory, [`HaStack::dir`]).
    pub fn bucket_dir(&self) -> PathBuf {
        self.dir.join("bucket")
    }

    /// The pid of a running process of the topology.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.procs.get(name).and_then(|p| p.server.pid())
    }

    /// Starts every process, dependencies first, and waits until each is healthy.
    pub fn up(dir: &Path) -> anyhow::Result<HaStack> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir.join("logs"))?;
        let dir = std::path::absolute(dir)?;
        let ports = Ports::pick();
        build_services()?;
        say("Postgres, Redis, postgres_exporter");
        let postgres = Postgres::start()?;
        let password = testkit::tokens::random()?;
        let password_file = dir.join("postgres-monitor-password");
        testkit::tokens::write_private(&password_file, &password)?;
        postgres.cluster().apply_monitoring_role(&postgres.url(), &password)?;
        let exporter = PostgresExporter::start(postgres.port(), &password_file)?;
        let redis = Redis::start()?;
        let tokens = ApiTokens::create(&dir.join("api-tokens"))?;
        let config = Config::write(&dir, &ports)?;
        let membership = Membership::start(
            ports.gateway_health.map(|p| format!("{}/", url(p))),
            GatewayFiles {
                resolver: config.gateways.clone(),
                exporter_targets: config
                    .prometheus_dir
                    .join("targets/otel-collector-exporter.yaml"),
                telemetry_targets: config.prometheus_dir.join("targets/otel-collector.yaml"),
            },
            ports.clone(),
        )?;
        let mut stack = HaStack {
            procs: BTreeMap::new(),
            dir,
            ports,
            tokens,
            _exporter: exporter,
            postgres,
            redis,
            membership,
        };
        stack.define(&config)?;
        for name in [
            GATEWAYS[0],
            GATEWAYS[1],
            "agent",
            ALERTMANAGERS[0],
            ALERTMANAGERS[1],
            PROMETHEUS[0],
            PROMETHEUS[1],
            SIDECARS[0],
            SIDECARS[1],
            "store",
            "query",
            "compactor",
            APIS[0],
            APIS[1],
            WORKERS[0],
            WORKERS[1],
        ] {
            stack.start(name)?;
        }
        stack.membership.watch();
        Ok(stack)
    }

    /// Starts `name` and waits until it is healthy.
    pub fn start(&mut self, name: &str) -> anyhow::Result<()> {
        let proc = self.procs.get_mut(name).with_context(|| format!("no process {name}"))?;
        let health = proc.health.clone();
        let command = (proc.command)();
        let started = std::time::Instant::now();
        proc.server.start(
            command,
            &format!("{name} healthy at {health}"),
            START_TIMEOUT,
            || match http_get(&health)? {
                (200, _) => Ok(()),
                (status, body) => anyhow::bail!("{health} answered {status}: {body}"),
            },
        )?;
        if name == "agent"
            && let Some(pid) = self.pid("agent")
        {
            self.membership.set_agent_pid(pid);
        }
        say(&format!("{name}: healthy after {:.1} s", started.elapsed().as_secs_f64()));
        Ok(())
    }

    /// SIGKILL to `name`: a crash, no grace.
    pub fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let proc = self.procs.get_mut(name).with_context(|| format!("no process {name}"))?;
        proc.server.stop("KILL", Duration::from_secs(10))?;
        say(&format!("{name}: killed"));
        Ok(())
    }

    /// SIGTERM to `name`, and its grace to finish.
    pub fn stop(&mut self, name: &str) -> anyhow::Result<()> {
        let proc = self.procs.get_mut(name).with_context(|| format!("no process {name}"))?;
        proc.server.stop("TERM", STOP_GRACE)?;
        say(&format!("{name}: stopped"));
        Ok(())
    }

    /// When the membership thread last changed the gateways, and which were in.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Defines every process (none started).
    fn define(&mut self, config: &Config) -> anyhow::Result<()> {
        let root = testkit::repo_root();
        let p = self.ports.clone();
        let dir = self.dir.clone();
        let otelcol = tools::require(&tools::otelcol_path()?, "otelcol")?;
        let prometheus = tools::require(&tools::prometheus_path()?, "prometheus")?;
        let alertmanager = tools::require(&tools::alertmanager_path()?, "alertmanager")?;
        let thanos = tools::require(&tools::thanos_path()?, "thanos")?;
        let bucket = root.join("thanos").join("bucket.yaml");
        let jaeger = loopback(p.jaeger_unused);

        for (i, &name) in GATEWAYS.iter().enumerate() {
            let (otelcol, config_file, jaeger) =
                (otelcol.clone(), root.join("collector").join("gateway.yaml"), jaeger.clone());
            let p = p.clone();
            self.define_one(name, p.gateway_health[i], "/", move || {
                let mut c = Command::new(&otelcol);
                c.arg("--config").arg(&config_file).envs([
                    ("COLLECTOR_OTLP_GRPC_ENDPOINT", loopback(p.gateway_otlp[i])),
                    ("COLLECTOR_PROMETHEUS_ENDPOINT", loopback(p.gateway_exporter[i])),
                    ("COLLECTOR_HEALTH_ENDPOINT", loopback(p.gateway_health[i])),
                    ("COLLECTOR_TELEMETRY_HOST", "127.0.0.1".into()),
                    ("COLLECTOR_TELEMETRY_PORT", p.gateway_telemetry[i].to_string()),
                    ("JAEGER_OTLP_ENDPOINT", jaeger.clone()),
                ]);
                c
            });
        }
        {
            let configs = [
                root.join("collector-config.yaml"),
                root.join("collector").join("agent.yaml"),
                config.gateways.clone(),
            ];
            let (otelcol, p, jaeger) = (otelcol.clone(), p.clone(), jaeger.clone());
            let (postgres, redis) = (self._exporter.endpoint(), loopback(self.redis.port()));
            let postgres_instance = loopback(self.postgres.port());
            self.define_one("agent", p.agent_health, "/", move || {
                let mut c = Command::new(&otelcol);
                for config in &configs {
                    c.arg("--config").arg(config);
                }
                c.envs([
                    ("COLLECTOR_OTLP_GRPC_ENDPOINT", loopback(p.agent_otlp_grpc)),
                    ("COLLECTOR_OTLP_HTTP_ENDPOINT", loopback(p.agent_otlp_http)),
                    ("COLLECTOR_PROMETHEUS_ENDPOINT", loopback(p.agent_exporter)),
                    ("COLLECTOR_HEALTH_ENDPOINT", loopback(p.agent_health)),
                    ("COLLECTOR_TELEMETRY_HOST", "127.0.0.1".into()),
                    ("COLLECTOR_TELEMETRY_PORT", p.agent_telemetry.to_string()),
                    ("JAEGER_OTLP_ENDPOINT", jaeger.clone()),
                    ("POSTGRES_EXPORTER_ENDPOINT", postgres.clone()),
                    ("POSTGRES_INSTANCE", postgres_instance.clone()),
                    ("REDIS_ENDPOINT", redis.clone()),
                    ("HOST_INSTANCE", "ha-proof-host".into()),
                ]);
                c
            });
        }
        for (i, &name) in ALERTMANAGERS.iter().enumerate() {
            let (binary, config_file, p) =
                (alertmanager.clone(), config.alertmanager.clone(), p.clone());
            let storage = dir.join(name);
            std::fs::create_dir_all(&storage)?;
            self.define_one(name, p.alertmanager[i], "/-/ready", move || {
                let mut c = Command::new(&binary);
                c.arg(flag("config.file", &config_file))
                    .arg(flag("storage.path", &storage))
                    .arg(format!("--web.listen-address={}", loopback(p.alertmanager[i])))
                    .arg(format!(
                        "--cluster.listen-address={}",
                        loopback(p.alertmanager_cluster[i])
                    ))
                    .arg(format!("--cluster.peer={}", loopback(p.alertmanager_cluster[1 - i])));
                c
            });
        }
        for (i, &name) in PROMETHEUS.iter().enumerate() {
            let (binary, config_file, p) =
                (prometheus.clone(), config.prometheus_dir.join("prometheus.yml"), p.clone());
            let data = self.tsdb_dir(i);
            self.define_one(name, p.prometheus[i], "/-/ready", move || {
                let mut c = Command::new(&binary);
                c.arg(flag("config.file", &config_file))
                    .arg(flag("storage.tsdb.path", &data))
                    .arg("--storage.tsdb.retention.time=30d")
                    .arg(format!("--storage.tsdb.min-block-duration={BLOCK_DURATION}"))
                    .arg(format!("--storage.tsdb.max-block-duration={BLOCK_DURATION}"))
                    .arg(format!("--web.listen-address={}", loopback(p.prometheus[i])))
                    .env("PROMETHEUS_REPLICA", ["a", "b"][i]);
                c
            });
        }
        let thanos_command = |thanos: &PathBuf, dir: &PathBuf, args: Vec<String>| {
            let mut c = Command::new(thanos);
            c.args(args).current_dir(dir);
            c
        };
        for (i, &name) in SIDECARS.iter().enumerate() {
            let (thanos, dir, p, bucket) = (thanos.clone(), dir.clone(), p.clone(), bucket.clone());
            let data = self.tsdb_dir(i);
            self.define_one(name, p.sidecar_http[i], "/-/ready", move || {
                thanos_command(
                    &thanos,
                    &dir,
                    vec![
                        "sidecar".into(),
                        format!("--tsdb.path={}", data.display()),
                        format!("--prometheus.url={}", url(p.prometheus[i])),
                        format!("--objstore.config-file={}", bucket.display()),
                        format!("--grpc-address={}", loopback(p.sidecar_grpc[i])),
                        format!("--http-address={}", loopback(p.sidecar_http[i])),
                    ],
                )
            });
        }
        {
            let (thanos, dir, p, bucket) = (thanos.clone(), dir.clone(), p.clone(), bucket.clone());
            self.define_one("store", p.store_http, "/-/ready", move || {
                thanos_command(
                    &thanos,
                    &dir,
                    vec![
                        "store".into(),
                        format!("--data-dir={}", dir.join("store").display()),
                        format!("--objstore.config-file={}", bucket.display()),
                        format!("--grpc-address={}", loopback(p.store_grpc)),
                        format!("--http-address={}", loopback(p.store_http)),
                        // New blocks seen within seconds (the default, 15m, suits a real bucket).
                        "--sync-block-duration=10s".into(),
                    ],
                )
            });
        }
        {
            let (thanos, dir, p) = (thanos.clone(), dir.clone(), p.clone());
            let dropped = xtask::ha::external_labels()?;
            self.define_one("query", p.query_http, "/-/ready", move || {
                let mut args = vec![
                    "query".into(),
                    format!("--grpc-address={}", loopback(p.query_grpc)),
                    format!("--http-address={}", loopback(p.query_http)),
                ];
                // `replica`, and the external labels the same on every replica (xtask::ha).
                for label in &dropped {
                    args.push(format!("--query.replica-label={label}"));
                }
                for port in [p.sidecar_grpc[0], p.sidecar_grpc[1], p.store_grpc] {
                    args.push(format!("--endpoint={}", loopback(port)));
                }
                thanos_command(&thanos, &dir, args)
            });
        }
        {
            let (thanos, dir, p, bucket) = (thanos.clone(), dir.clone(), p.clone(), bucket.clone());
            self.define_one("compactor", p.compact_http, "/-/ready", move || {
                let mut args = vec![
                    "compact".into(),
                    format!("--data-dir={}", dir.join("compact").display()),
                    format!("--objstore.config-file={}", bucket.display()),
                    format!("--http-address={}", loopback(p.compact_http)),
                    "--wait".into(),
                    "--wait-interval=30s".into(),
                ];
                args.extend(xtask::ha::COMPACTOR_RETENTION.iter().map(|f| f.to_string()));
                thanos_command(&thanos, &dir, args)
            });
        }
        let api = crate::stack::target_dir().join("debug").join("api");
        let worker = crate::stack::target_dir().join("debug").join("worker");
        let export_ms = crate::stack::scrape_interval_ms()?.to_string();
        let database = self.postgres.url();
        let shared = move |service: &str, p: &Ports| {
            vec![
                ("DATABASE_URL", database.clone()),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", url(p.agent_otlp_grpc)),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_string()),
                ("OTEL_SERVICE_NAME", service.to_string()),
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "service.namespace=orgraph,deployment.environment.name=native-ha".to_string(),
                ),
                ("OTEL_METRIC_EXPORT_INTERVAL", export_ms.clone()),
                // No trace store in this topology (two cores): the single-node proof follows
                // spans; the agent's traces pipeline is checked by `otelcol validate`.
                ("OTEL_TRACES_EXPORTER", "none".to_string()),
                ("LOG_FORMAT", "json".to_string()),
            ]
        };
        for (i, &name) in APIS.iter().enumerate() {
            let mut env = shared("api", &p);
            env.extend([
                ("API_ADDR", loopback(p.api[i])),
                ("REDIS_URL", self.redis.url()),
                ("API_TOKENS_FILE", self.tokens.file.display().to_string()),
            ]);
            let api = api.clone();
            self.define_one(name, p.api[i], "/health/ready", move || {
                let mut c = Command::new(&api);
                c.envs(env.iter().cloned());
                c
            });
        }
        for (i, &name) in WORKERS.iter().enumerate() {
            let exports = dir.join("exports");
            std::fs::create_dir_all(&exports)?;
            let mut env = shared("worker", &p);
            env.extend([
                ("WORKER_HEALTH_ADDR", loopback(p.worker[i])),
                ("EXPORT_DIR", exports.display().to_string()),
            ]);
            let worker = worker.clone();
            self.define_one(name, p.worker[i], "/health/ready", move || {
                let mut c = Command::new(&worker);
                c.envs(env.iter().cloned());
                c
            });
        }
        Ok(())
    }

    fn define_one(
        &mut self,
        name: &'static str,
        port: u16,
        health_path: &str,
        command: impl Fn() -> Command + Send + 'static,
    ) {
        let log = self.dir.join("logs").join(format!("{name}.log"));
        self.procs.insert(
            name,
            Proc {
                server: Restartable::new(name, port, log),
                command: Box::new(command),
                health: format!("{}{health_path}", url(port)),
            },
        );
    }
}

impl Drop for HaStack {
    fn drop(&mut self) {
        self.membership.stop();
        // The services first, so they flush while the collectors still run.
        for name in WORKERS.iter().chain(&APIS) {
            if let Some(proc) = self.procs.get_mut(name) {
                let _ = proc.server.stop("TERM", STOP_GRACE);
            }
        }
        for proc in self.procs.values_mut() {
            let _ = proc.server.stop("TERM", Duration::from_secs(10));
        }
    }
}

/// The files the membership thread keeps up to date.
pub struct GatewayFiles {
    /// The agent's `--config` with the static resolver of both loadbalancing exporters.
    pub resolver: PathBuf,
    /// Prometheus' file-SD list of the gateways' exporters (job otel-collector-exporter).
    pub exporter_targets: PathBuf,
    /// Prometheus' file-SD list of the collectors' own telemetry (job otel-collector): the agent
    /// and the gateways.
    pub telemetry_targets: PathBuf,
}

/// The configuration the topology writes: a copy of prometheus/ (config and rules as they are;
/// the targets are this topology's), Alertmanager's config with its webhooks moved to the proof's
/// sink, and the agent's gateway list.
struct Config {
    prometheus_dir: PathBuf,
    alertmanager: PathBuf,
    gateways: PathBuf,
}

impl Config {
    fn write(dir: &Path, p: &Ports) -> anyhow::Result<Config> {
        let root = testkit::repo_root();
        let prometheus_dir = dir.join("prometheus");
        // The rules as they are; the targets are this topology's own.
        crate::e2e::copy_prometheus(&prometheus_dir, &["rules"])?;
        std::fs::create_dir_all(prometheus_dir.join("targets"))?;
        let targets = |ports: &[u16]| {
            let list: Vec<String> = ports.iter().map(|p| format!("\"{}\"", loopback(*p))).collect();
            format!("# written by the HA proof\n- targets: [{}]\n", list.join(", "))
        };
        for (file, ports) in [
            ("probe-api.yaml", p.api.to_vec()),
            ("probe-worker.yaml", p.worker.to_vec()),
            ("prometheus.yaml", p.prometheus.to_vec()),
            ("alertmanager.yaml", p.alertmanager.to_vec()),
        ] {
            std::fs::write(prometheus_dir.join("targets").join(file), targets(&ports))?;
        }
        let alertmanager = dir.join("alertmanager.yml");
        let text = std::fs::read_to_string(root.join("alertmanager").join("alertmanager.yml"))?;
        anyhow::ensure!(
            text.contains(crate::e2e::sink::ADDR),
            "alertmanager/alertmanager.yml no longer posts to {}",
            crate::e2e::sink::ADDR
        );
        std::fs::write(&alertmanager, text.replace(crate::e2e::sink::ADDR, &loopback(p.sink)))?;
        Ok(Config { prometheus_dir, alertmanager, gateways: dir.join("gateways.yaml") })
    }
}

/// `cargo build` of the API and the worker (the live proof beside this one may build them too:
/// cargo's lock makes one wait for the other).
fn build_services() -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").filter(|c| !c.is_empty()).unwrap_or("cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "-p", "api", "--bin", "api", "-p", "worker", "--bin", "worker"])
        .current_dir(testkit::repo_root());
    run("cargo build (api, worker)", &mut command, Output::Inherit, Duration::from_secs(30 * 60))
}

fn flag(name: &str, path: &Path) -> String {
    format!("--{name}={}", path.display())
}

pub fn say(text: &str) {
    println!("    [ha] {text}");
}
