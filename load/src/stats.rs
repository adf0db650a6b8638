//! What the client saw, recorded while the load runs: responses by route template and status,
//! transport errors, and latencies in fixed-size log-linear histograms (memory does not grow with
//! the length of the run; percentiles are within 1.6% of the true value, the maximum is exact).

use super::mix::Kind;
use super::report::{Latency, Report, RouteLatency};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Sub-buckets per power of two (2^6 = 64: relative error below 1/64).
const SUB_BITS: u32 = 6;

/// Transport error messages kept for the report.
const ERROR_SAMPLES: usize = 5;

/// A latency histogram in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max_us: u64,
}

impl Histogram {
    /// Adds one latency, in whole microseconds, to its bucket.
    pub fn record(&mut self, value: Duration) {
        let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        let i = index(us);
        if self.counts.len() <= i {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0 < q ≤ 1) in microseconds: the top of the bucket holding it, never
    /// above the maximum; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper(i).min(self.max_us);
            }
        }
        self.max_us
    }

    /// p50, p95, p99 and max in milliseconds.
    pub fn latency(&self) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50: ms(self.quantile_us(0.50)),
            p95: ms(self.quantile_us(0.95)),
            p99: ms(self.quantile_us(0.99)),
            max: ms(self.max_us),
        }
    }
}

/// The bucket of `us`: exact below 2^SUB_BITS, then 2^SUB_BITS buckets per power of two.
fn index(us: u64) -> usize {
    if us < (1 << SUB_BITS) {
        return us as usize;
    }
    let exponent = 63 - us.leading_zeros();
    let shift = exponent - SUB_BITS;
    let sub = (us >> shift) as usize - (1 << SUB_BITS);
    (((shift + 1) as usize) << SUB_BITS) + sub
}

/// The largest value in bucket `i`.
fn upper(i: usize) -> u64 {
    let block = i >> SUB_BITS;
    if block == 0 {
        return i as u64;
    }
    let shift = (block - 1) as u32;
    let low = (((1usize << SUB_BITS) + (i & ((1 << SUB_BITS) - 1))) as u64) << shift;
    low.saturating_add((1u64 << shift) - 1)
}

/// One route template's tally.
#[derive(Debug, Default)]
struct RouteTally {
    statuses: BTreeMap<u16, u64>,
    latency: Histogram,
    errors: u64,
}

/// Everything counted, behind one lock (held for a few map updates per response).
#[derive(Debug, Default)]
struct Tally {
    routes: BTreeMap<&'static str, RouteTally>,
    by_status: BTreeMap<u16, u64>,
    overall: Histogram,
    bad_by_status: BTreeMap<u16, u64>,
    bad_not_refused: BTreeMap<String, u64>,
    sent_by_kind: BTreeMap<Kind, u64>,
    errors: u64,
    error_samples: Vec<String>,
    setup_requests: u64,
}

/// The live counters, shared by every request task.
#[derive(Debug, Default)]
pub struct Recorder {
    tally: Mutex<Tally>,
    sent: AtomicU64,
    received: AtomicU64,
    failures: AtomicU64,
}

/// How one request ended.
pub enum Outcome<'a> {
    /// A response with this status (its body read in full).
    Status(u16),
    /// No (complete) response: this is why.
    Transport(&'a str),
}

impl Recorder {
    fn tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request of `kind` (None: a setup request) is about to be sent.
    pub fn sent(&self, kind: Option<Kind>) {
        match kind {
            Some(kind) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                *self.tally().sent_by_kind.entry(kind).or_default() += 1;
            }
            None => self.tally().setup_requests += 1,
        }
    }

    /// A request to `route` of `kind` (None: setup, kept out of the overall latency) ended.
    pub fn ended(&self, route: &'static str, kind: Option<Kind>, outcome: Outcome, took: Duration) {
        let mut tally = self.tally();
        match outcome {
            Outcome::Status(status) => {
                let route_tally = tally.routes.entry(route).or_default();
                *route_tally.statuses.entry(status).or_default() += 1;
                route_tally.latency.record(took);
                *tally.by_status.entry(status).or_default() += 1;
                if kind.is_some() {
                    tally.overall.record(took);
                    self.received.fetch_add(1, Ordering::Relaxed);
                }
                if kind == Some(Kind::Bad) {
                    *tally.bad_by_status.entry(status).or_default() += 1;
                    if status < 400 {
                        let case = format!("{route} → {status}");
                        *tally.bad_not_refused.entry(case).or_default() += 1;
                    }
                }
                if status >= 500 {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            Outcome::Transport(why) => {
                tally.routes.entry(route).or_default().errors += 1;
                tally.errors += 1;
                if tally.error_samples.len() < ERROR_SAMPLES {
                    tally.error_samples.push(format!("{route}: {why}"));
                }
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// (mix requests sent, mix responses received, 5xx plus transport errors) so far.
    pub fn progress(&self) -> (u64, u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.received.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
        )
    }

    /// The report of everything recorded; `elapsed` is the mix's duration.
    pub fn report(&self, elapsed: Duration, rate: Option<f64>, concurrency: u32) -> Report {
        let tally = self.tally();
        let key = |status: &u16| status.to_string();
        let received: u64 = tally.overall.count();
        let duration_s = elapsed.as_secs_f64();
        Report {
            total: tally.by_status.values().sum(),
            by_status: tally.by_status.iter().map(|(s, n)| (key(s), *n)).collect(),
            by_route: tally
                .routes
                .iter()
                .filter(|(_, t)| !t.statuses.is_empty())
                .map(|(route, t)| {
                    (route.to_string(), t.statuses.iter().map(|(s, n)| (key(s), *n)).collect())
                })
                .collect(),
            latency_ms: tally.overall.latency(),
            errors: tally.errors,
            duration_s: (duration_s * 1000.0).round() / 1000.0,
            sent: self.sent.load(Ordering::Relaxed),
            setup_requests: tally.setup_requests,
            rate_per_s: if duration_s > 0.0 {
                (received as f64 / duration_s * 10.0).round() / 10.0
            } else {
                0.0
            },
            target_rate_per_s: rate,
            concurrency,
            sent_by_kind: tally
                .sent_by_kind
                .iter()
                .map(|(k, n)| (k.name().to_string(), *n))
                .collect(),
            latency_ms_by_route: tally
                .routes
                .iter()
                .filter(|(_, t)| t.latency.count() > 0)
                .map(|(route, t)| {
                    let l = t.latency.latency();
                    (
                        route.to_string(),
                        RouteLatency {
                            count: t.latency.count(),
                            p50: l.p50,
                            p95: l.p95,
                            p99: l.p99,
                            max: l.max,
                        },
                    )
                })
                .collect(),
            errors_by_route: tally
                .routes
                .iter()
                .filter(|(_, t)| t.errors > 0)
                .map(|(route, t)| (route.to_string(), t.errors))
                .collect(),
            error_samples: tally.error_samples.clone(),
            bad_by_status: tally.bad_by_status.iter().map(|(s, n)| (key(s), *n)).collect(),
            bad_not_refused: tally.bad_not_refused.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_tightly() {
        let mut previous_upper = None;
        for i in 0..3000 {
            let top = upper(i);
            if let Some(p) = previous_upper {
                assert!(top > p, "bucket {i}");
            }
            previous_upper = Some(top);
        }
        for us in (0..200_000u64).chain([10_000_000, u64::MAX / 2]) {
            let i = index(us);
            assert!(upper(i) >= us, "{us}");
            assert!(i == 0 || upper(i - 1) < us, "{us}");
            assert!((upper(i) - us) as f64 <= us as f64 / 64.0, "{us}: {}", upper(i));
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let l = h.latency();
        assert!((l.p50 - 500.0).abs() <= 8.0, "{l:?}");
        assert!((l.p95 - 950.0).abs() <= 15.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() <= 16.0, "{l:?}");
        assert_eq!(l.max, 1000.0);
        assert_eq!(Histogram::default().latency().max, 0.0);
    }

    #[test]
    fn setup_requests_count_but_stay_out_of_the_overall_latency() {
        let r = Recorder::default();
        r.sent(None);
        r.ended("POST /api/graph/seed", None, Outcome::Status(201), Duration::from_secs(3));
        r.sent(Some(Kind::Bad));
        r.ended("PUT /api/graph/stats", Some(Kind::Bad), Outcome::Status(405), Duration::ZERO);
        r.sent(Some(Kind::Reads));
        r.ended(
            "GET /api/graph/stats",
            Some(Kind::Reads),
            Outcome::Transport("reset"),
            Duration::ZERO,
        );
        let report = r.report(Duration::from_secs(1), None, 4);
        assert_eq!(report.total, 2);
        assert_eq!(report.errors, 1);
        assert_eq!(report.sent, 2);
        assert_eq!(report.setup_requests, 1);
        assert_eq!(report.by_status["201"], 1);
        assert_eq!(report.by_route["PUT /api/graph/stats"]["405"], 1);
        assert!(!report.by_route.contains_key("GET /api/graph/stats"));
        assert_eq!(report.latency_ms.max, 0.0);
        assert_eq!(report.bad_by_status["405"], 1);
        assert_eq!(r.progress(), (2, 1, 1));
    }
}
