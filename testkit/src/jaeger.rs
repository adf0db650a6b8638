//! Jaeger v2 for tests: the binary `cargo xtask tools` builds, running the repo's own
//! `jaeger/config.yaml` (never a copy) with every listener on a free loopback port and its Badger
//! store in a scratch directory, so a test can send spans through the real collector and read
//! them back from the query API the way Grafana does.

use crate::process::Daemon;
use crate::scratch::ScratchDir;
use crate::{free_port, http_get, tools};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

/// How long Jaeger may take to report healthy (Badger opens its store first).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Jaeger; killed on drop.
#[derive(Debug)]
pub struct Jaeger {
    daemon: Daemon,
    ports: Ports,
    // Dropped after `daemon` (fields drop in order): the log and the store outlive the process.
    _dir: ScratchDir,
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    otlp_grpc: u16,
    query_http: u16,
    query_grpc: u16,
    health: u16,
}

impl Jaeger {
    /// Starts Jaeger and returns once its health endpoint (`/status`) answers 200. Fails saying
    /// to run `cargo xtask tools` if the binary is missing, or with Jaeger's log if it exits first
    /// or is not healthy within 60 s.
    pub fn start() -> anyhow::Result<Jaeger> {
        let binary = tools::require(&tools::jaeger_path()?, "jaeger")?;
        let config = crate::repo_root().join("jaeger").join("config.yaml");
        let ports = Ports::pick();
        let dir = ScratchDir::new("jaeger")?;
        let loopback = |port: u16| format!("127.0.0.1:{port}");
        let mut command = Command::new(&binary);
        command
            .arg("--config")
            .arg(&config)
            .env("JAEGER_OTLP_GRPC_ENDPOINT", loopback(ports.otlp_grpc))
            .env("JAEGER_QUERY_HTTP_ENDPOINT", loopback(ports.query_http))
            .env("JAEGER_QUERY_GRPC_ENDPOINT", loopback(ports.query_grpc))
            .env("JAEGER_HEALTH_ENDPOINT", loopback(ports.health))
            .env("JAEGER_BADGER_DIR", dir.path().join("badger"))
            .current_dir(dir.path());
        let daemon = Daemon::spawn("jaeger", command, &dir.path().join("jaeger.log"))?;
        let mut jaeger = Jaeger { daemon, ports, _dir: dir };
        let health = jaeger.health_url();
        jaeger.daemon.wait_ready(&format!("jaeger health at {health}"), STARTUP_TIMEOUT, || {
            match http_get(&health)? {
                (200, _) => Ok(()),
                (status, body) => anyhow::bail!("health answered {status}: {body}"),
            }
        })?;
        Ok(jaeger)
    }

    /// Its OTLP/gRPC receiver as the collector's `JAEGER_OTLP_ENDPOINT` takes it: `127.0.0.1:<port>`.
    pub fn otlp_grpc_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.ports.otlp_grpc)
    }

    /// The query service's base URL (UI and HTTP API), `http://127.0.0.1:<port>`.
    pub fn query_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.query_http)
    }

    /// The health endpoint, `http://127.0.0.1:<port>/status`.
    pub fn health_url(&self) -> String {
        format!("http://127.0.0.1:{}/status", self.ports.health)
    }

    /// Jaeger's output so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Jaeger's pid, e.g. to check that it is gone after a drop.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }
}

impl Ports {
    /// Four distinct free ports.
    fn pick() -> Ports {
        let mut seen = BTreeSet::new();
        let mut next = || loop {
            let port = free_port();
            if seen.insert(port) {
                return port;
            }
        };
        Ports { otlp_grpc: next(), query_http: next(), query_grpc: next(), health: next() }
    }
}
