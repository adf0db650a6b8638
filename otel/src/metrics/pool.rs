//! Connection-pool metrics (semantic conventions `db.client.connection.*`). Pool sizes are
//! observed from the pool itself at each collection; timeouts and wait times are recorded by the
//! code that asks the pool for a connection.

use super::zero;
use crate::catalogue::{self, ConnectionState, Label, PoolName};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, Meter, ObservableUpDownCounter};
use std::sync::Arc;
use std::time::Duration;

/// A snapshot of a pool, as the pool library reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections not in use.
    pub idle: u64,
    /// Open connections in use.
    pub used: u64,
    /// Maximum number of open connections.
    pub max: u64,
    /// Callers waiting for a connection.
    pub pending: u64,
}

/// The instruments of one connection pool.
pub struct PoolMetrics {
    pool: PoolName,
    timeouts: Counter<u64>,
    wait_time: Histogram<f64>,
    _observed: [ObservableUpDownCounter<i64>; 3],
}

impl PoolMetrics {
    /// Registers `pool`'s instruments on `meter`; `stats` is called at each collection. The pool's
    /// timeout count starts at 0 (1 series), so its first timeout is visible.
    pub fn new(
        meter: &Meter,
        pool: PoolName,
        stats: impl Fn() -> PoolStats + Send + Sync + 'static,
    ) -> Self {
        let stats = Arc::new(stats);
        let name = pool.key_value();
        let (s, n) = (stats.clone(), name.clone());
        let count = catalogue::DB_CLIENT_CONNECTION_COUNT.i64_observable_up_down_counter(
            meter,
            move |observer| {
                let now = s();
                for (state, value) in
                    [(ConnectionState::Idle, now.idle), (ConnectionState::Used, now.used)]
                {
                    observer.observe(to_i64(value), &[n.clone(), state.key_value()]);
                }
            },
        );
        let (s, n) = (stats.clone(), name.clone());
        let max = catalogue::DB_CLIENT_CONNECTION_MAX
            .i64_observable_up_down_counter(meter, move |o| {
                o.observe(to_i64(s().max), std::slice::from_ref(&n))
            });
        let (s, n) = (stats, name);
        let pending = catalogue::DB_CLIENT_CONNECTION_PENDING_REQUESTS
            .i64_observable_up_down_counter(meter, move |o| {
                o.observe(to_i64(s().pending), std::slice::from_ref(&n))
            });
        let timeouts = catalogue::DB_CLIENT_CONNECTION_TIMEOUTS.u64_counter(meter);
        let start = [pool.key_value()];
        zero::start_at_zero(&timeouts, &catalogue::DB_CLIENT_CONNECTION_TIMEOUTS, &start);
        PoolMetrics {
            pool,
            timeouts,
            wait_time: catalogue::DB_CLIENT_CONNECTION_WAIT_TIME.f64_histogram(meter),
            _observed: [count, max, pending],
        }
    }

    /// A caller got a connection after waiting `waited`.
    pub fn acquired(&self, waited: Duration) {
        self.wait_time.record(waited.as_secs_f64(), &[self.name()]);
    }

    /// A caller gave up waiting for a connection.
    pub fn timed_out(&self, waited: Duration) {
        self.timeouts.add(1, &[self.name()]);
        self.wait_time.record(waited.as_secs_f64(), &[self.name()]);
    }

    fn name(&self) -> KeyValue {
        self.pool.key_value()
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::Recorder;
    use std::sync::Mutex;

    #[test]
    fn observes_pool_state_at_collection_and_records_waits() {
        let recorder = Recorder::new();
        let state = Arc::new(Mutex::new(PoolStats { idle: 3, used: 2, max: 10, pending: 0 }));
        let s = state.clone();
        let pg = PoolMetrics::new(recorder.meter(), PoolName::Postgres, move || *s.lock().unwrap());
        let _redis = PoolMetrics::new(recorder.meter(), PoolName::Redis, || PoolStats {
            idle: 1,
            used: 0,
            max: 4,
            pending: 0,
        });
        pg.acquired(Duration::from_millis(2));
        pg.timed_out(Duration::from_secs(5));
        *state.lock().unwrap() = PoolStats { idle: 0, used: 10, max: 10, pending: 7 };

        let points = recorder.collect();
        points.assert_conforms();
        let pg_ = ("db.client.connection.pool.name", "postgres");
        let used = [pg_, ("db.client.connection.state", "used")];
        assert_eq!(points.value("db.client.connection.count", &used), 10.0);
        assert_eq!(points.value("db.client.connection.pending_requests", &[pg_]), 7.0);
        assert_eq!(points.value("db.client.connection.max", &[pg_]), 10.0);
        assert_eq!(
            points
                .value("db.client.connection.max", &[("db.client.connection.pool.name", "redis")]),
            4.0
        );
        assert_eq!(points.value("db.client.connection.timeouts", &[pg_]), 1.0);
        assert_eq!(points.count("db.client.connection.wait_time", &[pg_]), 2);
        // The redis pool never timed out, and says so.
        let redis = ("db.client.connection.pool.name", "redis");
        assert_eq!(points.value("db.client.connection.timeouts", &[redis]), 0.0);
        assert_eq!(points.series("db.client.connection.timeouts"), 2, "one per pool built");
    }
}
