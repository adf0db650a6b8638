//! The services of the stack, named as in compose, and how each native one is started: binary,
//! arguments, environment, listen ports and health URL. Ports are compose's, bound to 127.0.0.1.

use anyhow::Context;
use std::ffi::OsString;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use testkit::tools;

/// A service of the stack, as compose names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    /// The database (org graph, results, job queue).
    Postgres,
    /// The shared second-level cache.
    Redis,
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
    /// Which service.
    pub service: Service,
    /// Absolute path of the binary (also how a running process is recognised).
    pub binary: PathBuf,
    args: Vec<OsString>,
    env: Vec<(&'static str, String)>,
    ports: Vec<u16>,
    dirs: Vec<PathBuf>,
    /// GET this; 200 means healthy.
    pub health_url: String,
    /// `<repo>/target/stack/<service>.log`.
    pub log_path: PathBuf,
    /// `<repo>/target/stack/<service>.pid`.
    pub pid_path: PathBuf,
}

/// Written to a service's log before each start, so a failure shows only this start's lines.
pub const START_MARKER: &str = "--- cargo xtask stack: starting ";

/// `<repo>/target/stack`: logs, pid files and data of the native stack.
pub fn stack_dir() -> PathBuf {
    testkit::repo_root().join("target").join("stack")
}

impl Service {
    /// In compose order: dependencies first, so `up` starts in this order and `down` reverses it.
    pub const ALL: [Service; 7] = [
        Service::Postgres,
        Service::Redis,
        Service::Collector,
        Service::Prometheus,
        Service::Alertmanager,
        Service::Api,
        Service::Worker,
    ];

    /// How to run it natively, or `None` if the native stack does not have it yet.
    pub fn native(self) -> anyhow::Result<Option<Native>> {
        match self {
            Service::Collector => collector().map(Some),
            Service::Prometheus => prometheus().map(Some),
            _ => Ok(None),
        }
    }

    /// Why [`Service::native`] is `None`.
    pub fn not_native_reason(self) -> &'static str {
        match self {
            Service::Postgres | Service::Redis => {
                "not part of the native stack yet (arrives with the issue that adds the worker's \
                 queue and the cache)"
            }
            Service::Alertmanager => {
                "not part of the native stack yet (arrives with the issue that adds the alerts)"
            }
            Service::Api => "not part of the native stack yet (arrives with the API issue)",
            Service::Worker => "not part of the native stack yet (arrives with the worker issue)",
            Service::Collector | Service::Prometheus => "part of the native stack",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Service::Postgres => "postgres",
            Service::Redis => "redis",
            Service::Collector => "collector",
            Service::Prometheus => "prometheus",
            Service::Alertmanager => "alertmanager",
            Service::Api => "api",
            Service::Worker => "worker",
        };
        f.write_str(name)
    }
}

/// The collector with `collector-config.yaml`, its listeners moved to loopback.
fn collector() -> anyhow::Result<Native> {
    let config = testkit::repo_root().join("collector-config.yaml");
    let mut native = Native::new(Service::Collector, tools::otelcol_path()?)?;
    native.args = vec!["--config".into(), config.into()];
    native.env = vec![
        ("COLLECTOR_OTLP_GRPC_ENDPOINT", "127.0.0.1:4317".into()),
        ("COLLECTOR_OTLP_HTTP_ENDPOINT", "127.0.0.1:4318".into()),
        ("COLLECTOR_PROMETHEUS_ENDPOINT", "127.0.0.1:8889".into()),
        ("COLLECTOR_HEALTH_ENDPOINT", "127.0.0.1:13133".into()),
        ("COLLECTOR_TELEMETRY_HOST", "127.0.0.1".into()),
        ("COLLECTOR_TELEMETRY_PORT", "8888".into()),
    ];
    native.ports = vec![4317, 4318, 8889, 8888, 13133];
    native.health_url = "http://127.0.0.1:13133/".into();
    Ok(native)
}

/// Prometheus with `prometheus/prometheus.yml`, data under `target/stack/prometheus/data`.
fn prometheus() -> anyhow::Result<Native> {
    let config = testkit::repo_root().join("prometheus").join("prometheus.yml");
    let data = stack_dir().join("prometheus").join("data");
    let mut native = Native::new(Service::Prometheus, tools::prometheus_path()?)?;
    let flag = |name: &str, value: &std::path::Path| {
        let mut arg = OsString::from(format!("--{name}="));
        arg.push(value);
        arg
    };
    native.args = vec![
        flag("config.file", &config),
        flag("storage.tsdb.path", &data),
        "--storage.tsdb.retention.time=30d".into(),
        "--web.listen-address=127.0.0.1:9090".into(),
        "--web.enable-lifecycle".into(),
    ];
    native.ports = vec![9090];
    native.dirs = vec![data];
    native.health_url = "http://127.0.0.1:9090/-/ready".into();
    Ok(native)
}

impl Native {
    fn new(service: Service, binary: PathBuf) -> anyhow::Result<Native> {
        // Not required to exist here: `status` and `down` work without it.
        let dir = stack_dir();
        Ok(Native {
            service,
            binary,
            args: Vec::new(),
            env: Vec::new(),
            ports: Vec::new(),
            dirs: Vec::new(),
            health_url: String::new(),
            log_path: dir.join(format!("{service}.log")),
            pid_path: dir.join(format!("{service}.pid")),
        })
    }

    /// Fails naming the first listen port something else already holds.
    pub fn check_ports_free(&self) -> anyhow::Result<()> {
        for &port in &self.ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).with_context(|| {
                format!(
                    "{}: 127.0.0.1:{port} is already in use by a process this tool did not start \
                     (a compose stack, or a stack run from another clone?)",
                    self.service
                )
            })?;
        }
        Ok(())
    }

    /// Spawns the service detached (own process group, output appended to its log) and writes
    /// its pid file.
    pub fn spawn(&self) -> anyhow::Result<Child> {
        let name = self.service;
        tools::require(&self.binary, &name.to_string())?;
        for dir in self.dirs.iter().chain([&stack_dir()]) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        writeln!(log, "{START_MARKER}{name} ---")
            .with_context(|| format!("writing {}", self.log_path.display()))?;
        let err_log = log.try_clone().context("duplicating the log file handle")?;
        let child = Command::new(&self.binary)
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

    /// `Ok` if the health URL answers 200.
    pub fn health(&self) -> anyhow::Result<()> {
        match testkit::http_get(&self.health_url)? {
            (200, _) => Ok(()),
            (status, body) => {
                anyhow::bail!("{} answered {status}: {}", self.health_url, body.trim())
            }
        }
    }
}
