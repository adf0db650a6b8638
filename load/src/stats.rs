//! What the client saw, recorded while the load runs: responses by route template and status,
//! transport errors, and latencies in HdrHistograms of 2 significant digits (memory grows with the
//! range of the latencies, not with the length of the run; percentiles are within 1% of the true
//! value, the maximum is exact).

use super::mix::Kind;
use super::report::{Latency, Report, RouteLatency};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Significant digits of the latency histograms: 2 gives 256 sub-buckets per power of two, a
/// relative error below 1/128.
const SIGNIFICANT_DIGITS: u8 = 2;

/// The largest latency the histograms hold, in µs (HdrHistogram's limit); a longer one counts as
/// this (the maximum stays exact).
const TRACKABLE_US: u64 = u64::MAX / 2;

/// Transport error messages kept for the report.
const ERROR_SAMPLES: usize = 5;

/// A latency histogram in microseconds (an HdrHistogram that resizes to the largest value), with
/// the exact maximum beside it.
#[derive(Debug, Clone)]
pub struct Histogram {
    hdr: hdrhistogram::Histogram<u64>,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        let hdr = hdrhistogram::Histogram::new(SIGNIFICANT_DIGITS)
            .expect("2 significant digits are within HdrHistogram's 0 to 5");
        Histogram { hdr, max_us: 0 }
    }
}

impl Histogram {
    /// Adds one latency, in whole microseconds, to its bucket.
    pub fn record(&mut self, value: Duration) {
        let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
        // `record` resizes the histogram to hold `us`; `saturating_record` would not resize.
        if self.hdr.record(us.min(TRACKABLE_US)).is_err() {
            self.hdr.saturating_record(us);
        }
        self.max_us = self.max_us.max(us);
    }

    pub fn count(&self) -> u64 {
        self.hdr.len()
    }

    /// The `q` quantile (0 < q ≤ 1) in microseconds: the top of the bucket holding it, never
    /// above the maximum; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.hdr.is_empty() {
            return 0;
        }
        self.hdr.value_at_quantile(q).min(self.max_us)
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
        let hdr = &Histogram::default().hdr;
        let mut previous_top = None;
        for us in (0..200_000u64).chain([10_000_000, u64::MAX / 2]) {
            // The bucket holding `us` spans lowest_equivalent..=highest_equivalent.
            let (bottom, top) = (hdr.lowest_equivalent(us), hdr.highest_equivalent(us));
            assert!(bottom <= us && us <= top, "{us}: {bottom}..={top}");
            assert!((top - us) as f64 <= us as f64 / 64.0, "{us}: {top}");
            // Buckets ascend: the next value is in this bucket or in one above it.
            if let Some((p_bottom, p_top)) = previous_top {
                assert!((bottom, top) == (p_bottom, p_top) || bottom > p_top, "{us}");
            }
            previous_top = Some((bottom, top));
        }
    }

    #[test]
    fn a_latency_beyond_the_range_counts_at_its_top() {
        let mut h = Histogram::default();
        h.record(Duration::from_millis(1));
        h.record(Duration::MAX);
        assert_eq!(h.count(), 2);
        assert!((1000..=1010).contains(&h.quantile_us(0.5)), "{}", h.quantile_us(0.5));
        assert!(h.quantile_us(1.0) >= TRACKABLE_US);
        assert_eq!(h.latency().max, u64::MAX as f64 / 1000.0);
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
