//! A real OpenTelemetry Collector for tests: the binary built from `collector/builder-config.yaml`,
//! running the repo's own `collector-config.yaml` (never a copy) with every listener moved to a
//! free loopback port through the config's `COLLECTOR_*` variables (and, for fault tests, any other
//! of its variables, such as a tiny memory limit).

use crate::process::Daemon;
use crate::scratch::ScratchDir;
use crate::{free_port, http_get, tools};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// How long the collector may take to report healthy.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running collector; killed on drop.
#[derive(Debug)]
pub struct Collector {
    daemon: Daemon,
    ports: Ports,
    // Dropped after `daemon` (fields drop in order): the log outlives the process.
    _dir: ScratchDir,
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    otlp_grpc: u16,
    otlp_http: u16,
    prometheus: u16,
    health: u16,
    telemetry: u16,
}

impl Collector {
    /// Starts the collector and returns once its health endpoint answers 200. Fails with the
    /// collector's log if it exits first or is not healthy within 30 s.
    pub fn start() -> anyhow::Result<Collector> {
        Collector::start_with(&[])
    }

    /// [`Collector::start`] with more of the config's variables set, e.g.
    /// `[("COLLECTOR_MEMORY_LIMIT_MIB", "2")]`; the listen addresses are always the test's own.
    pub fn start_with(vars: &[(&str, &str)]) -> anyhow::Result<Collector> {
        let binary = tools::require(&tools::otelcol_path()?, "otelcol")?;
        let config = crate::repo_root().join("collector-config.yaml");
        let ports = Ports::pick();
        let dir = ScratchDir::new("collector")?;
        let loopback = |port: u16| format!("127.0.0.1:{port}");
        let mut command = Command::new(&binary);
        command.arg("--config").arg(&config).envs(vars.iter().copied());
        command
            .env("COLLECTOR_OTLP_GRPC_ENDPOINT", loopback(ports.otlp_grpc))
            .env("COLLECTOR_OTLP_HTTP_ENDPOINT", loopback(ports.otlp_http))
            .env("COLLECTOR_PROMETHEUS_ENDPOINT", loopback(ports.prometheus))
            .env("COLLECTOR_HEALTH_ENDPOINT", loopback(ports.health))
            .env("COLLECTOR_TELEMETRY_HOST", "127.0.0.1")
            .env("COLLECTOR_TELEMETRY_PORT", ports.telemetry.to_string());
        let daemon = Daemon::spawn("collector", command, &dir.path().join("otelcol.log"))?;
        let mut collector = Collector { daemon, ports, _dir: dir };
        let health = collector.health_url();
        collector.daemon.wait_ready(
            &format!("collector health at {health}"),
            STARTUP_TIMEOUT,
            || match http_get(&health)? {
                (200, _) => Ok(()),
                (status, body) => anyhow::bail!("health answered {status}: {body}"),
            },
        )?;
        Ok(collector)
    }

    /// The OTLP/gRPC endpoint, `http://127.0.0.1:<port>`.
    pub fn otlp_grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.otlp_grpc)
    }

    /// The OTLP/HTTP endpoint (base URL, without `/v1/metrics`), `http://127.0.0.1:<port>`.
    pub fn otlp_http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.otlp_http)
    }

    /// The `prometheus` exporter's scrape URL: the services' metrics.
    pub fn prometheus_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.ports.prometheus)
    }

    /// The `health_check` extension's URL.
    pub fn health_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.ports.health)
    }

    /// The collector's own telemetry (`otelcol_*` metrics).
    pub fn telemetry_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.ports.telemetry)
    }

    /// One scrape of [`Collector::prometheus_url`]; any status but 200 is an error.
    pub fn scrape(&self) -> anyhow::Result<String> {
        get_ok(&self.prometheus_url())
    }

    /// One scrape of [`Collector::telemetry_url`] (the collector's own `otelcol_*` metrics); any
    /// status but 200 is an error.
    pub fn scrape_telemetry(&self) -> anyhow::Result<String> {
        get_ok(&self.telemetry_url())
    }

    /// The collector's output so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// The collector's pid, e.g. to check that it is gone after a drop.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }
}

/// The body of a GET of `url`; any status but 200 is an error.
fn get_ok(url: &str) -> anyhow::Result<String> {
    match http_get(url)? {
        (200, body) => Ok(body),
        (status, body) => anyhow::bail!("GET {url} answered {status}: {body}"),
    }
}

impl Ports {
    /// Five distinct free ports.
    fn pick() -> Ports {
        let mut seen = BTreeSet::new();
        let mut next = || loop {
            let port = free_port();
            if seen.insert(port) {
                return port;
            }
        };
        Ports {
            otlp_grpc: next(),
            otlp_http: next(),
            prometheus: next(),
            health: next(),
            telemetry: next(),
        }
    }
}
