//! A real, throwaway PostgreSQL server for tests: a fresh cluster in a scratch directory, on a free
//! loopback port, with the platform's `orgraph` database. Fault tests stop it mid-test and start it
//! again on the same port and data, so a client sees the very server it lost come back.

use crate::free_port;
use crate::pg::{self, Cluster};
use crate::process::Restartable;
use crate::scratch::ScratchDir;
use std::time::Duration;

/// How long the server may take to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a fast shutdown (SIGINT) may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an immediate shutdown (SIGQUIT, on drop) may take before the server is killed.
const DROP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or deliberately stopped) Postgres; shut down and deleted on drop (kept, with its log,
/// while the thread panics).
#[derive(Debug)]
pub struct Postgres {
    server: Restartable,
    cluster: Cluster,
    // Dropped last (fields drop in order, after `Drop::drop` stopped the server).
    _dir: ScratchDir,
}

impl Postgres {
    /// Initialises a cluster (superuser `postgres`, trust authentication, no fsync), starts it on
    /// `127.0.0.1:<free port>` and creates the database `orgraph`. When this process is root the
    /// server runs as the `postgres` system user. Fails with the server's log if it exits or is
    /// not ready within 30 s.
    pub fn start() -> anyhow::Result<Postgres> {
        let dir = ScratchDir::new("postgres")?;
        let cluster =
            Cluster::new(&dir.path().join("data"), dir.path(), free_port())?.without_durability();
        cluster.init()?;
        let server = Restartable::new("postgres", cluster.port(), dir.path().join("postgres.log"));
        let mut postgres = Postgres { server, cluster, _dir: dir };
        postgres.launch()?;
        postgres.cluster.ensure_database(pg::DATABASE)?;
        Ok(postgres)
    }

    /// `postgres://postgres@127.0.0.1:<port>/orgraph`.
    pub fn url(&self) -> String {
        self.cluster.url(pg::DATABASE)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`, the maintenance database.
    pub fn admin_url(&self) -> String {
        self.cluster.url("postgres")
    }

    /// The TCP port on 127.0.0.1; the same across [`Postgres::stop`] and
    /// [`Postgres::start_again`].
    pub fn port(&self) -> u16 {
        self.cluster.port()
    }

    /// The server's process id, `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    /// The cluster (binaries, data directory, `psql`).
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Everything the server logged so far, over all its starts.
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Creates database `name` (a plain lower-case identifier, unique per test) unless it exists,
    /// and returns its URL: tests of one binary can share one server, each in its own database.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        self.cluster.ensure_database(name)
    }

    /// Runs `sql` with `psql` against `url` and returns the unaligned, tuples-only output.
    pub fn psql(&self, url: &str, sql: &str) -> anyhow::Result<String> {
        self.cluster.psql(url, sql)
    }

    /// Fast shutdown (SIGINT: clients are disconnected, nothing committed is lost), then waits
    /// until the port refuses connections. A stopped server stays stopped.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.server.stop("INT", STOP_TIMEOUT)
    }

    /// Starts the stopped server again, on the same port and data, and waits until it is ready.
    /// Fails if it runs already.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.launch()
    }

    /// [`Postgres::stop`], then [`Postgres::start_again`].
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// Spawns the server and waits until it is ready; fails if it runs already.
    fn launch(&mut self) -> anyhow::Result<()> {
        let cluster = &self.cluster;
        let what = format!("postgres to accept connections on port {}", cluster.port());
        self.server.start(cluster.server_command()?, &what, STARTUP_TIMEOUT, || cluster.ready())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.server.take() {
            // Immediate shutdown: the postmaster takes its backends down with it and releases its
            // shared memory, which a plain SIGKILL would leave behind.
            let _ = daemon.terminate("QUIT", DROP_TIMEOUT);
        }
    }
}
