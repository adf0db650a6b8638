//! Redis, the shared second-level (L2) cache: a deadpool pool watched by the pool metrics and
//! guarded by the `redis` circuit breaker. Redis is an optimisation, never a dependency of a
//! correct answer: every failure here is logged and reported as a miss (or a skipped write), so
//! with Redis down the API serves from L1 and Postgres. Every call is bounded by
//! `REDIS_POOL_TIMEOUT_MS`, so a hung Redis cannot hold a request. Every command is a client
//! span named after it (never a key), and every L2 look-up an event on the current span.

use crate::breaker::{BreakerConfig, CircuitBreaker};
use crate::config::Config;
use deadpool_redis::redis::{self, AsyncCommands};
use deadpool_redis::{Pool, PoolConfig, Runtime, Timeouts};
use otel::catalogue::{BreakerName, CacheLayer, CacheName, CacheResult, PoolName};
use otel::metrics::{BreakerMetrics, CacheMetrics, PoolMetrics, PoolStats};
use otel::trace::client::{self, ClientSpan, Server};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a Redis call did not happen or failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// No connection within the time limit.
    #[error("no redis connection: {0}")]
    Pool(#[from] deadpool_redis::PoolError),
    /// The command failed.
    #[error("redis command: {0}")]
    Command(#[from] redis::RedisError),
    /// The call took longer than the limit.
    #[error("redis call timed out after {0:?}")]
    Timeout(Duration),
    /// The breaker is open: Redis failed recently, so it was not asked.
    #[error("redis circuit breaker is open")]
    BreakerOpen,
}

/// The L2 cache.
#[derive(Clone)]
pub struct Redis {
    pool: Pool,
    breaker: CircuitBreaker,
    pool_metrics: Arc<PoolMetrics>,
    cache_metrics: CacheMetrics,
    timeout: Duration,
    /// Where Redis is, for the client spans (`None` if the URL does not say).
    server: Option<Server>,
}

impl Redis {
    /// A pool that connects on first use (the API starts without Redis).
    pub fn new(
        config: &Config,
        breakers: &BreakerMetrics,
        cache_metrics: CacheMetrics,
    ) -> anyhow::Result<Redis> {
        let timeout = config.redis_timeout;
        let mut pool_config = PoolConfig::new(config.redis_pool_max);
        pool_config.timeouts =
            Timeouts { wait: Some(timeout), create: Some(timeout), recycle: Some(timeout) };
        let mut redis_config = deadpool_redis::Config::from_url(config.redis_url.clone());
        redis_config.pool = Some(pool_config);
        let pool = redis_config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| anyhow::anyhow!("REDIS_URL: cannot create the pool: {e}"))?;
        let p = pool.clone();
        let pool_metrics = PoolMetrics::new(&otel::meter(), PoolName::Redis, move || {
            let status = p.status();
            let idle = status.available as u64;
            PoolStats {
                idle,
                used: (status.size as u64).saturating_sub(idle),
                max: status.max_size as u64,
                pending: status.waiting as u64,
            }
        });
        let breaker = CircuitBreaker::new(
            BreakerName::Redis,
            BreakerConfig {
                failure_threshold: config.breaker_failures,
                open_for: config.breaker_open_for,
                half_open_probes: 1,
            },
            breakers.clone(),
        );
        let server = server(&config.redis_url);
        Ok(Redis {
            pool,
            breaker,
            pool_metrics: Arc::new(pool_metrics),
            cache_metrics,
            timeout,
            server,
        })
    }

    /// The breaker, for readiness.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Looks `key` up in cache `name`; any failure is a miss (logged, and a breaker failure).
    pub async fn get(&self, name: CacheName, key: &str) -> Option<Vec<u8>> {
        let result = self
            .call("GET", async |conn: &mut deadpool_redis::Connection| {
                conn.get::<_, Option<Vec<u8>>>(key).await
            })
            .await;
        match result {
            Ok(Some(value)) => {
                self.cache_metrics.hit(CacheLayer::L2, name);
                client::cache_lookup(CacheLayer::L2, name, CacheResult::Hit);
                Some(value)
            }
            Ok(None) => {
                self.cache_metrics.miss(CacheLayer::L2, name);
                client::cache_lookup(CacheLayer::L2, name, CacheResult::Miss);
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, cache = ?name, "L2 read skipped");
                None
            }
        }
    }

    /// The counter at `key` (0 if unset); `None` if Redis did not answer.
    pub async fn counter(&self, key: &str) -> Option<u64> {
        let result = self
            .call("GET", async |conn: &mut deadpool_redis::Connection| {
                conn.get::<_, Option<u64>>(key).await
            })
            .await;
        match result {
            Ok(value) => Some(value.unwrap_or(0)),
            Err(e) => {
                tracing::warn!(error = %e, "L2 generation unread");
                None
            }
        }
    }

    /// Sets `key` to `value` for `ttl`, only if the counter at `counter` still reads `expected`
    /// (compare-and-set, atomic in Redis): an entry computed before a writer bumped the counter
    /// is never stored after it. A failure skips the write.
    pub async fn set_if_counter(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
        counter: &str,
        expected: u64,
    ) {
        const SCRIPT: &str = "if tonumber(redis.call('GET', KEYS[2]) or '0') == tonumber(ARGV[1]) \
             then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end return 0";
        let seconds = ttl.as_secs().max(1);
        let result = self
            .call("EVAL", async |conn: &mut deadpool_redis::Connection| {
                redis::cmd("EVAL")
                    .arg(SCRIPT)
                    .arg(2)
                    .arg(key)
                    .arg(counter)
                    .arg(expected)
                    .arg(value)
                    .arg(seconds)
                    .query_async::<i64>(conn)
                    .await
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "L2 write skipped");
        }
    }

    /// Bumps the counter at `counter` and removes `key`, atomically. A failure leaves a stale
    /// entry until its TTL ends (L2 TTLs are short).
    pub async fn bump_and_delete(&self, key: &str, counter: &str) {
        let result = self
            // An atomic pipeline: one MULTI ... EXEC transaction (INCR, DEL).
            .call("MULTI", async |conn: &mut deadpool_redis::Connection| {
                redis::pipe()
                    .atomic()
                    .incr(counter, 1)
                    .ignore()
                    .del(key)
                    .ignore()
                    .query_async::<()>(conn)
                    .await
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "L2 invalidation skipped; the entry expires with its TTL");
        }
    }

    /// `PING`, for readiness (through the breaker, so an open breaker reports down at once).
    pub async fn ping(&self) -> Result<(), String> {
        self.call("PING", async |conn: &mut deadpool_redis::Connection| {
            redis::cmd("PING").query_async::<String>(conn).await.map(|_| ())
        })
        .await
        .map_err(|e| e.to_string())
    }

    /// Reports the L2 size (keys and used memory of the Redis database) to the cache gauges.
    pub async fn report_size(&self, name: CacheName) {
        let keys = self
            .call("DBSIZE", async |conn: &mut deadpool_redis::Connection| {
                redis::cmd("DBSIZE").query_async::<u64>(conn).await
            })
            .await;
        let Ok(keys) = keys else { return };
        let info = self
            .call("INFO", async |conn: &mut deadpool_redis::Connection| {
                redis::cmd("INFO").arg("memory").query_async::<String>(conn).await
            })
            .await;
        if let Ok(info) = info {
            self.cache_metrics.set_size(CacheLayer::L2, name, keys, used_memory(&info));
        }
    }

    /// Runs `f`, which sends Redis command `command` (its client span's name), on a pooled
    /// connection, through the breaker and within the time limit.
    async fn call<T>(
        &self,
        command: &'static str,
        f: impl AsyncFnOnce(&mut deadpool_redis::Connection) -> Result<T, redis::RedisError>,
    ) -> Result<T, RedisError> {
        let timeout = self.timeout;
        let outcome = self
            .breaker
            .call(|| async {
                let work = async {
                    let started = Instant::now();
                    let mut conn = match self.pool.get().await {
                        Ok(conn) => {
                            self.pool_metrics.acquired(started.elapsed());
                            conn
                        }
                        Err(e) => {
                            if matches!(e, deadpool_redis::PoolError::Timeout(_)) {
                                self.pool_metrics.timed_out(started.elapsed());
                            }
                            return Err(RedisError::Pool(e));
                        }
                    };
                    let span = ClientSpan::redis(command, self.server.as_ref());
                    let result = f(&mut conn).await;
                    match &result {
                        Ok(_) => span.end(),
                        Err(e) => span.fail(error_type(e), e),
                    }
                    result.map_err(RedisError::Command)
                };
                tokio::time::timeout(timeout, work)
                    .await
                    .unwrap_or(Err(RedisError::Timeout(timeout)))
            })
            .await;
        outcome.map_err(|e| match e {
            crate::breaker::BreakerError::Open { .. } => RedisError::BreakerOpen,
            crate::breaker::BreakerError::Inner(e) => e,
        })
    }
}

/// The server `url` names: host and port, or a socket path.
fn server(url: &str) -> Option<Server> {
    let info = redis::IntoConnectionInfo::into_connection_info(url).ok()?;
    match info.addr() {
        redis::ConnectionAddr::Tcp(host, port)
        | redis::ConnectionAddr::TcpTls { host, port, .. } => Some(Server::new(host, Some(*port))),
        redis::ConnectionAddr::Unix(path) => Some(Server::new(&path.display().to_string(), None)),
        _ => None,
    }
}

/// A failed command's `error.type`: the server's error code (`WRONGTYPE`, `NOSCRIPT`, ...), a
/// bounded set; else `io` or `client`.
fn error_type(error: &redis::RedisError) -> String {
    match error.code() {
        Some(code) => code.to_string(),
        None if error.is_io_error() => "io".into(),
        None => "client".into(),
    }
}

/// `used_memory:<bytes>` from `INFO memory`.
fn used_memory(info: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
