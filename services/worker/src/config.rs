//! The worker's own settings (telemetry reads its `OTEL_*` variables in `otel`). Defaults work
//! against a local Postgres; a malformed value, or an export timeout that would cancel every slow
//! export before it counts as slow, stops the worker at start-up naming the variables.

use otel::catalogue::Queue;
use servicekit::settings::{FromEnv, Postgres, ServiceConfig, SettingError, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the worker needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `WORKER_HEALTH_ADDR`: the health listener (default `127.0.0.1:8001`).
    pub health_addr: SocketAddr,
    /// `DATABASE_URL`, `PG_POOL_MAX`.
    pub postgres: Postgres,
    /// `EXPORT_DIR`: where export files are written (default `exports`).
    pub export_dir: PathBuf,
    /// `CONCURRENCY_ANALYSIS`, `CONCURRENCY_EXPORT`, `CONCURRENCY_INTERVENTION`.
    pub concurrency: [u32; 3],
    /// `TIMEOUT_ANALYSIS_MS`, `TIMEOUT_EXPORT_MS`, `TIMEOUT_INTERVENTION_MS`: per attempt
    /// (defaults 10 min, 10 min, 30 s). `TIMEOUT_EXPORT_MS` must be above `EXPORT_SLOW_MS`.
    pub timeouts: [Duration; 3],
    /// `EXPORT_SLOW_MS`: an export running longer than this is slow (default 5 min); reported as
    /// `orgraph.export.slow_threshold`, the threshold of the `ExportLatencyHigh` alert.
    pub export_slow: Duration,
    /// `RETRY_ATTEMPTS`: attempts a job gets when its failures are transient.
    pub attempts: u32,
    /// `RETRY_BASE_MS`: the first backoff; each retry doubles it (capped at 30 s).
    pub retry_base: Duration,
    /// `QUEUE_STATS_INTERVAL_MS`: how often queue depth is read from the backend.
    pub stats_interval: Duration,
    /// `HEARTBEAT_MS`: the worker's heartbeat; a job whose worker missed `MISSED_HEARTBEATS` of
    /// them is handed to another worker.
    pub heartbeat: Duration,
    /// `MISSED_HEARTBEATS`.
    pub missed_heartbeats: u32,
    /// `SHUTDOWN_GRACE_MS`: how long in-flight jobs may run on after SIGTERM.
    pub shutdown_grace: Duration,
    /// `EXPORT_RETENTION_MAX_AGE_MS`, `EXPORT_RETENTION_MAX_FILES`,
    /// `EXPORT_RETENTION_INTERVAL_MS`: how long and how many export files are kept, and how
    /// often the retention pass runs (see [`crate::retention`]).
    pub retention: Retention,
}

/// The export retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// `EXPORT_RETENTION_MAX_AGE_MS`: an export's file is removed this long after its job
    /// finished (default 7 days).
    pub max_age: Duration,
    /// `EXPORT_RETENTION_MAX_FILES`: at most this many files of finished exports are kept; the
    /// oldest beyond it are removed (default 1000).
    pub max_files: u32,
    /// `EXPORT_RETENTION_INTERVAL_MS`: the time between two passes (default 10 min); the first
    /// runs at start-up.
    pub interval: Duration,
}

/// A malformed setting.
pub type ConfigError = SettingError;

impl FromEnv for Config {
    fn read(s: &Settings<'_>) -> Result<Config, ConfigError> {
        let config = Config {
            health_addr: s.addr("WORKER_HEALTH_ADDR", SocketAddr::from(([127, 0, 0, 1], 8001)))?,
            postgres: Postgres::read(s)?,
            export_dir: s
                .get_or("EXPORT_DIR", "exports")
                .map_or_else(|| PathBuf::from("exports"), PathBuf::from),
            concurrency: [
                s.positive("CONCURRENCY_ANALYSIS", 1)?,
                s.positive("CONCURRENCY_EXPORT", 2)?,
                s.positive("CONCURRENCY_INTERVENTION", 4)?,
            ],
            timeouts: [
                s.millis("TIMEOUT_ANALYSIS_MS", 600_000)?,
                s.millis("TIMEOUT_EXPORT_MS", 600_000)?,
                s.millis("TIMEOUT_INTERVENTION_MS", 30_000)?,
            ],
            export_slow: s.millis("EXPORT_SLOW_MS", 300_000)?,
            attempts: s.positive("RETRY_ATTEMPTS", 3)?,
            retry_base: s.millis("RETRY_BASE_MS", 500)?,
            stats_interval: s.millis("QUEUE_STATS_INTERVAL_MS", 5_000)?,
            heartbeat: s.millis("HEARTBEAT_MS", 2_000)?,
            missed_heartbeats: s.positive("MISSED_HEARTBEATS", 3)?,
            shutdown_grace: s.millis("SHUTDOWN_GRACE_MS", 25_000)?,
            retention: Retention {
                max_age: s.millis("EXPORT_RETENTION_MAX_AGE_MS", 7 * 24 * 3_600_000)?,
                max_files: s.positive("EXPORT_RETENTION_MAX_FILES", 1_000)?,
                interval: s.millis("EXPORT_RETENTION_INTERVAL_MS", 600_000)?,
            },
        };
        config.check_export_timeout()?;
        Ok(config)
    }
}

impl ServiceConfig for Config {
    fn health_addr(&self) -> SocketAddr {
        self.health_addr
    }
}

impl Config {
    /// An export is cancelled at `TIMEOUT_EXPORT_MS`; if that is not above `EXPORT_SLOW_MS`, no
    /// export can ever be recorded as slow and `ExportLatencyHigh` can never fire.
    fn check_export_timeout(&self) -> Result<(), ConfigError> {
        let timeout = self.timeout_of(Queue::Export);
        if timeout > self.export_slow {
            return Ok(());
        }
        Err(ConfigError {
            variable: "TIMEOUT_EXPORT_MS",
            value: Some(timeout.as_millis().to_string()),
            reason: format!(
                "must be greater than EXPORT_SLOW_MS ({}), or every slow export is cancelled \
                 before it counts as slow",
                self.export_slow.as_millis()
            ),
        })
    }

    /// The concurrency of `queue`'s worker.
    pub fn concurrency_of(&self, queue: Queue) -> u32 {
        self.concurrency[index(queue)]
    }

    /// The per-attempt timeout of `queue`'s jobs.
    pub fn timeout_of(&self, queue: Queue) -> Duration {
        self.timeouts[index(queue)]
    }
}

fn index(queue: Queue) -> usize {
    match queue {
        Queue::Analysis => 0,
        Queue::Export => 1,
        Queue::Intervention => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let c = Config::from_lookup(|_| None).unwrap();
        assert_eq!(c.health_addr.port(), 8001);
        assert_eq!(c.timeout_of(Queue::Intervention), Duration::from_secs(30));
        assert_eq!(c.concurrency_of(Queue::Export), 2);
        for (var, value) in
            [("CONCURRENCY_EXPORT", "0"), ("TIMEOUT_EXPORT_MS", "x"), ("DATABASE_URL", "redis://x")]
        {
            let err = Config::from_lookup(|k| (k == var).then(|| value.to_string())).unwrap_err();
            assert_eq!(err.variable, var);
        }
    }

    #[test]
    fn export_retention_defaults_and_errors() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.retention.max_age, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(c.retention.max_files, 1000);
        assert_eq!(c.retention.interval, Duration::from_secs(600));
        let c = parse(&[
            ("EXPORT_RETENTION_MAX_AGE_MS", "3600000"),
            ("EXPORT_RETENTION_MAX_FILES", "5"),
            ("EXPORT_RETENTION_INTERVAL_MS", "1000"),
        ])
        .unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(c.retention, Retention { max_age: hour, max_files: 5, interval: hour / 3600 });
        for (var, value) in [
            ("EXPORT_RETENTION_MAX_AGE_MS", "7d"),
            ("EXPORT_RETENTION_MAX_AGE_MS", "0"),
            ("EXPORT_RETENTION_MAX_FILES", "0"),
            ("EXPORT_RETENTION_MAX_FILES", "-1"),
            ("EXPORT_RETENTION_MAX_FILES", "many"),
            ("EXPORT_RETENTION_INTERVAL_MS", "0"),
        ] {
            let err = parse(&[(var, value)]).unwrap_err();
            assert_eq!(err.variable, var, "{value}");
            assert!(err.to_string().starts_with(&format!("{var}=")), "{err}");
        }
    }

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| vars.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn exports_time_out_above_the_slow_threshold_by_default() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.export_slow, Duration::from_secs(300));
        assert_eq!(c.timeout_of(Queue::Export), Duration::from_secs(600));
        let c = parse(&[("EXPORT_SLOW_MS", "100"), ("TIMEOUT_EXPORT_MS", "101")]).unwrap();
        assert_eq!(c.export_slow, Duration::from_millis(100));
        assert_eq!(c.timeout_of(Queue::Export), Duration::from_millis(101));
        assert_eq!(parse(&[("EXPORT_SLOW_MS", "0")]).unwrap_err().variable, "EXPORT_SLOW_MS");
    }

    #[test]
    fn refuses_an_export_timeout_not_above_the_slow_threshold() {
        for vars in [
            &[("TIMEOUT_EXPORT_MS", "300000")][..],
            &[("TIMEOUT_EXPORT_MS", "1000"), ("EXPORT_SLOW_MS", "1000")][..],
            &[("TIMEOUT_EXPORT_MS", "1000"), ("EXPORT_SLOW_MS", "2000")][..],
            &[("EXPORT_SLOW_MS", "600000")][..],
        ] {
            let err = parse(vars).unwrap_err();
            let message = err.to_string();
            assert_eq!(err.variable, "TIMEOUT_EXPORT_MS", "{vars:?}: {message}");
            assert!(message.contains("EXPORT_SLOW_MS"), "{vars:?}: {message}");
            assert!(!message.contains('\n'), "one line: {message}");
        }
        let err = parse(&[("TIMEOUT_EXPORT_MS", "1000"), ("EXPORT_SLOW_MS", "2000")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "TIMEOUT_EXPORT_MS=\"1000\" is invalid: must be greater than EXPORT_SLOW_MS (2000), \
             or every slow export is cancelled before it counts as slow"
        );
    }
}
