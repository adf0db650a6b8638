//! The API's own settings (telemetry has its `OTEL_*` variables, read by `otel`). Every value has
//! a default that works against a local Postgres and Redis; a malformed value stops the service
//! at start-up with a message naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything the API needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `API_ADDR`: where to listen (default `127.0.0.1:8000`; compose sets `0.0.0.0:8000`).
    pub addr: SocketAddr,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `PG_POOL_MAX`: Postgres connections at most.
    pub pg_pool_max: u32,
    /// `PG_POOL_TIMEOUT_MS`: how long a request waits for a Postgres connection.
    pub pg_pool_timeout: Duration,
    /// `REDIS_POOL_MAX`: Redis connections at most.
    pub redis_pool_max: usize,
    /// `REDIS_POOL_TIMEOUT_MS`: how long a request waits for (and on) a Redis connection.
    pub redis_timeout: Duration,
    /// `REQUEST_TIMEOUT_MS`: a request still running after this gets a 503.
    pub request_timeout: Duration,
    /// `BODY_LIMIT_BYTES`: larger request bodies get a 413.
    pub body_limit: usize,
    /// `STATS_L1_TTL_MS`: how long graph stats stay in the in-process cache.
    pub l1_ttl: Duration,
    /// `STATS_L2_TTL_MS`: how long graph stats stay in Redis.
    pub l2_ttl: Duration,
    /// `L1_CACHE_MAX_BYTES`: the in-process caches' memory bound.
    pub l1_max_bytes: u64,
    /// `BREAKER_FAILURES`: consecutive failures that open a breaker.
    pub breaker_failures: u32,
    /// `BREAKER_OPEN_MS`: how long an open breaker refuses calls before probing.
    pub breaker_open_for: Duration,
    /// `GRAPH_METRICS_INTERVAL_MS`: how often node and edge counts are refreshed.
    pub graph_metrics_interval: Duration,
}

/// A malformed setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// The variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `lookup`; unset or empty means the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |key: &str| lookup(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let ms = |key: &'static str, default: u64| -> Result<Duration, ConfigError> {
            positive(key, get(key), default).map(Duration::from_millis)
        };
        Ok(Config {
            addr: match get("API_ADDR") {
                None => SocketAddr::from(([127, 0, 0, 1], 8000)),
                Some(v) => v.parse().map_err(|_| ConfigError {
                    variable: "API_ADDR",
                    value: v,
                    reason: "expected host:port, e.g. 0.0.0.0:8000",
                })?,
            },
            database_url: url(
                "DATABASE_URL",
                get("DATABASE_URL"),
                "postgres://postgres@127.0.0.1:5432/orgraph",
                &["postgres://", "postgresql://"],
            )?,
            redis_url: url(
                "REDIS_URL",
                get("REDIS_URL"),
                "redis://127.0.0.1:6379",
                &["redis://", "rediss://"],
            )?,
            pg_pool_max: positive("PG_POOL_MAX", get("PG_POOL_MAX"), 10)? as u32,
            pg_pool_timeout: ms("PG_POOL_TIMEOUT_MS", 2_000)?,
            redis_pool_max: positive("REDIS_POOL_MAX", get("REDIS_POOL_MAX"), 10)? as usize,
            redis_timeout: ms("REDIS_POOL_TIMEOUT_MS", 250)?,
            request_timeout: ms("REQUEST_TIMEOUT_MS", 10_000)?,
            body_limit: positive("BODY_LIMIT_BYTES", get("BODY_LIMIT_BYTES"), 64 * 1024)? as usize,
            l1_ttl: ms("STATS_L1_TTL_MS", 2_000)?,
            l2_ttl: ms("STATS_L2_TTL_MS", 30_000)?,
            l1_max_bytes: positive("L1_CACHE_MAX_BYTES", get("L1_CACHE_MAX_BYTES"), 16 << 20)?,
            breaker_failures: positive("BREAKER_FAILURES", get("BREAKER_FAILURES"), 5)? as u32,
            breaker_open_for: ms("BREAKER_OPEN_MS", 5_000)?,
            graph_metrics_interval: ms("GRAPH_METRICS_INTERVAL_MS", 15_000)?,
        })
    }
}

/// A whole number from 1 to `u32::MAX`.
fn positive(
    variable: &'static str,
    value: Option<String>,
    default: u64,
) -> Result<u64, ConfigError> {
    let Some(value) = value else { return Ok(default) };
    match value.parse::<u32>() {
        Ok(n) if n > 0 => Ok(u64::from(n)),
        _ => Err(ConfigError { variable, value, reason: "expected a positive whole number" }),
    }
}

fn url(
    variable: &'static str,
    value: Option<String>,
    default: &str,
    schemes: &[&str],
) -> Result<String, ConfigError> {
    match value {
        None => Ok(default.to_string()),
        Some(v) if schemes.iter().any(|s| v.starts_with(s) && v.len() > s.len()) => Ok(v),
        Some(v) => Err(ConfigError { variable, value: v, reason: "unsupported URL scheme" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| vars.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_work_locally() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8000");
        assert_eq!(c.database_url, "postgres://postgres@127.0.0.1:5432/orgraph");
        assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(c.pg_pool_max, 10);
    }

    #[test]
    fn values_are_read_and_bad_ones_named() {
        let c = parse(&[("API_ADDR", "0.0.0.0:9000"), ("PG_POOL_MAX", "3")]).unwrap();
        assert_eq!(c.addr.port(), 9000);
        assert_eq!(c.pg_pool_max, 3);
        for (var, value) in [
            ("API_ADDR", "localhost"),
            ("DATABASE_URL", "mysql://x"),
            ("REDIS_URL", "http://x"),
            ("PG_POOL_MAX", "0"),
            ("REQUEST_TIMEOUT_MS", "1s"),
        ] {
            let err = parse(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var);
        }
    }
}
