//! The translation proof: the Prometheus names in the catalogue's model (and in the checked-in
//! `docs/METRICS.md`) are the names the real collector emits.
//!
//! For each OTLP protocol the services can use, this starts the collector built from
//! `collector/builder-config.yaml` with the repo's own `collector-config.yaml` (on free loopback
//! ports), records one data point of every catalogue instrument through `otel`'s helpers, and
//! scrapes the collector's `prometheus` exporter. It asserts, exactly: every expected series with
//! its `# TYPE` and `# HELP`, the label keys of every sample, `job`/`instance` from the resource,
//! `target_info`, and no series nobody expects. The config's infrastructure receivers serve series
//! too (the host's, and `up` for an unreachable postgres_exporter) under the jobs of
//! [`infrastructure::JOBS`]; those are `otel/tests/infrastructure.rs`'s to prove, and ignored
//! here. It needs the collector binary: `cargo xtask tools`.

use opentelemetry::metrics::{Meter, MeterProvider};
use otel::FromEnv;
use otel::catalogue::docs::INFRASTRUCTURE_HEADING;
use otel::catalogue::*;
use otel::catalogue::{self, infrastructure, prometheus};
use otel::metrics::*;
use std::any::Any;
use std::collections::BTreeSet;
use std::time::Duration;
use testkit::Collector;
use testkit::exposition::Exposition;

const SERVICE: &str = "translation-proof";
const NAMESPACE: &str = "orgraph";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_names_survive_the_real_collector_over_grpc() {
    prove("grpc", |c| c.otlp_grpc_endpoint()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_names_survive_the_real_collector_over_http() {
    prove("http/protobuf", |c| c.otlp_http_endpoint()).await;
}

async fn prove(protocol: &str, endpoint: fn(&Collector) -> String) {
    let collector = Collector::start().expect("collector starts");
    let instance_id = format!("proof-{}-{}", protocol.replace('/', "-"), std::process::id());
    let endpoint = endpoint(&collector);
    let attributes = format!(
        "service.namespace={NAMESPACE},service.instance.id={instance_id},deployment.environment.name=test"
    );
    let config = otel::Config::from_lookup(|key| match key {
        "OTEL_SERVICE_NAME" => Some(SERVICE.to_string()),
        "OTEL_RESOURCE_ATTRIBUTES" => Some(attributes.clone()),
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_EXPORTER_OTLP_PROTOCOL" => Some(protocol.to_string()),
        "OTEL_METRIC_EXPORT_INTERVAL" => Some("3600000".to_string()),
        _ => None,
    })
    .expect("valid config");
    let resource =
        otel::build_resource(&config, &otel::ServiceInfo { name: SERVICE, version: "1.2.3" });
    let provider = otel::meter_provider(&config, resource).expect("meter provider");
    let meter = provider.meter_with_scope(otel::scope());
    let _keep = record_every_instrument(&meter);
    provider.force_flush().expect("export to the collector");

    let expected = expected_series();
    let scrape = testkit::wait_for(
        &format!("every catalogue series on {} ({protocol})", collector.prometheus_url()),
        Duration::from_secs(30),
        || {
            let text = collector.scrape()?;
            let exposition = services_only(Exposition::parse(&text).map_err(anyhow::Error::msg)?);
            let names: BTreeSet<String> =
                exposition.names().into_iter().map(String::from).collect();
            Ok(expected.is_subset(&names).then_some(exposition))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\ncollector log:\n{}", collector.log()));

    assert_families(&scrape);
    assert_no_unexpected_series(&scrape, &expected);
    assert_resource_labels(&scrape, &instance_id);
    assert_matches_checked_in_reference(&scrape);

    let health = testkit::http_get(&collector.health_url()).expect("health endpoint answers");
    assert_eq!(health.0, 200, "collector health: {}", health.1);
    provider.shutdown().expect("provider shuts down");
}

/// `scrape` without the series of the infrastructure jobs.
fn services_only(mut scrape: Exposition) -> Exposition {
    scrape.samples.retain(|s| {
        !s.labels.get("job").is_some_and(|job| infrastructure::is_infrastructure_job(job))
    });
    scrape
}

/// Every series name the catalogue model predicts.
fn expected_series() -> BTreeSet<String> {
    prometheus::families().into_iter().flat_map(|f| f.series).collect()
}

fn assert_families(scrape: &Exposition) {
    for family in prometheus::families() {
        assert_eq!(
            scrape.types.get(&family.name).map(String::as_str),
            Some(family.metric_type.as_str()),
            "# TYPE of {}",
            family.name
        );
        assert_eq!(
            scrape.help.get(&family.name).map(String::as_str),
            Some(family.help),
            "# HELP of {}",
            family.name
        );
        for series in &family.series {
            let want = family.all_labels(series);
            let samples: Vec<_> = scrape.samples_of(series).collect();
            assert!(!samples.is_empty(), "{series} missing");
            for sample in samples {
                let got: Vec<String> = sample.labels.keys().cloned().collect();
                assert_eq!(got, want, "label keys of {series}{:?}", sample.labels);
            }
        }
    }
}

fn assert_no_unexpected_series(scrape: &Exposition, expected: &BTreeSet<String>) {
    let unexpected: Vec<&str> = scrape
        .names()
        .into_iter()
        .filter(|n| *n != prometheus::TARGET_INFO && !expected.contains(*n))
        .collect();
    assert!(unexpected.is_empty(), "series nobody expects: {unexpected:?}");
}

fn assert_resource_labels(scrape: &Exposition, instance_id: &str) {
    let job = format!("{NAMESPACE}/{SERVICE}");
    for sample in scrape.samples.iter() {
        assert_eq!(sample.labels.get("job"), Some(&job), "job of {}", sample.name);
        assert_eq!(
            sample.labels.get("instance").map(String::as_str),
            Some(instance_id),
            "instance of {}",
            sample.name
        );
        if sample.name != prometheus::TARGET_INFO {
            assert_eq!(
                sample.labels.get("otel_scope_name").map(String::as_str),
                Some(otel::METER_NAME)
            );
        }
    }
    let info: Vec<_> = scrape.samples_of(prometheus::TARGET_INFO).collect();
    assert_eq!(info.len(), 1, "one target_info per service instance");
    let labels = &info[0].labels;
    assert_eq!(labels.get("service_version").map(String::as_str), Some("1.2.3"));
    assert_eq!(labels.get("deployment_environment_name").map(String::as_str), Some("test"));
    assert!(labels.contains_key("host_name"), "host.name on target_info: {labels:?}");
    assert!(
        !labels.contains_key("service_name"),
        "service.name is in job, not repeated: {labels:?}"
    );
}

/// The proof against an expectation written down independently of the model: a catalogue name or
/// unit changed without regenerating (and reviewing) docs/METRICS.md fails here.
fn assert_matches_checked_in_reference(scrape: &Exposition) {
    let path = testkit::repo_root().join("docs").join("METRICS.md");
    let reference = std::fs::read_to_string(path).expect("docs/METRICS.md");
    let (services, _) = reference.split_once(INFRASTRUCTURE_HEADING).unwrap_or((&reference, ""));
    let documented: BTreeSet<&str> = services
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('|').nth(2))
        .flat_map(|cell| cell.split("<br>"))
        .map(|s| s.trim().trim_matches('`'))
        .collect();
    let emitted: BTreeSet<&str> =
        scrape.names().into_iter().filter(|n| *n != prometheus::TARGET_INFO).collect();
    let undocumented: Vec<_> = emitted.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&emitted).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "the collector's names differ from docs/METRICS.md: emitted but not documented \
         {undocumented:?}; documented but not emitted {missing:?}"
    );
}

/// One data point of every instrument, through the helpers services use. Returns what must stay
/// alive for observable instruments to keep reporting.
fn record_every_instrument(meter: &Meter) -> Vec<Box<dyn Any>> {
    let http = HttpServerMetrics::new(meter);
    http.start("GET", Scheme::Http).finish(RequestOutcome {
        route: Some("/api/graph/nodes/{id}"),
        status: 503,
        request_bytes: 10,
        response_bytes: 200,
    });

    let cache = CacheMetrics::new(meter);
    cache.hit(CacheLayer::L1, CacheName::GraphStats);
    cache.set_size(CacheLayer::L1, CacheName::GraphStats, 1, 512);

    let pool = PoolMetrics::new(meter, PoolName::Postgres, || PoolStats {
        idle: 2,
        used: 1,
        max: 10,
        pending: 0,
    });
    pool.acquired(Duration::from_millis(1));
    pool.timed_out(Duration::from_secs(1));

    let queues = QueueMetrics::new(meter);
    queues.update(
        Queue::Analysis,
        QueueStats { pending: 3, running: 1, failed: 0, oldest_pending_age_secs: 4.0 },
    );
    queues.enqueued(Queue::Analysis);
    queues.dequeued(Queue::Analysis);

    let breakers = BreakerMetrics::new(meter);
    breakers.set_state(BreakerName::Redis, BreakerState::Closed);
    breakers.call(BreakerName::Redis, BreakerOutcome::Success);

    let graph = GraphMetrics::new(meter);
    graph.set_size(10, 20);
    graph.updated(GraphOperation::Seed, Duration::from_millis(30));

    let worker = WorkerMetrics::new(meter);
    worker.worker_started(Queue::Analysis, 2);
    let running = worker.task_started(Queue::Analysis);
    worker.task_finished(TaskType::Analysis, TaskStatus::Success, Duration::from_secs(2));

    let exports = ExportMetrics::new(meter);
    exports.succeeded(ExportKind::EmployeeMetrics, ExportFormat::Csv, Duration::from_secs(3), 4096);
    exports.timed_out(ExportKind::EmployeeMetrics, ExportFormat::Jsonl, Duration::from_secs(600));
    exports.set_slow_threshold(Duration::from_secs(300));

    let retention = RetentionMetrics::new(meter);
    retention.removed(RetentionReason::Age, 2);
    retention.pass_finished(RetentionOutcome::Success, Duration::from_millis(12));

    let interventions = InterventionMetrics::new(meter);
    interventions.proposed(InterventionKind::Reassign);
    interventions.executed(InterventionKind::Reassign, InterventionOutcome::Success);
    interventions.rolled_back(InterventionKind::Reassign, InterventionOutcome::Success);

    let spans = SpanPipelineMetrics::new(meter, SpanExporterType::OtlpGrpc);
    spans.dropped(SpanDropReason::QueueFull);
    spans.export_failed(3, SpanExportError::Other);

    let process = ProcessMetrics::new(meter);
    vec![Box::new(pool), Box::new(queues), Box::new(running), Box::new(process)]
}

#[test]
fn every_catalogue_instrument_is_recorded_by_the_proof() {
    // The proof only proves what it records: a new catalogue entry must get a line above.
    let recorder = otel::metrics::testing::Recorder::new();
    let _keep = record_every_instrument(recorder.meter());
    let points = recorder.collect();
    points.assert_conforms();
    let recorded = points.names();
    for instrument in catalogue::ALL {
        assert!(
            recorded.contains(instrument.name),
            "{} is not recorded by the proof",
            instrument.name
        );
    }
}
