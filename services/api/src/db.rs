//! Postgres access: one sqlx pool, watched by the pool metrics (`db.client.connection.*`) and
//! guarded by the `postgres` circuit breaker. Every query of the API runs through [`Db::run`],
//! which times the wait for a connection, counts pool timeouts, and lets the breaker turn an
//! outage into immediate 503s instead of a pile of timeouts.

use crate::breaker::{BreakerConfig, BreakerError, CircuitBreaker, Verdict};
use crate::config::Config;
use crate::error::{ApiError, is_db_outage};
use otel::catalogue::{BreakerName, PoolName};
use otel::metrics::{BreakerMetrics, PoolMetrics, PoolStats};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The database handle shared by all requests.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    breaker: CircuitBreaker,
    metrics: Arc<PoolMetrics>,
    waiting: Arc<AtomicU64>,
    /// Whether the schema is up to date: until then every query is a 503 (see `crate::run`).
    migrated: Arc<AtomicBool>,
    liveness: Arc<Liveness>,
}

impl Db {
    /// A lazily connecting pool (the API starts even if Postgres is not up yet; readiness says
    /// so), with its metrics and breaker.
    pub fn new(config: &Config, breakers: &BreakerMetrics) -> anyhow::Result<Db> {
        let options = PgConnectOptions::from_str(&config.postgres.url)
            .map_err(|e| anyhow::anyhow!("DATABASE_URL is invalid: {e}"))?
            .application_name("orgraph-api");
        let liveness = Arc::new(Liveness {
            options: options.clone().application_name("orgraph-api-liveness"),
            last: tokio::sync::Mutex::new(None),
        });
        let pool = PgPoolOptions::new()
            .max_connections(config.postgres.pool_max)
            .acquire_timeout(config.pg_pool_timeout)
            .connect_lazy_with(options);
        let waiting = Arc::new(AtomicU64::new(0));
        let (p, w, max) = (pool.clone(), waiting.clone(), u64::from(config.postgres.pool_max));
        let metrics = PoolMetrics::new(&otel::meter(), PoolName::Postgres, move || {
            let size = u64::from(p.size());
            let idle = p.num_idle() as u64;
            PoolStats {
                idle,
                used: size.saturating_sub(idle),
                max,
                pending: w.load(Ordering::Relaxed),
            }
        });
        let breaker = CircuitBreaker::new(
            BreakerName::Postgres,
            BreakerConfig {
                failure_threshold: config.breaker_failures,
                open_for: config.breaker_open_for,
                half_open_probes: 1,
            },
            breakers.clone(),
        );
        let migrated = Arc::new(AtomicBool::new(false));
        Ok(Db { pool, breaker, metrics: Arc::new(metrics), waiting, migrated, liveness })
    }

    /// The pool itself, for migrations at start-up.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether the schema is up to date.
    pub fn migrated(&self) -> bool {
        self.migrated.load(Ordering::Acquire)
    }

    /// Brings the schema up to date, waiting (with backoff, saying so) while Postgres cannot be
    /// reached, also when it goes away in the middle: the API serves meanwhile, not ready, its
    /// queries answered 503. A migration that fails while Postgres answers is an error that stops
    /// the service.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let mut wait = Duration::from_millis(250);
        while !self.migrated() {
            let failed = match self.pool.acquire().await {
                Ok(conn) => {
                    drop(conn);
                    match domain::migrate(&self.pool).await {
                        Ok(()) => {
                            self.migrated.store(true, Ordering::Release);
                            tracing::info!("schema up to date");
                            continue;
                        }
                        // Postgres went away meanwhile: wait for it, as at start.
                        Err(e) if self.pool.acquire().await.is_err() => e.to_string(),
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => e.to_string(),
            };
            tracing::warn!(error = %failed, ?wait, "postgres unreachable; schema not migrated yet");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
        Ok(())
    }

    /// The breaker, for readiness.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Runs `f` on a pooled connection, through the breaker. Only outages count as breaker
    /// failures: lost connections, and pool timeouts while Postgres does not answer a fresh
    /// connection either. A pool timeout while it does is a busy pool (locks, long queries): a
    /// 503 that says so, neither a failure nor a success for the breaker. A constraint violation
    /// is the query's fault (Postgres answered).
    pub async fn run<T>(
        &self,
        f: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, ApiError> {
        if !self.migrated() {
            return Err(ApiError::Unavailable {
                dependency: "postgres",
                retry_after: Duration::from_secs(1),
            });
        }
        let call = || async {
            let mut conn = match self.acquire().await {
                Ok(conn) => conn,
                Err(sqlx::Error::PoolTimedOut) if self.liveness.answers().await => {
                    return Err(RunError::Busy);
                }
                Err(e) => return Err(RunError::Sql(e)),
            };
            f(&mut conn).await.map_err(RunError::Sql)
        };
        let judge = |e: &RunError| match e {
            RunError::Busy => Verdict::Unknown,
            RunError::Sql(e) if is_db_outage(e) => Verdict::Failed,
            RunError::Sql(_) => Verdict::Answered,
        };
        self.breaker.call_judged(call, judge).await.map_err(|e| match e {
            BreakerError::Open { retry_after, .. } => {
                ApiError::Unavailable { dependency: "postgres", retry_after }
            }
            BreakerError::Inner(RunError::Busy) => ApiError::Busy { dependency: "postgres" },
            BreakerError::Inner(RunError::Sql(e)) => ApiError::from_db(e),
        })
    }

    async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, sqlx::Error> {
        let started = Instant::now();
        let waiting = Waiting::new(&self.waiting);
        let result = self.pool.acquire().await;
        drop(waiting);
        match &result {
            Ok(_) => self.metrics.acquired(started.elapsed()),
            Err(sqlx::Error::PoolTimedOut) => self.metrics.timed_out(started.elapsed()),
            Err(_) => {}
        }
        result
    }
}

/// Whether Postgres answers a statement on `conn` (readiness, and [`Liveness`]).
pub async fn ping(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(conn).await.map(|_| ())
}

/// Why [`Db::run`] did not get an answer.
enum RunError {
    /// No pooled connection came free within the pool's timeout, while Postgres answered a
    /// fresh connection.
    Busy,
    /// The query, or getting its connection, failed.
    Sql(sqlx::Error),
}

/// How long Postgres gets to answer a fresh connection (connect and `SELECT 1`) when the pool
/// times out.
const LIVENESS_TIMEOUT: Duration = Duration::from_secs(1);

/// How long an answer of [`Liveness`] is reused: under saturation every waiting caller times out,
/// and one question per second is enough.
const LIVENESS_REUSED_FOR: Duration = Duration::from_secs(1);

/// Whether Postgres answers a fresh connection, asked when the pool times out: sqlx reports a
/// busy pool and an unreachable server (a refused or hung connect) alike, as `PoolTimedOut`. One
/// question at a time; its answer reused for [`LIVENESS_REUSED_FOR`].
struct Liveness {
    options: PgConnectOptions,
    last: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

impl Liveness {
    async fn answers(&self) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = *last
            && at.elapsed() < LIVENESS_REUSED_FOR
        {
            return answer;
        }
        let asked = tokio::time::timeout(LIVENESS_TIMEOUT, async {
            let mut conn = PgConnection::connect_with(&self.options).await?;
            ping(&mut conn).await?;
            conn.close().await
        });
        let answer = matches!(asked.await, Ok(Ok(())));
        *last = Some((Instant::now(), answer));
        answer
    }
}

/// Counts a caller waiting for a connection; the count goes down even if the request is
/// abandoned while waiting.
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn new(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Waiting(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
