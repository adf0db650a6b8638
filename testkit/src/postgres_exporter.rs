//! postgres_exporter for tests: the binary `cargo xtask tools` builds, on a free loopback port,
//! reading a test's Postgres as the monitoring role ([`crate::pg::MONITOR_USER`]), so the
//! collector's `prometheus/postgres` receiver has the real target it has in the stack.

use crate::process::Daemon;
use crate::scratch::ScratchDir;
use crate::{free_port, http_get, pg, tools};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The flags every way of running the exporter passes (the native stack uses this function;
/// compose spells the same two, with the file mounted): the built-in connection query off, ours
/// (`postgres/exporter-queries.yaml`: by database and state only, no client-set label) on.
pub fn args() -> Vec<String> {
    let queries = crate::repo_root().join("postgres").join("exporter-queries.yaml");
    vec![
        "--disable-default-metrics".to_string(),
        format!("--extend.query-path={}", queries.display()),
    ]
}

/// How long the exporter may take to answer on `/metrics`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running postgres_exporter; killed on drop.
#[derive(Debug)]
pub struct PostgresExporter {
    daemon: Daemon,
    port: u16,
    // Dropped after `daemon` (fields drop in order): the log outlives the process.
    _dir: ScratchDir,
}

impl PostgresExporter {
    /// Starts postgres_exporter on `127.0.0.1:<free port>`, reading database `orgraph` of the
    /// Postgres on `127.0.0.1:postgres_port` as [`pg::MONITOR_USER`] with the password in
    /// `password_file` (the way compose and the native stack give it), and returns once its
    /// `/metrics` answers 200. Whether it could log in is what its `pg_up` says. Fails saying to
    /// run `cargo xtask tools` if the binary is missing, or with its log if it does not answer
    /// within 30 s.
    pub fn start(postgres_port: u16, password_file: &Path) -> anyhow::Result<PostgresExporter> {
        let binary = tools::require(&tools::postgres_exporter_path()?, "postgres_exporter")?;
        let dir = ScratchDir::new("postgres-exporter")?;
        let port = free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(args())
            .env(
                "DATA_SOURCE_URI",
                format!("127.0.0.1:{postgres_port}/{}?sslmode=disable", pg::DATABASE),
            )
            .env("DATA_SOURCE_USER", pg::MONITOR_USER)
            .env("DATA_SOURCE_PASS_FILE", password_file)
            .current_dir(dir.path());
        let daemon =
            Daemon::spawn("postgres_exporter", command, &dir.path().join("postgres_exporter.log"))?;
        let mut exporter = PostgresExporter { daemon, port, _dir: dir };
        let url = exporter.metrics_url();
        exporter.daemon.wait_ready(
            &format!("postgres_exporter to answer on {url}"),
            STARTUP_TIMEOUT,
            || match http_get(&url)? {
                (200, _) => Ok(()),
                (status, body) => anyhow::bail!("{url} answered {status}: {body}"),
            },
        )?;
        Ok(exporter)
    }

    /// `127.0.0.1:<port>`: the scrape target (`POSTGRES_EXPORTER_ENDPOINT` of the collector).
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:<port>/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.endpoint())
    }

    /// Everything the exporter logged so far.
    pub fn log(&self) -> String {
        self.daemon.log()
    }
}
