//! Step 3 of the live proof: abuse pages no one. After the healthy load, the API gets a flood of
//! 10,000 hostile requests (the load generator's `bad` kind: malformed JSON, control characters,
//! numbers out of range, JSON nested 5,000 deep, oversized bodies, unknown methods and paths,
//! missing and unknown tokens) and then a burst above its token's rate limit. Checked: none of
//! them got a 5xx and every one was refused with a 4xx; the burst got 429s; Prometheus counts
//! every flood request and every 429; the flood added at most 10 HTTP series; the API is alive
//! and ready; and no alert fires or is on its way to paging afterwards (step 4 then checks the
//! rules).

use super::checks::Checks;
use super::{COUNT_API_REQUESTS, load_options, prom, step, wait_for_value};
use load::{Options, Stop};
use std::time::Duration;

/// Hostile requests in the flood.
const FLOOD_REQUESTS: u64 = 10_000;

/// The flood's pace: below the live proof's per-token limit (250/s), so each request reaches
/// the check it is meant to meet rather than the rate limit.
const FLOOD_RATE: f64 = 200.0;

/// New HTTP series the flood may add at most (each of a bounded set: route × status).
const SERIES_BUDGET: f64 = 10.0;

/// Every HTTP request-duration series of the API.
const API_SERIES: &str = "count(http_server_request_duration_seconds_count{job=\"orgraph/api\"})";

/// The API's 429 answers, as Prometheus counts them.
const REFUSED_BY_RATE: &str = "sum(http_server_request_duration_seconds_count{job=\"orgraph/api\",http_response_status_code=\"429\"}) or vector(0)";

pub fn hostile_flood(checks: &mut Checks, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    step("abuse: 10,000 hostile requests, then a burst above the rate limit");
    let requests_before = prom::value(COUNT_API_REQUESTS)?.unwrap_or(0.0);
    let series_before = prom::value(API_SERIES)?.unwrap_or(0.0);
    let refused_before = prom::value(REFUSED_BY_RATE)?.unwrap_or(0.0);
    let flood = runtime.block_on(load::run(Options {
        stop: Stop::Requests(FLOOD_REQUESTS),
        rate: Some(FLOOD_RATE),
        concurrency: 16,
        seed: 21,
        mix: load::Mix::parse("bad=1").map_err(anyhow::Error::msg)?,
        ..load_options()?
    }))?;
    let bad: u64 = flood.bad_by_status.values().sum();
    checks.check(
        &format!(
            "{bad} hostile requests: no 5xx, no transport error, every one refused with a 4xx ({:?})",
            flood.bad_by_status
        ),
        bad >= FLOOD_REQUESTS && flood.problems(false).is_empty(),
        || format!("{:?}", flood.problems(false)),
    );
    // As fast as 32 connections go, on the cached read: far above 250/s.
    let burst = runtime.block_on(load::run(Options {
        stop: Stop::After(Duration::from_secs(3)),
        rate: None,
        concurrency: 32,
        seed: 22,
        mix: load::Mix::parse("reads=1").map_err(anyhow::Error::msg)?,
        ..load_options()?
    }))?;
    let limited = burst.by_status.get("429").copied().unwrap_or(0);
    checks.check(
        &format!(
            "a burst above the token's rate limit got 429s ({limited} of {}) and no 5xx",
            burst.total
        ),
        limited > 0 && burst.problems(false).is_empty(),
        || format!("answers {:?}; {:?}", burst.by_status, burst.problems(false)),
    );
    let expected = requests_before + (flood.total + burst.total) as f64;
    let counted = wait_for_value(COUNT_API_REQUESTS, |v| v >= expected, Duration::from_secs(90));
    checks.check(
        "Prometheus counts every hostile and every burst request",
        counted == Some(expected),
        || format!("Prometheus {counted:?}, expected {expected}"),
    );
    let refused = prom::value(REFUSED_BY_RATE)?.unwrap_or(0.0) - refused_before;
    checks.check(
        &format!("Prometheus counts every 429 of the burst ({limited})"),
        refused == limited as f64,
        || format!("Prometheus counted {refused} new 429s"),
    );
    let series_after = prom::value(API_SERIES)?.unwrap_or(0.0);
    checks.check(
        &format!(
            "the flood added at most {SERIES_BUDGET} HTTP series ({series_before} -> {series_after})"
        ),
        series_after - series_before <= SERIES_BUDGET,
        || format!("{} new series", series_after - series_before),
    );
    let alive = super::api_ready(Duration::from_secs(10));
    checks.check("the API is alive and ready after the abuse", alive.is_ok(), || {
        format!("{alive:?}")
    });
    // Two rule evaluations over the abuse: an alert it could trip would be pending by now.
    std::thread::sleep(Duration::from_secs(35));
    let alerts: Vec<(String, String, serde_json::Value)> = prom::alerts()?
        .into_iter()
        .filter(|(name, _, labels)| name != "Watchdog" && !super::about_this_machine(labels))
        .collect();
    let describe = |list: &[&(String, String, serde_json::Value)]| {
        list.iter().map(|(n, s, l)| format!("{n} ({s}) {l}")).collect::<Vec<_>>().join("\n")
    };
    // A page is an alert of severity critical or warning (alertmanager.yml's paging route): none
    // may even be on its way. An info alert may be pending (a flood of unknown job ids is a run
    // of cache misses, which CacheHitRateLow would report after 10 minutes of it), never firing.
    let pages: Vec<_> = alerts
        .iter()
        .filter(|(_, state, labels)| {
            state == "firing" || matches!(labels["severity"].as_str(), Some("critical" | "warning"))
        })
        .collect();
    let pending_info: Vec<_> = alerts.iter().filter(|a| !pages.contains(a)).collect();
    checks.check(
        &format!(
            "abuse pages no one: no alert firing, no page pending ({} info alert(s) pending{})",
            pending_info.len(),
            if pending_info.is_empty() {
                String::new()
            } else {
                format!(": {}", describe(&pending_info))
            }
        ),
        pages.is_empty(),
        || describe(&pages),
    );
    Ok(())
}
