//! The role the collector reads Postgres as: `postgres/monitoring-role.sql` (the same file compose
//! runs), applied on every start of the stack's Postgres with a password kept in
//! `target/stack/postgres-monitor-password` (generated once, mode 0600), which postgres_exporter
//! reads through `DATA_SOURCE_PASS_FILE`. [`Cluster::apply_monitoring_role`] runs the file, as
//! the tests do.

use anyhow::Context;
use std::path::PathBuf;

use testkit::pg::Cluster;

/// `target/stack/postgres-monitor-password`.
pub fn password_file() -> PathBuf {
    super::service::stack_dir().join("postgres-monitor-password")
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
    cluster.apply_monitoring_role(&cluster.url(database), &password()?)
}
