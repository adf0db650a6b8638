//! Faults the matrix injects that are not a process stopped or killed: a transaction that holds a
//! table locked, short locks again and again, and an operator's broken edits to Prometheus' rules
//! and configuration.

use super::prom;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The `application_name` of the locking transaction's session, so it can be found and ended.
const LOCK_APP: &str = "orgraph-e2e-lock";

/// A transaction holding an exclusive lock on a table until [`TableLock::release`]: what a
/// migration or a batch job stuck inside its transaction does to the work that needs the table.
pub struct TableLock {
    table: &'static str,
    session: Child,
    /// The Postgres port on 127.0.0.1.
    port: u16,
}

impl TableLock {
    /// Takes the lock and returns once Postgres has granted it.
    pub fn take(table: &'static str) -> anyhow::Result<TableLock> {
        TableLock::take_on(super::POSTGRES_PORT, table)
    }

    /// [`TableLock::take`] on the platform's database on 127.0.0.1:`port`.
    pub fn take_on(port: u16, table: &'static str) -> anyhow::Result<TableLock> {
        let mut command = super::psql_on(
            port,
            &[
                "-qc",
                &format!(
                    "BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3600); COMMIT;"
                ),
            ],
        )?;
        let session = command
            .env("PGAPPNAME", LOCK_APP)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let lock = TableLock { table, session, port };
        let held = format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = '{table}' AND l.mode = 'AccessExclusiveLock' AND l.granted"
        );
        testkit::wait_for(
            &format!("the lock on {table} to be granted"),
            Duration::from_secs(20),
            || Ok(super::sql_on(port, &held).is_ok_and(|n| n == "1").then_some(())),
        )?;
        Ok(lock)
    }

    /// Ends the transaction (its sleep is cancelled, so it rolls back) and the lock with it.
    pub fn release(mut self) -> anyhow::Result<()> {
        // The function in the select list: in the WHERE clause Postgres may call it for every
        // session before filtering, cancelling them all (this query included).
        let cancelled = super::sql_on(
            self.port,
            &format!(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{LOCK_APP}'"
            ),
        )?;
        anyhow::ensure!(
            cancelled == "t",
            "expected to cancel the one session locking {}, cancelled {cancelled}",
            self.table
        );
        // psql reports the cancelled statement and exits non-zero: that is the point.
        let _ = self.session.wait()?;
        Ok(())
    }
}

/// Short exclusive locks on a table, one after another until [`LockBursts::stop`]: a batch job that
/// locks the table for `held` every `every` (a periodic rewrite, a migration retried in a loop).
/// Queries on the table wait up to `held` on a connection they already have: the API slows down,
/// and as long as the pool has connections to spare, nothing fails. A burst waits at most 1 s for
/// its lock (`lock_timeout`) and is skipped otherwise: queued behind a long reader, it would hold
/// every later query on the table for as long.
pub struct LockBursts {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<(u32, u32)>>,
}

impl LockBursts {
    /// Starts the bursts in a background thread.
    pub fn start(table: &'static str, held: Duration, every: Duration) -> LockBursts {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut bursts, mut skipped) = (0, 0);
            while !stopping.load(Ordering::Relaxed) {
                let started = Instant::now();
                let mut command = super::psql(&[
                    "-qc",
                    &format!(
                        "SET lock_timeout = '1s'; BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; \
                         SELECT pg_sleep({}); COMMIT;",
                        held.as_secs_f64()
                    ),
                ])?;
                let output = command.output()?;
                if output.status.success() {
                    bursts += 1;
                } else {
                    let stderr = String::from_utf8_lossy(&output.stderr);
                    anyhow::ensure!(
                        stderr.contains("lock timeout"),
                        "a lock burst on {table} failed: {}: {stderr}",
                        output.status
                    );
                    skipped += 1;
                }
                std::thread::sleep(every.saturating_sub(started.elapsed()));
            }
            Ok((bursts, skipped))
        });
        LockBursts { stop, thread }
    }

    /// Stops after the burst under way; returns how many there were, and how many were skipped.
    pub fn stop(self) -> anyhow::Result<(u32, u32)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().map_err(|_| anyhow::anyhow!("the lock bursts' thread panicked"))?
    }
}

/// The alerting rule file an operator deploys by mistake: it passes `promtool check rules`, but
/// its join is not one-to-one (`up` has a series per target, matched on no label), so every
/// evaluation fails with "many-to-many matching not allowed".
const BROKEN_RULES: &str = r#"groups:
  - name: deployed.by.mistake
    rules:
      - record: instance:process_uptime_seconds:per_target
        expr: process_uptime_seconds / on () up
"#;

/// A scrape job copied and not renamed: `prometheus.yml` no longer loads ("found multiple scrape
/// configs with job name").
const DUPLICATE_JOB: &str = "
  - job_name: prometheus
    static_configs:
      - targets: [127.0.0.1:9090]
";

/// The live proof's copy of `prometheus/` that Prometheus runs, broken and put right.
pub struct PrometheusConfig {
    config: PathBuf,
    original: String,
    rules: PathBuf,
}

impl PrometheusConfig {
    /// The copy whose `prometheus.yml` is `config`.
    pub fn new(config: &Path) -> anyhow::Result<PrometheusConfig> {
        let dir = config
            .parent()
            .ok_or_else(|| anyhow::anyhow!("{} has no directory", config.display()))?;
        Ok(PrometheusConfig {
            config: config.to_path_buf(),
            original: std::fs::read_to_string(config)?,
            rules: dir.join("rules").join("deployed-by-mistake.yaml"),
        })
    }

    /// Deploys [`BROKEN_RULES`]: the reload succeeds, the rule fails at every evaluation.
    pub fn deploy_broken_rule(&self) -> anyhow::Result<()> {
        std::fs::write(&self.rules, BROKEN_RULES)?;
        let (loaded, answer) = prom::reload()?;
        anyhow::ensure!(loaded, "Prometheus refused the rule file that only fails later: {answer}");
        Ok(())
    }

    /// Edits `prometheus.yml` into one that does not load and asks for a reload, which fails:
    /// Prometheus keeps running what it had.
    pub fn break_config(&self) -> anyhow::Result<()> {
        std::fs::write(&self.config, format!("{}{DUPLICATE_JOB}", self.original))?;
        let (loaded, answer) = prom::reload()?;
        anyhow::ensure!(!loaded, "Prometheus loaded a config with a duplicate scrape job");
        println!("    Prometheus refused the edited config: {}", answer.trim());
        Ok(())
    }

    /// Puts the original config back, removes the broken rule, and reloads.
    pub fn restore(&self) -> anyhow::Result<()> {
        std::fs::write(&self.config, &self.original)?;
        if self.rules.exists() {
            std::fs::remove_file(&self.rules)?;
        }
        let (loaded, answer) = prom::reload()?;
        anyhow::ensure!(loaded, "Prometheus refused its restored config: {answer}");
        Ok(())
    }
}
