//! What the HTTP metrics layer costs per request, so the price of recording every request is
//! known rather than guessed. One GET through an axum router (`oneshot`, response body read to
//! the end) with a trivial JSON handler:
//!
//! * `no_layer`: the router alone, the baseline;
//! * `otel_layer_sdk`: our layer recording into a real SDK meter provider (periodic reader with an
//!   in-memory exporter, cumulative as in production): the full recording path;
//! * `otel_layer_noop`: our layer on a no-op meter, as with `OTEL_SDK_DISABLED`;
//! * `peer_instrumentation_tower`: `opentelemetry-instrumentation-tower` (metrics only, tracing
//!   off) on the same router, recording into an SDK provider of its own.

#![allow(clippy::unwrap_used, missing_docs)]

use axum::Router;
use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{Request, header};
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use opentelemetry::metrics::{MeterProvider, NoopMeterProvider};
use opentelemetry_instrumentation_tower::http::server::LayerBuilder;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use otel::layers::HttpMetricsLayer;
use otel::metrics::HttpServerMetrics;
use otel::metrics::testing::Recorder;
use std::hint::black_box;
use tokio::runtime::Runtime;
use tower::ServiceExt;

const ROUTE: &str = "/api/graph/nodes/{id}";

async fn node() -> ([(header::HeaderName, &'static str); 1], &'static str) {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"id":42,"label":"node","team":"platform"}"#)
}

fn routes() -> Router {
    Router::new().route(ROUTE, get(node))
}

fn one_request(runtime: &Runtime, app: &Router) {
    runtime.block_on(async {
        let request = Request::get("/api/graph/nodes/42").body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        black_box(response.into_body().collect().await.unwrap().to_bytes());
    });
}

fn http_layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let mut group = c.benchmark_group("http_layer");

    let bare = routes();
    group.bench_function("no_layer", |b| b.iter(|| one_request(&runtime, &bare)));

    let recorder = Recorder::new();
    let sdk = routes().layer(HttpMetricsLayer::new(HttpServerMetrics::new(recorder.meter())));
    group.bench_function("otel_layer_sdk", |b| b.iter(|| one_request(&runtime, &sdk)));
    // The SDK really aggregated what was measured.
    let points = recorder.collect();
    points.assert_conforms();
    assert!(points.count("http.server.request.duration", &[("http.route", ROUTE)]) > 1000);

    let noop = NoopMeterProvider::new().meter_with_scope(otel::scope());
    let disabled = routes().layer(HttpMetricsLayer::new(HttpServerMetrics::new(&noop)));
    group.bench_function("otel_layer_noop", |b| b.iter(|| one_request(&runtime, &disabled)));

    // The peer takes its meter from the global provider when the layer is built.
    let exporter = InMemoryMetricExporter::default();
    let reader = PeriodicReader::builder(exporter.clone()).build();
    let provider = SdkMeterProvider::builder().with_reader(reader).build();
    opentelemetry::global::set_meter_provider(provider.clone());
    let peer_layer = LayerBuilder::builder()
        .with_tracing(false)
        .with_route_extractor_fn(|request: &Request<Body>| {
            request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned())
        })
        .build()
        .unwrap();
    let peer = routes().layer(peer_layer);
    group.bench_function("peer_instrumentation_tower", |b| b.iter(|| one_request(&runtime, &peer)));
    provider.force_flush().unwrap();
    assert!(!exporter.get_finished_metrics().unwrap().is_empty(), "the peer recorded nothing");

    group.finish();
}

criterion_group!(benches, http_layer);
criterion_main!(benches);
