//! The role the collector reads Postgres as: `postgres/monitoring-role.sql` (the same file compose
//! runs), applied on every start of the stack's Postgres with a password kept in
//! `target/stack/postgres-monitor-password` (generated once, mode 0600), which postgres_exporter
//! reads through `DATA_SOURCE_PASS_FILE`. The password goes to psql on its standard input, never
//! on a command line.

use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use testkit::pg::Cluster;

/// The login of the monitoring role (the SQL file creates it under this name).
pub const ROLE: &str = "orgraph_monitor";

/// `target/stack/postgres-monitor-password`.
pub fn password_file() -> PathBuf {
    super::service::stack_dir().join("postgres-monitor-password")
}

/// `postgres/monitoring-role.sql`.
fn sql_file() -> PathBuf {
    testkit::repo_root().join("postgres").join("monitoring-role.sql")
}

/// The password, generated (64 hexadecimal digits) and written readable by its owner only when
/// the file does not exist yet.
fn password() -> anyhow::Result<String> {
    let path = password_file();
    if let Ok(text) = std::fs::read_to_string(&path) {
        let password = text.trim().to_string();
        anyhow::ensure!(
            !password.is_empty() && password.chars().all(|c| c.is_ascii_alphanumeric()),
            "{} must hold one password of letters and digits; delete it to get a new one",
            path.display()
        );
        return Ok(password);
    }
    let password = testkit::tokens::random()?;
    testkit::tokens::write_private(&path, &format!("{password}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(password)
}

/// Creates or updates the role in `cluster`'s `database` (as the superuser).
pub fn apply(cluster: &Cluster, database: &str) -> anyhow::Result<()> {
    let password = password()?;
    let sql = sql_file();
    let mut psql = Command::new(cluster.bin_dir().join("psql"));
    psql.args(["-X", "-q"])
        .arg(cluster.url(database))
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = psql.spawn().context("starting psql")?;
    let script = format!("\\set monitor_password '{password}'\n\\i {}\n", sql.display());
    child
        .stdin
        .take()
        .context("psql's standard input")?
        .write_all(script.as_bytes())
        .context("writing to psql")?;
    let output = child.wait_with_output().context("waiting for psql")?;
    anyhow::ensure!(
        output.status.success(),
        "applying {} failed ({}): {}",
        sql.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}
