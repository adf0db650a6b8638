//! The result of a load run: the JSON `--json` writes (and [`super::run`] returns), the text
//! summary printed at the end, and the verdict (what makes the run fail).
//!
//! `total` and `by_status` count exactly the responses received, setup requests (seeding, the
//! first page) included, so they can be compared with the server's own request counter;
//! requests that got no response are only in `errors`.

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// One route's latency percentiles in milliseconds, with how many responses they cover.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RouteLatency {
    /// How many responses the percentiles cover.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
}

/// What the client saw. Status codes are JSON object keys (strings); routes are
/// `METHOD /route/{template}`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Responses received (setup requests included).
    pub total: u64,
    /// Responses by status code.
    pub by_status: BTreeMap<String, u64>,
    /// Responses by route template, then status code.
    pub by_route: BTreeMap<String, BTreeMap<String, u64>>,
    /// Latency of the mix's responses (setup requests left out).
    pub latency_ms: Latency,
    /// Requests that got no response (connection errors, the client's 15 s timeout).
    pub errors: u64,
    /// How long the mix ran, from its first request to its last response.
    pub duration_s: f64,
    /// Mix requests sent (setup requests not included).
    pub sent: u64,
    /// Requests sent before the mix: seeding the graph, the first page of employees.
    pub setup_requests: u64,
    /// Mix responses per second.
    pub rate_per_s: f64,
    /// The `--rate` asked for; absent: as fast as possible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rate_per_s: Option<f64>,
    /// Requests in flight at most.
    pub concurrency: u32,
    /// Mix requests sent by kind.
    pub sent_by_kind: BTreeMap<String, u64>,
    /// Latency by route template (setup requests included here).
    pub latency_ms_by_route: BTreeMap<String, RouteLatency>,
    /// Transport errors by route template.
    pub errors_by_route: BTreeMap<String, u64>,
    /// The first few transport errors.
    pub error_samples: Vec<String>,
    /// Responses to the deliberately bad requests, by status code.
    pub bad_by_status: BTreeMap<String, u64>,
    /// Bad requests the API did not refuse (`route → status`); should stay empty.
    pub bad_not_refused: BTreeMap<String, u64>,
}

impl Report {
    /// Why this run counts as failed: 5xx responses (unless `allow_5xx`), transport errors, bad
    /// requests the API accepted. Empty: it passed.
    pub fn problems(&self, allow_5xx: bool) -> Vec<String> {
        let mut problems = Vec::new();
        if !allow_5xx {
            let server_errors: Vec<String> = self
                .by_route
                .iter()
                .flat_map(|(route, statuses)| {
                    statuses
                        .iter()
                        .filter(|(status, _)| status.starts_with('5'))
                        .map(move |(status, n)| format!("{route} → {status} ×{n}"))
                })
                .collect();
            if !server_errors.is_empty() {
                let n: u64 =
                    self.by_status.iter().filter(|(s, _)| s.starts_with('5')).map(|(_, n)| n).sum();
                problems.push(format!(
                    "{n} responses were server errors (5xx; --allow-5xx accepts them): {}",
                    server_errors.join(", ")
                ));
            }
        }
        if self.errors > 0 {
            problems.push(format!(
                "{} requests got no response (transport errors); first: {}",
                self.errors,
                self.error_samples.join("; ")
            ));
        }
        if !self.bad_not_refused.is_empty() {
            let cases: Vec<String> =
                self.bad_not_refused.iter().map(|(case, n)| format!("{case} ×{n}")).collect();
            problems.push(format!(
                "bad requests the API should have refused with a 4xx: {}",
                cases.join(", ")
            ));
        }
        problems
    }

    /// The human summary: totals, then one line per route with its statuses and latencies.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let target = match self.target_rate_per_s {
            Some(rate) => format!("target {rate}/s"),
            None => "as fast as possible".to_string(),
        };
        let _ = writeln!(
            out,
            "load: {} requests in {:.1} s: {:.1}/s ({target}, concurrency {}); {} setup requests",
            self.sent, self.duration_s, self.rate_per_s, self.concurrency, self.setup_requests
        );
        let kinds: Vec<String> =
            self.sent_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(out, "sent by kind: {}", kinds.join(", "));
        let _ = writeln!(
            out,
            "responses: {} ({}); transport errors: {}",
            self.total,
            statuses(&self.by_status),
            self.errors
        );
        if !self.bad_by_status.is_empty() {
            let _ = writeln!(out, "bad requests refused: {}", statuses(&self.bad_by_status));
        }
        let width = self.by_route.keys().map(|r| r.chars().count()).max().unwrap_or(0).max(7);
        let _ = writeln!(
            out,
            "\n{:<width$} {:>7} {:>9} {:>9} {:>9} {:>9}  statuses",
            "route", "count", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for (route, by_status) in &self.by_route {
            let mut line = match self.latency_ms_by_route.get(route) {
                Some(l) => format!(
                    "{route:<width$} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2}  {}",
                    l.count,
                    l.p50,
                    l.p95,
                    l.p99,
                    l.max,
                    statuses(by_status)
                ),
                None => format!("{route:<width$} {:>7}", 0),
            };
            if let Some(errors) = self.errors_by_route.get(route) {
                let _ = write!(line, ", transport errors {errors}");
            }
            let _ = writeln!(out, "{line}");
        }
        for (route, errors) in &self.errors_by_route {
            if !self.by_route.contains_key(route) {
                let _ = writeln!(out, "{route:<width$} {:>7}  transport errors {errors}", 0);
            }
        }
        let l = self.latency_ms;
        let _ = writeln!(
            out,
            "{:<width$} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            "overall",
            self.total - self.setup_requests.min(self.total),
            l.p50,
            l.p95,
            l.p99,
            l.max
        );
        if let Some(rate) = self.target_rate_per_s
            && self.rate_per_s < rate * 0.95
        {
            let _ = writeln!(
                out,
                "note: {:.1}/s is below the target {rate}/s: {} requests in flight were not \
                 enough at this latency (raise --concurrency)",
                self.rate_per_s, self.concurrency
            );
        }
        out
    }
}

/// `200 ×12, 404 ×3`.
fn statuses(counts: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{s} ×{n}")).collect();
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let map = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        Report {
            total: 10,
            by_status: map(&[("200", 7), ("404", 2), ("503", 1)]),
            by_route: [
                ("GET /api/graph/stats".to_string(), map(&[("200", 7), ("503", 1)])),
                ("GET /no/{random}".to_string(), map(&[("404", 2)])),
            ]
            .into(),
            latency_ms: Latency { p50: 1.0, p95: 2.0, p99: 3.0, max: 4.0 },
            errors: 0,
            duration_s: 1.0,
            sent: 10,
            setup_requests: 0,
            rate_per_s: 10.0,
            target_rate_per_s: Some(100.0),
            concurrency: 1,
            sent_by_kind: map(&[("reads", 8), ("bad", 2)]),
            latency_ms_by_route: BTreeMap::new(),
            errors_by_route: BTreeMap::new(),
            error_samples: Vec::new(),
            bad_by_status: map(&[("404", 2)]),
            bad_not_refused: BTreeMap::new(),
        }
    }

    #[test]
    fn the_json_has_the_documented_keys() {
        let json = serde_json::to_value(report()).unwrap();
        for key in ["total", "by_status", "by_route", "latency_ms", "errors", "duration_s"] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(json["by_route"]["GET /api/graph/stats"]["200"], 7);
        assert_eq!(json["latency_ms"]["p99"], 3.0);
    }

    #[test]
    fn server_errors_fail_unless_allowed_and_transport_errors_always() {
        let mut r = report();
        let problems = r.problems(false);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("GET /api/graph/stats → 503 ×1"), "{problems:?}");
        assert!(r.problems(true).is_empty());
        r.errors = 2;
        r.error_samples = vec!["GET /api/graph/stats: timed out".into()];
        assert!(r.problems(true)[0].contains("2 requests got no response"));
        r.bad_not_refused.insert("PUT /api/graph/stats → 200".into(), 1);
        assert_eq!(r.problems(true).len(), 2);
        assert!(r.render().contains("below the target"));
    }
}
