//! The API's own settings (telemetry has its `OTEL_*` variables, read by `otel`). Every value has
//! a default that works against a local Postgres and Redis; a malformed value stops the service
//! at start-up with a message naming the variable.

use servicekit::settings::{FromEnv, Postgres, ServiceConfig, SettingError, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the API needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `API_ADDR`: where to listen (default `127.0.0.1:8000`; compose sets `0.0.0.0:8000`).
    pub addr: SocketAddr,
    /// `DATABASE_URL`, `PG_POOL_MAX`.
    pub postgres: Postgres,
    /// `REDIS_URL`.
    pub redis_url: String,
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
    /// `API_TOKENS_FILE` (required): the tokens' hashes and roles (see [`crate::auth::tokens`]).
    pub tokens_file: PathBuf,
    /// `API_RATE_LIMIT_PER_S`: requests per second each token may make on average.
    pub rate_limit_per_s: u32,
    /// `API_RATE_LIMIT_BURST`: requests each token may make at once above its rate.
    pub rate_limit_burst: u32,
    /// `API_MAX_OPEN_PROPOSALS`: interventions that may be `proposed` at once; a proposal beyond
    /// it is a 409 until some are executed.
    pub max_open_proposals: u32,
    /// `API_MAX_QUEUED_JOBS`: jobs of one kind that may be pending at once; a job beyond it is a
    /// 429 with `Retry-After` (the queue drains).
    pub max_queued_jobs: u32,
}

/// A malformed setting.
pub type ConfigError = SettingError;

impl FromEnv for Config {
    fn read(s: &Settings<'_>) -> Result<Config, ConfigError> {
        Ok(Config {
            addr: s.addr("API_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?,
            postgres: Postgres::read(s)?,
            redis_url: s.url("REDIS_URL", "redis://127.0.0.1:6379", &["redis://", "rediss://"])?,
            pg_pool_timeout: s.millis("PG_POOL_TIMEOUT_MS", 2_000)?,
            redis_pool_max: s.positive("REDIS_POOL_MAX", 10)? as usize,
            redis_timeout: s.millis("REDIS_POOL_TIMEOUT_MS", 250)?,
            request_timeout: s.millis("REQUEST_TIMEOUT_MS", 10_000)?,
            body_limit: s.positive("BODY_LIMIT_BYTES", 64 * 1024)? as usize,
            l1_ttl: s.millis("STATS_L1_TTL_MS", 2_000)?,
            l2_ttl: s.millis("STATS_L2_TTL_MS", 30_000)?,
            l1_max_bytes: u64::from(s.positive("L1_CACHE_MAX_BYTES", 16 << 20)?),
            breaker_failures: s.positive("BREAKER_FAILURES", 5)?,
            breaker_open_for: s.millis("BREAKER_OPEN_MS", 5_000)?,
            graph_metrics_interval: s.millis("GRAPH_METRICS_INTERVAL_MS", 15_000)?,
            tokens_file: s.get("API_TOKENS_FILE").map(PathBuf::from).ok_or_else(|| {
                ConfigError {
                    variable: "API_TOKENS_FILE",
                    value: None,
                    reason: "it must be set, to the file of the API tokens' hashes and roles \
                             (docs/SECURITY.md says how to make one)"
                        .into(),
                }
            })?,
            rate_limit_per_s: s.positive("API_RATE_LIMIT_PER_S", 100)?,
            rate_limit_burst: s.positive("API_RATE_LIMIT_BURST", 200)?,
            max_open_proposals: s.positive("API_MAX_OPEN_PROPOSALS", 1000)?,
            max_queued_jobs: s.positive("API_MAX_QUEUED_JOBS", 1000)?,
        })
    }
}

impl ServiceConfig for Config {
    fn health_addr(&self) -> SocketAddr {
        self.addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = [("API_TOKENS_FILE", "/run/tokens")]
            .iter()
            .chain(vars)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .rev()
            .collect();
        Config::from_lookup(|k| vars.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn defaults_work_locally() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.addr.to_string(), "127.0.0.1:8000");
        assert_eq!(c.postgres.url, "postgres://postgres@127.0.0.1:5432/orgraph");
        assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
        assert_eq!(c.postgres.pool_max, 10);
        assert_eq!(c.tokens_file, PathBuf::from("/run/tokens"));
        assert_eq!((c.rate_limit_per_s, c.rate_limit_burst), (100, 200));
        assert_eq!((c.max_open_proposals, c.max_queued_jobs), (1000, 1000));
    }

    #[test]
    fn the_caps_are_read_and_must_be_positive() {
        let c = parse(&[("API_MAX_OPEN_PROPOSALS", "3"), ("API_MAX_QUEUED_JOBS", " 7 ")]).unwrap();
        assert_eq!((c.max_open_proposals, c.max_queued_jobs), (3, 7));
        for var in ["API_MAX_OPEN_PROPOSALS", "API_MAX_QUEUED_JOBS"] {
            for value in ["0", "-1", "many", "1.5", "99999999999"] {
                let err = parse(&[(var, value)]).unwrap_err();
                assert_eq!(err.variable, var, "{var}={value}");
                assert!(err.to_string().contains("positive"), "{err}");
            }
        }
    }

    #[test]
    fn the_tokens_file_is_required() {
        let err = parse(&[("API_TOKENS_FILE", " ")]).unwrap_err();
        assert_eq!(err.variable, "API_TOKENS_FILE");
        assert!(err.to_string().contains("must be set"), "{err}");
    }

    #[test]
    fn values_are_read_and_bad_ones_named() {
        let c = parse(&[("API_ADDR", "0.0.0.0:9000"), ("PG_POOL_MAX", "3")]).unwrap();
        assert_eq!(c.addr.port(), 9000);
        assert_eq!(c.postgres.pool_max, 3);
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
