//! The API benchmarks, on the release binary with Postgres, Redis and a collector of its own.
//!
//! * [`throughput`]: the API instrumented (OTLP to the collector every 15 s), with
//!   `OTEL_SDK_DISABLED=true`, and traced (instrumented, and every request's spans exported to
//!   the same collector), in turn A B C A B C on the same data (a graph of 1000 employees seeded
//!   once), each hammered with `GET /api/graph/stats` (the cached read: answered from the
//!   in-process cache) by 32 concurrent connections: 2 s of warm-up, then requests per second
//!   over the measured window. The client and the API share the machine, and so may other
//!   processes: the cores they kept busy during each run are printed beside it. The better run
//!   of each side counts; the ratios are instrumented over disabled and traced over disabled.
//!   A traced run counts only if the collector received its spans and passed every one on; the
//!   other runs must send none.
//! * [`flood`]: the instrumented API gets a flood of unique unknown URLs (`/flood/<random>`, all
//!   404). A warm-up tenth of the flood first creates the one series an unknown route may have
//!   (status 404, no route) and warms the allocator; after its export, the API's resident memory
//!   and the number of its `http_server_*` series in the collector's scrape are read, the flood
//!   is sent, and after its export both are read again.

use super::services::{EXPORT_INTERVAL_MS, Infra, Telemetry, rss_bytes};
use super::traces::{SpanCounts, TracedTotals};
use super::{Figures, Plan, best_of};
use super::{cpu, drive};
use anyhow::Context;
use load::{Mix, Options, Stop};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use testkit::exposition::Exposition;
use tokio::runtime::Runtime;

/// Connections hammering the API.
const CONCURRENCY: usize = 32;

/// Load before each measured window.
const WARM_UP: Duration = Duration::from_secs(2);

/// Employees of the seeded graph.
const EMPLOYEES: u32 = 1000;

/// The request count of every HTTP server request (a histogram's `_count`).
const REQUEST_COUNT: &str = "http_server_request_duration_seconds_count";

/// Adds `api_rps_instrumented`, `api_rps_disabled`, `api_rps_traced`, `api_throughput_ratio`,
/// `api_throughput_ratio_traced`, and over both traced runs the spans the API lost before export
/// and their share of all its spans (`api_spans_dropped_traced`, `api_spans_dropped_share_traced`).
pub fn throughput(
    plan: Plan,
    infra: &Infra,
    runtime: &Runtime,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    let mut traced_spans = TracedTotals::default();
    let total = Telemetry::ALTERNATING.len();
    for (i, telemetry) in Telemetry::ALTERNATING.into_iter().enumerate() {
        let spans = SpanCounts::read(&infra.collector)?;
        let api = infra.start_api(telemetry)?;
        if i == 0 {
            seed(runtime, &api.base, &infra.tokens.admin)?;
        }
        eprintln!(
            "[bench] api run {}/{total} ({}): GET /api/graph/stats, {CONCURRENCY} connections, \
             {WARM_UP:?} warm-up, {:?} measured",
            i + 1,
            telemetry.name(),
            plan.api_measure()
        );
        let client = drive::client(CONCURRENCY, &infra.tokens.admin)?;
        let url = format!("{}/api/graph/stats", api.base);
        let before = cpu::Snapshot::take(api.pid())?;
        let rps = runtime.block_on(drive::saturate(
            &client,
            &url,
            CONCURRENCY,
            WARM_UP,
            plan.api_measure(),
        ))?;
        let others = before.others_since(&cpu::Snapshot::take(api.pid())?);
        eprintln!(
            "[bench] api run {}/{total} ({}): {rps:.0} requests/s (other processes kept \
             {others:.2} cores busy meanwhile)",
            i + 1,
            telemetry.name()
        );
        let stopped = api.stop()?;
        traced_spans.record(
            &infra.collector,
            (telemetry, &spans, &stopped),
            "api",
            (i + 1, total),
        )?;
        runs.push((telemetry, rps));
    }
    let disabled = best_of(&runs, Telemetry::Disabled);
    anyhow::ensure!(disabled > 0.0, "the disabled API answered nothing");
    let instrumented = best_of(&runs, Telemetry::Instrumented);
    let traced = best_of(&runs, Telemetry::Traced);
    figures.add("api_rps_instrumented", format!("{instrumented:.0}"));
    figures.add("api_rps_disabled", format!("{disabled:.0}"));
    figures.add("api_rps_traced", format!("{traced:.0}"));
    figures.add("api_throughput_ratio", format!("{:.3}", instrumented / disabled));
    figures.add("api_throughput_ratio_traced", format!("{:.3}", traced / disabled));
    figures.add("api_spans_dropped_traced", traced_spans.lost().to_string());
    figures.add("api_spans_dropped_share_traced", format!("{:.4}", traced_spans.lost_share()));
    Ok(())
}

/// Seeds the graph with [`EMPLOYEES`] employees through the load generator's setup (it fails
/// unless the API answers 201).
fn seed(runtime: &Runtime, base: &str, token: &str) -> anyhow::Result<()> {
    eprintln!("[bench] seeding a graph of {EMPLOYEES} employees");
    let report = runtime.block_on(load::run(Options {
        url: base.to_string(),
        token: Some(token.to_string()),
        stop: Stop::Requests(1),
        concurrency: 1,
        mix: Mix::parse("reads=1").map_err(anyhow::Error::msg)?,
        seed_graph: EMPLOYEES,
        seed: 7,
        ..Options::default()
    }))?;
    let problems = report.problems(false);
    anyhow::ensure!(problems.is_empty(), "seeding went wrong: {}", problems.join("; "));
    Ok(())
}

/// Adds `flood_rss_growth_ratio`, `flood_series_growth`, and the resident memory before and
/// after (`flood_rss_before_mib`, `flood_rss_after_mib`).
pub fn flood(
    plan: Plan,
    infra: &Infra,
    runtime: &Runtime,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let api = infra.start_api(Telemetry::Instrumented)?;
    let client = drive::client(CONCURRENCY, &infra.tokens.admin)?;
    let seed = clock_seed();
    let warm_up = plan.flood_requests() / 10;
    eprintln!("[bench] flood warm-up: {warm_up} unique URLs, {CONCURRENCY} connections");
    let statuses =
        runtime.block_on(drive::flood(&client, &api.base, warm_up, CONCURRENCY, seed))?;
    all_404(&statuses)?;
    let instance = wait_for_404s(infra, None, warm_up)?;
    let rss_before = rss_bytes(api.pid())?;
    let series_before = http_series(&scrape(infra)?, &instance);
    eprintln!(
        "[bench] before the flood: RSS {:.1} MiB, {series_before} http_server_* series of \
         instance {instance}",
        mib(rss_before)
    );

    let requests = plan.flood_requests();
    eprintln!("[bench] flood: {requests} unique URLs, {CONCURRENCY} connections");
    let statuses =
        runtime.block_on(drive::flood(&client, &api.base, requests, CONCURRENCY, !seed))?;
    all_404(&statuses)?;
    wait_for_404s(infra, Some(&instance), warm_up + requests)?;
    let rss_after = rss_bytes(api.pid())?;
    let text = scrape(infra)?;
    let series_after = http_series(&text, &instance);
    eprintln!(
        "[bench] after the flood: RSS {:.1} MiB, {series_after} http_server_* series",
        mib(rss_after)
    );
    api.stop()?;

    figures.add("flood_rss_before_mib", format!("{:.1}", mib(rss_before)));
    figures.add("flood_rss_after_mib", format!("{:.1}", mib(rss_after)));
    figures.add("flood_rss_growth_ratio", format!("{:.3}", rss_after as f64 / rss_before as f64));
    figures.add("flood_series_growth", (series_after as i64 - series_before as i64).to_string());
    Ok(())
}

fn all_404(statuses: &BTreeMap<u16, u64>) -> anyhow::Result<()> {
    anyhow::ensure!(
        statuses.keys().all(|&s| s == 404),
        "unknown URLs must all answer 404; answers by status: {statuses:?}"
    );
    Ok(())
}

fn scrape(infra: &Infra) -> anyhow::Result<Exposition> {
    let text = infra.collector.scrape()?;
    Exposition::parse(&text)
        .map_err(anyhow::Error::msg)
        .context("the collector's scrape does not parse")
}

/// Waits until the collector shows at least `count` requests answered 404 (by `instance`, or by
/// the single instance that has any); returns that instance.
fn wait_for_404s(infra: &Infra, instance: Option<&str>, count: u64) -> anyhow::Result<String> {
    let timeout = Duration::from_millis(2 * EXPORT_INTERVAL_MS) + Duration::from_secs(15);
    eprintln!("[bench] waiting for the export of {count} 404 answers");
    testkit::wait_for(&format!("{count} 404 answers in the collector"), timeout, || {
        let exposition = scrape(infra)?;
        let counts = not_found_by_instance(&exposition);
        let found = match instance {
            Some(instance) => counts.get(instance).map(|&n| (instance.to_string(), n)),
            None => {
                anyhow::ensure!(counts.len() <= 1, "404s from several instances: {counts:?}");
                counts.into_iter().next()
            }
        };
        Ok(found.filter(|&(_, n)| n >= count as f64).map(|(instance, _)| instance))
    })
}

/// The exported count of 404 answers, by `instance`.
fn not_found_by_instance(exposition: &Exposition) -> BTreeMap<String, f64> {
    let mut counts = BTreeMap::new();
    for sample in exposition.samples_of(REQUEST_COUNT) {
        if sample.labels.get("http_response_status_code").map(String::as_str) == Some("404") {
            let instance = sample.labels.get("instance").cloned().unwrap_or_default();
            *counts.entry(instance).or_insert(0.0) += sample.value;
        }
    }
    counts
}

/// The number of `http_server_*` series (distinct name and labels) of `instance`.
fn http_series(exposition: &Exposition, instance: &str) -> usize {
    exposition
        .samples
        .iter()
        .filter(|s| s.name.starts_with("http_server_"))
        .filter(|s| s.labels.get("instance").map(String::as_str) == Some(instance))
        .map(|s| format!("{}{:?}", s.name, s.labels))
        .collect::<BTreeSet<_>>()
        .len()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// A seed that differs from run to run.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "\
# TYPE http_server_request_duration_seconds histogram
http_server_request_duration_seconds_count{instance=\"a\",http_response_status_code=\"404\"} 7
http_server_request_duration_seconds_count{instance=\"a\",http_route=\"/x\",http_response_status_code=\"200\"} 3
http_server_request_duration_seconds_bucket{instance=\"a\",http_response_status_code=\"404\",le=\"+Inf\"} 7
http_server_request_duration_seconds_count{instance=\"b\",http_response_status_code=\"404\"} 2
http_server_active_requests{instance=\"a\"} 0
orgraph_cache_hits_total{instance=\"a\"} 4
";

    #[test]
    fn not_found_answers_are_counted_by_instance() -> anyhow::Result<()> {
        let exposition = Exposition::parse(SCRAPE).map_err(anyhow::Error::msg)?;
        let counts = not_found_by_instance(&exposition);
        assert_eq!(counts.get("a"), Some(&7.0));
        assert_eq!(counts.get("b"), Some(&2.0));
        Ok(())
    }

    #[test]
    fn only_http_server_series_of_the_instance_count() -> anyhow::Result<()> {
        let exposition = Exposition::parse(SCRAPE).map_err(anyhow::Error::msg)?;
        assert_eq!(http_series(&exposition, "a"), 4);
        assert_eq!(http_series(&exposition, "b"), 1);
        assert_eq!(http_series(&exposition, "c"), 0);
        Ok(())
    }

    #[test]
    fn only_404s_pass() {
        assert!(all_404(&BTreeMap::from([(404, 10)])).is_ok());
        assert!(all_404(&BTreeMap::from([(404, 10), (500, 1)])).is_err());
    }
}
