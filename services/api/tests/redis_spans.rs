//! The API's Redis commands as client spans, and its cache and circuit-breaker decisions as events
//! on the current span, on a real Redis (started by `testkit`), recorded by the SDK's in-memory
//! exporter through a tracer provider installed globally in this test binary.

use api::cache::L1Cache;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use otel::FromEnv;
use otel::catalogue::CacheName;
use otel::metrics::{BreakerMetrics, CacheMetrics};
use std::time::Duration;

/// The global tracer provider, its spans kept in memory.
fn install_tracing() -> (SdkTracerProvider, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    (provider, exporter)
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| &kv.value)
}

fn text(attributes: &[KeyValue], key: &str) -> String {
    attribute(attributes, key).map(|v| v.as_str().into_owned()).unwrap_or_default()
}

/// The events of `span` named `name`, as `(attribute, value)` text pairs.
fn events(span: &SpanData, name: &str) -> Vec<Vec<(String, String)>> {
    span.events
        .events
        .iter()
        .filter(|e| e.name == name)
        .map(|e| {
            e.attributes.iter().map(|kv| (kv.key.to_string(), kv.value.as_str().into())).collect()
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_commands_are_client_spans_and_cache_and_breaker_decisions_are_events() {
    let (provider, exporter) = install_tracing();
    let mut server = tokio::task::spawn_blocking(testkit::Redis::start)
        .await
        .expect("join")
        .expect("redis starts");
    let url = server.url();
    let config = api::Config::from_lookup(|k| match k {
        "REDIS_URL" => Some(url.clone()),
        "API_TOKENS_FILE" => Some("/unused: no request is served".into()),
        "BREAKER_FAILURES" => Some("2".into()),
        "BREAKER_OPEN_MS" => Some("60000".into()),
        _ => None,
    })
    .expect("test config");
    let meter = otel::meter();
    let metrics = CacheMetrics::new(&meter);
    let redis = api::redis::Redis::new(&config, &BreakerMetrics::new(&meter), metrics.clone())
        .expect("pool");
    let l1 =
        L1Cache::new(CacheName::GraphStats, 1 << 20, Duration::from_secs(60), |_: &u8| 1, metrics);
    // A value of the wrong type for GET: the server answers WRONGTYPE.
    let mut raw = redis::Client::open(url.as_str())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    redis::cmd("LPUSH")
        .arg("test:list")
        .arg("x")
        .query_async::<i64>(&mut raw)
        .await
        .expect("lpush");
    drop(raw);

    // A command of no request (as the cache's size report every export interval): no span, no
    // trace of its own (every command span below is the request's child).
    assert_eq!(redis.get(CacheName::GraphStats, "test:background").await, None);

    let tracer = provider.tracer("test");
    let request = Context::current_with_span(tracer.start("request"));
    let request_id = request.span().span_context().span_id();
    let work = async {
        assert_eq!(l1.get("stats"), None);
        assert_eq!(redis.get(CacheName::GraphStats, "test:stats").await, None);
        redis.set_if_counter("test:stats", b"v", Duration::from_secs(60), "test:gen", 0).await;
        assert_eq!(
            redis.get(CacheName::GraphStats, "test:stats").await.as_deref(),
            Some(&b"v"[..])
        );
        // WRONGTYPE: a failed call (1 of the breaker's 2), and a miss.
        assert_eq!(redis.get(CacheName::GraphStats, "test:list").await, None);
        // Redis goes away: the next call fails and opens the breaker, the one after is refused
        // without a call.
        tokio::task::block_in_place(|| server.stop()).expect("redis stops");
        assert_eq!(redis.get(CacheName::GraphStats, "test:stats").await, None);
        assert_eq!(redis.get(CacheName::GraphStats, "test:stats").await, None);
    };
    opentelemetry::context::FutureExt::with_context(work, request.clone()).await;
    request.span().end();
    provider.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");

    let names: Vec<&str> = spans.iter().map(|s| s.name.as_ref()).collect();
    let commands: Vec<&SpanData> = spans.iter().filter(|s| s.name != "request").collect();
    assert!(
        names.starts_with(&["GET", "EVAL", "GET", "GET"]),
        "one client span per command, named after it: {names:?}"
    );
    for span in &commands {
        assert_eq!(span.span_kind, SpanKind::Client, "{}", span.name);
        assert_eq!(span.parent_span_id, request_id, "{} is a child of the request", span.name);
        assert_eq!(text(&span.attributes, "db.system.name"), "redis");
        assert_eq!(text(&span.attributes, "db.operation.name"), span.name);
        assert_eq!(text(&span.attributes, "server.address"), "127.0.0.1");
        assert_eq!(
            attribute(&span.attributes, "server.port"),
            Some(&Value::I64(i64::from(server.port())))
        );
        for kv in &span.attributes {
            let value = kv.value.as_str();
            assert!(!value.contains("test:"), "a key in {}: {kv:?}", span.name);
        }
    }
    assert_eq!(commands[0].status, Status::Unset);
    let wrong_type = commands[3];
    assert!(matches!(wrong_type.status, Status::Error { .. }), "{:?}", wrong_type.status);
    assert_eq!(text(&wrong_type.attributes, "error.type"), "WRONGTYPE");

    let request = spans.iter().find(|s| s.name == "request").expect("the request span");
    let lookups = events(request, "cache.lookup");
    let lookup = |layer, result| {
        pairs(&[("cache.layer", layer), ("cache.name", "graph_stats"), ("cache.result", result)])
    };
    assert_eq!(lookups, vec![lookup("l1", "miss"), lookup("l2", "miss"), lookup("l2", "hit")]);
    let opened = pairs(&[
        ("circuit_breaker.name", "redis"),
        ("circuit_breaker.state", "open"),
        ("circuit_breaker.previous_state", "closed"),
    ]);
    assert_eq!(events(request, "circuit_breaker.state_change"), vec![opened]);
    let rejected = pairs(&[("circuit_breaker.name", "redis"), ("circuit_breaker.state", "open")]);
    assert_eq!(events(request, "circuit_breaker.rejected"), vec![rejected]);
}
