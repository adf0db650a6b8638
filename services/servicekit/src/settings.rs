//! What every service's settings share, read through the one reader, [`otel::settings`]: how it
//! reaches Postgres, and where its health endpoint listens (what `--health-check` probes).

pub use otel::settings::{FromEnv, SettingError, Settings, Variable};
use std::net::SocketAddr;

/// A service's configuration.
pub trait ServiceConfig: FromEnv {
    /// Where the service's health endpoint listens.
    fn health_addr(&self) -> SocketAddr;
}

/// The Postgres URL schemes.
pub const POSTGRES_SCHEMES: &[&str] = &["postgres://", "postgresql://"];
/// `DATABASE_URL` when unset: the native stack's database.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/orgraph";

/// Postgres, as every service reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Postgres {
    /// `DATABASE_URL`.
    pub url: String,
    /// `PG_POOL_MAX`: connections at most (default 10).
    pub pool_max: u32,
    /// `PGPASSFILE`: the password file (libpq's format, `host:port:database:user:password`)
    /// sqlx reads when the URL has no password, so no URL needs to carry one (compose sets it).
    /// sqlx reads the variable itself; it is named here so `--help` lists it.
    pub pgpass_file: Option<String>,
}

impl FromEnv for Postgres {
    fn read(s: &Settings<'_>) -> Result<Postgres, SettingError> {
        Ok(Postgres {
            url: s.url("DATABASE_URL", DEFAULT_DATABASE_URL, POSTGRES_SCHEMES)?,
            pool_max: s.positive("PG_POOL_MAX", 10)?,
            pgpass_file: s.get("PGPASSFILE"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_defaults_to_the_native_stack_and_refuses_other_schemes() {
        let pg = Postgres::from_lookup(|_| None).unwrap();
        assert_eq!(
            pg,
            Postgres { url: DEFAULT_DATABASE_URL.into(), pool_max: 10, pgpass_file: None }
        );
        let err = Postgres::from_lookup(|k| (k == "DATABASE_URL").then(|| "mysql://x".into()));
        assert_eq!(err.unwrap_err().variable, "DATABASE_URL");
        let pg = Postgres::from_lookup(|k| (k == "DATABASE_URL").then(|| "postgresql://db".into()));
        assert_eq!(pg.unwrap().url, "postgresql://db");
    }
}
