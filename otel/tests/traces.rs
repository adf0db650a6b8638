//! The spans the HTTP layer and the sqlx layer make, caught by the SDK's in-memory exporter
//! installed as the global tracer provider (parent-based always-on, as by default): the server
//! span's name, attributes and status; a caller's `traceparent` continued; Postgres client spans
//! of a handler's statements as children of the server span, against a real Postgres; nothing
//! at all for a request whose caller did not sample it.
//!
//! The subscriber is the one `otel::init` installs (logs at `info`), so the statement events are
//! enabled exactly as in a service. Tests share the global provider, so each one sends its own trace id and reads only its spans.
//! The Postgres test needs the Postgres binaries testkit uses (`cargo xtask tools`).

#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use otel::layers::HttpMetricsLayer;
use otel::metrics::HttpServerMetrics;
use otel::metrics::testing::Recorder;
use otel::trace::TraceSampler;
use sqlx::PgPool;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use tower::ServiceExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The in-memory exporter behind the global tracer provider, with the sqlx span layer installed
/// as the global subscriber, as `otel::init` does with traces on.
fn spans() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_sampler(TraceSampler::ParentBasedAlwaysOn.sdk())
            .with_simple_exporter(exporter.clone())
            .build();
        opentelemetry::global::set_tracer_provider(provider);
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        otel::trace::set_enabled(true);
        // The subscriber otel::init installs with traces on.
        let subscriber =
            otel::subscriber::build("info", otel::LogFormat::Json, true, std::io::sink).unwrap();
        subscriber.try_init().unwrap();
        exporter
    })
}

/// A trace id no other test uses.
fn fresh_trace_id() -> TraceId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    TraceId::from((u128::from(std::process::id()) << 64) | u128::from(n))
}

/// The finished spans of `trace`.
fn spans_of(trace: TraceId) -> Vec<SpanData> {
    let all = spans().get_finished_spans().unwrap();
    all.into_iter().filter(|s| s.span_context.trace_id() == trace).collect()
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv: &KeyValue| &kv.value)
}

fn str_attribute(span: &SpanData, key: &str) -> Option<String> {
    attribute(span, key).map(Value::to_string)
}

const CALLER_SPAN: u64 = 0x00f067aa0ba902b7;

fn traceparent(trace: TraceId, sampled: bool) -> String {
    format!("00-{trace}-{:016x}-{}", CALLER_SPAN, if sampled { "01" } else { "00" })
}

fn app() -> Router {
    Router::new()
        .route("/api/graph/nodes/{id}", get(|| async { "{}" }))
        .route("/api/fail", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }))
        .route("/api/root", get(|| async { "root" }))
        .layer(HttpMetricsLayer::new(HttpServerMetrics::new(Recorder::new().meter())))
}

async fn send(app: Router, method: &str, uri: &str, traceparent: Option<String>) -> StatusCode {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    // The span ends with the body.
    response.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn a_server_span_continues_the_callers_trace_with_the_metrics_attributes() {
    spans();
    let trace = fresh_trace_id();
    let status = send(app(), "GET", "/api/graph/nodes/42", Some(traceparent(trace, true))).await;
    assert_eq!(status, StatusCode::OK);

    let spans = spans_of(trace);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let span = &spans[0];
    assert_eq!(span.name, "GET /api/graph/nodes/{id}");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(span.parent_span_id, SpanId::from(CALLER_SPAN), "the caller's span is the parent");
    assert!(span.parent_span_is_remote);
    assert_eq!(str_attribute(span, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(str_attribute(span, "http.route").as_deref(), Some("/api/graph/nodes/{id}"));
    assert_eq!(str_attribute(span, "url.scheme").as_deref(), Some("http"));
    assert_eq!(attribute(span, "http.response.status_code"), Some(&Value::I64(200)));
    assert_eq!(attribute(span, "error.type"), None);
    assert_eq!(span.status, Status::Unset);
    assert!(
        span.attributes.iter().all(|kv| !kv.value.to_string().contains("42")),
        "no raw path: {:?}",
        span.attributes
    );
}

#[tokio::test]
async fn server_errors_and_unmatched_routes_are_named_and_marked_as_the_conventions_say() {
    spans();
    let failed = fresh_trace_id();
    assert_eq!(
        send(app(), "GET", "/api/fail", Some(traceparent(failed, true))).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let span = spans_of(failed).pop().unwrap();
    assert_eq!(span.name, "GET /api/fail");
    assert_eq!(attribute(&span, "http.response.status_code"), Some(&Value::I64(503)));
    assert_eq!(str_attribute(&span, "error.type").as_deref(), Some("503"));
    assert!(matches!(span.status, Status::Error { .. }), "{:?}", span.status);

    let unknown = fresh_trace_id();
    let status = send(app(), "GET", "/no/such/path/7", Some(traceparent(unknown, true))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let span = spans_of(unknown).pop().unwrap();
    assert_eq!(span.name, "GET", "no route, no path in the name");
    assert_eq!(attribute(&span, "http.route"), None);
    assert_eq!(span.status, Status::Unset, "a 4xx is not the server's error");

    let odd = fresh_trace_id();
    send(app(), "BREW", "/api/root", Some(traceparent(odd, true))).await;
    let span = spans_of(odd).pop().unwrap();
    assert_eq!(span.name, "HTTP /api/root", "an unknown method is named HTTP");
    assert_eq!(str_attribute(&span, "http.request.method").as_deref(), Some("_OTHER"));
}

#[tokio::test]
async fn a_request_without_traceparent_starts_a_trace_of_its_own() {
    spans();
    let before = spans().get_finished_spans().unwrap().len();
    send(app(), "GET", "/api/root", None).await;
    let roots: Vec<SpanData> = spans()
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .skip(before)
        .filter(|s| s.name == "GET /api/root" && s.parent_span_id == SpanId::INVALID)
        .collect();
    assert_eq!(roots.len(), 1, "{roots:#?}");
    assert!(roots[0].span_context.is_sampled());
}

/// A handler that runs two statements on the pool.
async fn two_statements(State(pool): State<PgPool>) -> String {
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_class WHERE relname = $1")
        .bind("pg_class")
        .fetch_one(&pool)
        .await
        .unwrap();
    n.to_string()
}

#[tokio::test]
async fn statements_are_client_spans_under_the_server_span_and_unsampled_requests_make_none() {
    spans();
    let postgres =
        tokio::task::spawn_blocking(testkit::Postgres::start).await.unwrap().unwrap_or_else(|e| {
            panic!("Postgres must start (install it with `cargo xtask tools`): {e:#}")
        });
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&postgres.url())
        .await
        .unwrap();
    let app = Router::new()
        .route("/api/db", get(two_statements))
        .with_state(pool)
        .layer(HttpMetricsLayer::new(HttpServerMetrics::new(Recorder::new().meter())));

    let sampled = fresh_trace_id();
    assert_eq!(send(app.clone(), "GET", "/api/db", Some(traceparent(sampled, true))).await, 200);
    let spans = spans_of(sampled);
    let server = spans.iter().find(|s| s.span_kind == SpanKind::Server).unwrap();
    let statements: Vec<&SpanData> =
        spans.iter().filter(|s| s.span_kind == SpanKind::Client).collect();
    let names: Vec<&str> = statements.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["SELECT", "SELECT pg_class"], "{spans:#?}");
    for statement in &statements {
        assert_eq!(statement.parent_span_id, server.span_context.span_id());
        assert_eq!(str_attribute(statement, "db.system.name").as_deref(), Some("postgresql"));
        assert_eq!(str_attribute(statement, "db.operation.name").as_deref(), Some("SELECT"));
        assert_eq!(
            str_attribute(statement, "db.query.summary").as_deref(),
            Some(statement.name.as_ref())
        );
        assert!(statement.start_time <= statement.end_time);
        assert!(statement.start_time >= server.start_time && statement.end_time <= server.end_time);
        for kv in &statement.attributes {
            let value = kv.value.to_string();
            assert!(!value.contains("relname") && !value.contains('$'), "no query text: {kv:?}");
        }
    }
    let rows = statements.iter().find(|s| s.name == "SELECT pg_class").unwrap();
    assert_eq!(attribute(rows, "db.response.returned_rows"), Some(&Value::I64(1)));

    let unsampled = fresh_trace_id();
    assert_eq!(send(app, "GET", "/api/db", Some(traceparent(unsampled, false))).await, 200);
    assert_eq!(spans_of(unsampled), [], "the caller did not sample: no span at all");
}

#[test]
fn sqlx_statement_events_are_enabled_only_inside_a_sampled_trace() {
    use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
    spans();
    let statement_enabled = || tracing::enabled!(target: "sqlx::query", tracing::Level::DEBUG);
    assert!(!statement_enabled(), "no trace: sqlx does not even format the statement");
    for (flags, expected) in [(TraceFlags::NOT_SAMPLED, false), (TraceFlags::SAMPLED, true)] {
        let context = SpanContext::new(
            fresh_trace_id(),
            SpanId::from(CALLER_SPAN),
            flags,
            true,
            TraceState::default(),
        );
        let _current = opentelemetry::Context::new().with_remote_span_context(context).attach();
        assert_eq!(statement_enabled(), expected, "{flags:?}");
        assert!(
            !tracing::enabled!(target: "other::crate", tracing::Level::DEBUG),
            "only sqlx's statements"
        );
    }
}
