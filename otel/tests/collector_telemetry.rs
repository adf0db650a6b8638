//! The collector's own metrics under the names the alert rules use.
//!
//! The rules, their promtool tests and the Infrastructure dashboard read the collector's internal
//! telemetry (`:8888`, the `otel-collector` scrape job) by the exact names in
//! [`COLLECTOR_SELF_METRICS`]. Those names come from the collector's internal Prometheus exporter,
//! not from the translation the services' series go through, and a release that changed its
//! defaults would rename them silently (a `_total` suffix, say): every alert on them would then
//! stay quiet forever. So this starts the real collector with `collector-config.yaml`, pushes
//! points over OTLP/gRPC through `otel`, starves the memory limiter of a second collector until it
//! refuses, and checks every listed name, `# TYPE` and label keys: present when it should be,
//! absent when this config cannot produce it. The config's infrastructure receivers run here too
//! (their targets unreachable, the host read for real), so every receiver-labelled series is read
//! by its `receiver` label. It needs the collector binary: `cargo xtask tools`.

use opentelemetry::metrics::MeterProvider;
use otel::FromEnv;
use otel::catalogue::prometheus::{Appears, COLLECTOR_SELF_METRICS, CollectorMetric};
use otel::metrics::GraphMetrics;
use std::collections::BTreeMap;
use std::time::Duration;
use testkit::Collector;
use testkit::exposition::{Exposition, Sample};

const SERVICE: &str = "collector-telemetry-proof";

/// Records one point and pushes it to `collector` over OTLP/gRPC; whether the collector took it
/// is for the caller to find out from the collector's own metrics.
fn push(collector: &Collector) {
    let endpoint = collector.otlp_grpc_endpoint();
    let config = otel::Config::from_lookup(|key| match key {
        "OTEL_SERVICE_NAME" => Some(SERVICE.to_string()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_EXPORTER_OTLP_TIMEOUT" => Some("5000".to_string()),
        "OTEL_METRIC_EXPORT_INTERVAL" => Some("3600000".to_string()),
        _ => None,
    })
    .expect("valid config");
    let resource =
        otel::build_resource(&config, &otel::ServiceInfo { name: SERVICE, version: "0" });
    let provider = otel::meter_provider(&config, resource).expect("meter provider");
    GraphMetrics::new(&provider.meter_with_scope(otel::scope())).set_size(3, 2);
    // A refusing collector fails the export; that is the point of the second test.
    let _ = provider.force_flush();
    let _ = provider.shutdown();
}

fn scrape(collector: &Collector) -> anyhow::Result<Exposition> {
    Exposition::parse(&collector.scrape_telemetry()?).map_err(anyhow::Error::msg)
}

fn has(scrape: &Exposition, name: &str) -> bool {
    scrape.types.contains_key(name) || scrape.samples_of(name).next().is_some()
}

/// The value of the one sample of `name` whose labels are exactly `labels`.
fn sample_with(scrape: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> =
        labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let samples: Vec<_> = scrape.samples_of(name).filter(|s| s.labels == want).collect();
    let all: Vec<_> = scrape.samples_of(name).map(|s| &s.labels).collect();
    assert_eq!(samples.len(), 1, "one sample of {name}{want:?} among {all:?}");
    samples[0].value
}

fn assert_present(scrape: &Exposition, metric: &CollectorMetric) {
    assert_eq!(
        scrape.types.get(metric.name).map(String::as_str),
        Some(metric.metric_type.as_str()),
        "# TYPE of {} ({:?})",
        metric.name,
        metric.appears
    );
    assert!(scrape.samples_of(metric.name).next().is_some(), "no sample of {}", metric.name);
    for sample in scrape.samples_of(metric.name) {
        let keys: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
        assert_eq!(keys, metric.labels, "label keys of {}{:?}", metric.name, sample.labels);
    }
}

/// No series of the OTLP receiver (`receiver="otlp"`) under `metric`'s name.
fn assert_absent_for_otlp(scrape: &Exposition, metric: &CollectorMetric) {
    let otlp: Vec<_> = scrape
        .samples_of(metric.name)
        .filter(|s| s.labels.get("receiver").is_some_and(|r| r == "otlp"))
        .collect();
    assert!(otlp.is_empty(), "{} of the OTLP receiver before any request: {otlp:?}", metric.name);
}

fn assert_absent(scrape: &Exposition, metric: &CollectorMetric) {
    assert!(!has(scrape, metric.name), "{} is served, expected {:?}", metric.name, metric.appears);
}

/// The naming `collector-config.yaml` pins: no `_total` or unit suffix added, no scope labels.
fn assert_unsuffixed_and_unscoped(scrape: &Exposition) {
    for (family, kind) in scrape.types.iter().filter(|(f, _)| f.starts_with("otelcol_")) {
        assert!(!family.ends_with("_total"), "{family} ({kind}) got a _total suffix");
    }
    for sample in scrape.samples.iter().filter(|s| s.name.starts_with("otelcol_")) {
        assert!(!sample.labels.contains_key("otel_scope_name"), "{} is scoped", sample.name);
    }
    // The unit of these is `s` and `By`: a unit suffix would show here first.
    assert!(has(scrape, "otelcol_process_uptime"), "otelcol_process_uptime renamed");
    assert!(!has(scrape, "otelcol_process_memory_rss_bytes"), "unit suffix on memory_rss");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collectors_own_metrics_have_the_names_and_types_the_rules_use() {
    let collector = Collector::start().expect("collector starts");
    let before = scrape(&collector).expect("telemetry before any data");
    for metric in COLLECTOR_SELF_METRICS {
        match metric.appears {
            Appears::Always => assert_present(&before, metric),
            // Like the services' counters before issue 10: the OTLP receiver's series do not exist
            // until the first request, which is why the rules read them with `or … * 0`. (The
            // infrastructure receivers' may exist already: see below.)
            Appears::OnData => assert_absent_for_otlp(&before, metric),
            // The infrastructure receivers' first scrape, about a second after start-up, records
            // and exports points: whether it came before this scrape is timing, not checked.
            Appears::OnExport | Appears::OnScrape => {}
            Appears::OnRefusal | Appears::Never(_) => assert_absent(&before, metric),
        }
    }

    let after = testkit::wait_for(
        &format!(
            "accepted and exported points, and a first scrape of host_metrics and redis, on {}",
            collector.telemetry_url()
        ),
        Duration::from_secs(30),
        || {
            push(&collector);
            let now = scrape(&collector)?;
            let label =
                |s: &Sample, key: &str, value: &str| s.labels.get(key).is_some_and(|v| v == value);
            let done = now
                .samples_of("otelcol_receiver_accepted_metric_points")
                .any(|s| label(s, "receiver", "otlp") && s.value > 0.0)
                && now.samples_of("otelcol_exporter_sent_metric_points").any(|s| s.value > 0.0);
            let scraped = ["host_metrics", "redis"].iter().all(|receiver| {
                now.samples_of("otelcol_scraper_scraped_metric_points")
                    .any(|s| label(s, "receiver", receiver))
            });
            Ok((done && scraped).then_some(now))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\ncollector log:\n{}", collector.log()));

    for metric in COLLECTOR_SELF_METRICS {
        match metric.appears {
            Appears::Always | Appears::OnData | Appears::OnExport | Appears::OnScrape => {
                assert_present(&after, metric)
            }
            Appears::OnRefusal | Appears::Never(_) => assert_absent(&after, metric),
        }
    }
    // The labels the promtool tests of the rules give these series.
    let otlp = [("receiver", "otlp"), ("transport", "grpc")];
    assert!(sample_with(&after, "otelcol_receiver_accepted_metric_points", &otlp) >= 1.0);
    assert_eq!(sample_with(&after, "otelcol_receiver_refused_metric_points", &otlp), 0.0);
    assert_eq!(sample_with(&after, "otelcol_receiver_failed_metric_points", &otlp), 0.0);
    let exporter = [("exporter", "prometheus")];
    assert!(sample_with(&after, "otelcol_exporter_sent_metric_points", &exporter) >= 1.0);
    assert!(sample_with(&after, "otelcol_process_memory_rss", &[]) > 1_000_000.0);
    // One series per scraper of the config, the redis one too while its target is unreachable
    // (the values depend on how many scrapes ran: otel/tests/infrastructure.rs checks those).
    let scrapers = ["cpu", "memory", "load", "filesystem", "network"].map(|s| ("host_metrics", s));
    for (receiver, scraper) in scrapers.into_iter().chain([("redis", "redis")]) {
        for name in
            ["otelcol_scraper_scraped_metric_points", "otelcol_scraper_errored_metric_points"]
        {
            sample_with(&after, name, &[("receiver", receiver), ("scraper", scraper)]);
        }
    }
    assert_unsuffixed_and_unscoped(&after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starved_memory_limiter_refuses_under_the_names_the_rules_use() {
    // A 2 MiB limit (1 MiB spike, so a 1 MiB soft limit): the collector's own heap is above it from
    // the start, so the memory limiter refuses every push.
    let collector = Collector::start_with(&[
        ("COLLECTOR_MEMORY_LIMIT_MIB", "2"),
        ("COLLECTOR_MEMORY_SPIKE_LIMIT_MIB", "1"),
    ])
    .expect("collector starts");
    let refused = "otelcol_processor_memory_limiter_refused_metric_points";
    let starved = testkit::wait_for(
        &format!("a memory-limiter refusal on {}", collector.telemetry_url()),
        Duration::from_secs(30),
        || {
            push(&collector);
            let now = scrape(&collector)?;
            let refusing = now.samples_of(refused).any(|s| s.value > 0.0);
            Ok(refusing.then_some(now))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\ncollector log:\n{}", collector.log()));

    let metric = |name| {
        COLLECTOR_SELF_METRICS.iter().find(|m| m.name == name).expect("listed in the catalogue")
    };
    for name in [refused, "otelcol_receiver_refused_metric_points", "otelcol_process_memory_rss"] {
        assert_present(&starved, metric(name));
    }
    assert!(sample_with(&starved, refused, &[("processor", "memory_limiter")]) >= 1.0);
    let otlp = [("receiver", "otlp"), ("transport", "grpc")];
    assert!(sample_with(&starved, "otelcol_receiver_refused_metric_points", &otlp) >= 1.0);
    // A refusal is not a failure: the alert on lost points must not fire for it.
    assert_eq!(sample_with(&starved, "otelcol_receiver_failed_metric_points", &otlp), 0.0);
    for metric in COLLECTOR_SELF_METRICS.iter().filter(|m| matches!(m.appears, Appears::Never(_))) {
        assert_absent(&starved, metric);
    }
    assert_unsuffixed_and_unscoped(&starved);
}
