//! The database schema: our migrations (`services/domain/migrations`), embedded at build time,
//! and apalis' own (schema `apalis`, tracked in `apalis._sqlx_migrations`). Both services run
//! [`migrate`] at start-up: the API writes into `apalis.jobs`, so it needs apalis' tables even
//! before a worker has started. sqlx takes an advisory lock, so services starting together do not
//! race.

use apalis_postgres::PostgresStorage;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

/// Our migrations.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// apalis' migrations failed.
    #[error("apalis queue schema: {0}")]
    Queue(#[from] apalis_postgres::Error),
    /// Ours failed.
    #[error("org-graph schema: {0}")]
    Graph(#[from] sqlx::migrate::MigrateError),
}

/// Applies every pending migration, apalis' first.
pub async fn migrate(pool: &PgPool) -> Result<(), SchemaError> {
    PostgresStorage::<()>::setup(pool).await?;
    MIGRATOR.run(pool).await?;
    Ok(())
}
