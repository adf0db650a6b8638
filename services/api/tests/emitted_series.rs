//! The API's real output through the real collector: a request mix against the service, exported
//! over OTLP to the collector built from `collector/builder-config.yaml`, scraped from its
//! `prometheus` exporter. Every series the API actually emits must be one the catalogue predicts,
//! with label keys from its declaration, `job="orgraph/api"`, and route labels that are templates.
//! (The translation proof covers the catalogue; this covers what the service does with it.)

mod support;

use otel::FromEnv;
use otel::catalogue::{infrastructure, prometheus};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::TestApi;
use testkit::exposition::Exposition;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apis_emitted_series_are_the_catalogues() {
    let collector = tokio::task::spawn_blocking(testkit::Collector::start)
        .await
        .expect("join")
        .expect("collector");
    let endpoint = collector.otlp_grpc_endpoint();
    let config = otel::Config::from_lookup(|k| match k {
        "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
        "OTEL_SERVICE_NAME" => Some("api".into()),
        "OTEL_RESOURCE_ATTRIBUTES" => Some("service.instance.id=api-under-test".into()),
        "OTEL_METRIC_EXPORT_INTERVAL" => Some("3600000".into()),
        _ => None,
    })
    .expect("config");
    let telemetry = otel::Telemetry::start(&config, otel::service_info!()).expect("telemetry");

    let api = TestApi::start(&[]).await;
    api.post("/api/graph/seed", json!({"employees": 40, "avg_reports": 4, "seed": 2})).await;
    api.get("/api/graph/stats").await;
    api.get("/api/graph/stats").await;
    api.get("/api/graph/nodes?limit=5").await;
    api.post("/api/graph/nodes", json!({"name": "x", "team": "y"})).await;
    api.post("/api/analysis", json!({})).await;
    api.post("/api/exports", json!({"kind": "employee_metrics", "format": "csv"})).await;
    api.post(
        "/api/interventions",
        json!({"kind": "reassign", "employee_id": 3, "new_manager_id": 1, "reason": "r"}),
    )
    .await;
    api.get("/no/such/path/123").await;
    api.post("/api/graph/nodes", json!({"name": 1})).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // one graph-gauge refresh
    let provider = telemetry.meter_provider().expect("enabled").clone();
    tokio::task::spawn_blocking(move || provider.force_flush())
        .await
        .expect("join")
        .expect("flush");

    let families: BTreeMap<String, prometheus::Family> = prometheus::families()
        .into_iter()
        .flat_map(|f| f.series.clone().into_iter().map(move |s| (s, f.clone())))
        .collect();
    let scrape =
        testkit::wait_for("the API's series on the collector", Duration::from_secs(30), || {
            let e = Exposition::parse(&collector.scrape()?).map_err(anyhow::Error::msg)?;
            Ok(e.names().contains("http_server_request_duration_seconds_count").then_some(e))
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", collector.log()));

    let mut emitted = BTreeSet::new();
    for sample in &scrape.samples {
        // The collector's own receivers (the host, and Postgres and Redis where it reaches them)
        // serve under their jobs; otel/tests/infrastructure.rs checks those.
        let infrastructure =
            sample.labels.get("job").is_some_and(|job| infrastructure::is_infrastructure_job(job));
        if sample.name == prometheus::TARGET_INFO || infrastructure {
            continue;
        }
        let family = families
            .get(&sample.name)
            .unwrap_or_else(|| panic!("{} is emitted but not in the catalogue", sample.name));
        let allowed: BTreeSet<String> = family.all_labels(&sample.name).into_iter().collect();
        for key in sample.labels.keys() {
            assert!(allowed.contains(key), "{}: label {key} not declared", sample.name);
        }
        assert_eq!(sample.labels.get("job").map(String::as_str), Some("orgraph/api"));
        assert_eq!(sample.labels.get("instance").map(String::as_str), Some("api-under-test"));
        if let Some(route) = sample.labels.get("http_route") {
            assert!(route.starts_with("/api/") || route.starts_with("/health/"), "{route}");
            assert!(!route.contains("123"), "raw path as a route: {route}");
        }
        emitted.insert(sample.name.clone());
    }
    // What the API must have emitted for the mix above (the worker's series come from the worker).
    for name in [
        "http_server_request_duration_seconds_bucket",
        "http_server_active_requests",
        "http_server_request_body_size_bytes_count",
        "http_server_response_body_size_bytes_count",
        "orgraph_cache_requests_total",
        "orgraph_cache_items",
        "orgraph_cache_size_bytes",
        "db_client_connection_count",
        "db_client_connection_max",
        "db_client_connection_pending_requests",
        "db_client_connection_wait_time_seconds_bucket",
        // No pool timed out in this mix: the series exists at 0 from start-up (issue 10).
        "db_client_connection_timeouts_total",
        "orgraph_circuit_breaker_state",
        "orgraph_circuit_breaker_calls_total",
        "orgraph_graph_nodes",
        "orgraph_graph_edges",
        "orgraph_graph_update_duration_seconds_bucket",
        "messaging_client_sent_messages_total",
        "orgraph_intervention_proposals_total",
        "process_cpu_time_seconds_total",
        "process_memory_usage_bytes",
        "process_uptime_seconds",
    ] {
        assert!(emitted.contains(name), "{name} not emitted; emitted: {emitted:?}");
    }
    drop(api);
    telemetry.shutdown_async().await.ok();
}
