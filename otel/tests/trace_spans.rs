//! What the span helpers of `otel::trace` cost when nothing is traced: with no tracer provider
//! installed, and for an unsampled request, no span records and no traceparent is written; a
//! suppressed read makes no span at all. (One test: the global provider is installed midway.)

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer, TracerProvider,
};
use opentelemetry::{Context, global};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use otel::catalogue::{CacheLayer, CacheName, CacheResult, Queue, TaskType};
use otel::trace::client::{self, ClientSpan};
use otel::trace::messaging::{self, JobSpan};
use std::time::SystemTime;

fn unsampled_parent() -> Context {
    let remote = SpanContext::new(
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("trace id"),
        SpanId::from_hex("b7ad6b7169203331").expect("span id"),
        TraceFlags::default(),
        true,
        TraceState::default(),
    );
    Context::new().with_remote_span_context(remote)
}

#[test]
fn nothing_is_recorded_or_propagated_unless_traced_and_sampled() {
    global::set_text_map_propagator(TraceContextPropagator::new());

    // No tracer provider: the no-op tracer.
    let send = JobSpan::send(Queue::Export);
    assert!(!send.is_recording());
    assert_eq!(send.traceparent(), None);
    let process = JobSpan::process(Queue::Export, "job", None, SystemTime::now());
    assert!(!process.is_recording());
    assert!(!ClientSpan::redis("GET", None).is_recording());
    drop((send, process));

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    global::set_tracer_provider(provider.clone());

    // An unsampled request: its send span neither records nor is continued.
    let unsampled_guard = unsampled_parent().attach();
    let send = JobSpan::send(Queue::Export);
    assert!(!send.is_recording());
    assert_eq!(send.traceparent(), None);
    client::cache_lookup(CacheLayer::L1, CacheName::GraphStats, CacheResult::Hit);
    drop(send);
    drop(unsampled_guard);

    // A sampled one: the send span's traceparent, and a process span continuing it.
    let request = Context::current_with_span(provider.tracer("test").start("request"));
    let request_guard = request.clone().attach();
    let send = JobSpan::send(Queue::Analysis);
    assert!(send.is_recording());
    let traceparent = send.traceparent().expect("a sampled span's traceparent");
    let sent = send.context().span().span_context().clone();
    assert_eq!(
        traceparent,
        format!("00-{}-{}-01", sent.trace_id(), sent.span_id()),
        "the W3C form of the send span"
    );
    let process = JobSpan::process(Queue::Analysis, "job", Some(&traceparent), SystemTime::now());
    let processed = process.context().span().span_context().clone();
    assert_eq!(processed.trace_id(), sent.trace_id(), "the same trace");
    let attempt = poll_once(process.run(async {
        JobSpan::attempt(TaskType::Analysis, 1).context().span().span_context().trace_id()
    }));
    assert_eq!(attempt, sent.trace_id(), "an attempt is in the process span's trace");
    let suppressed = poll_once(messaging::untraced(async {
        JobSpan::attempt(TaskType::Analysis, 1).is_recording()
    }));
    assert!(!suppressed, "no span inside an untraced read");
    drop((process, send, request_guard));
    request.span().end();

    let names: Vec<String> =
        exporter.get_finished_spans().expect("spans").iter().map(|s| s.name.to_string()).collect();
    assert_eq!(
        names,
        ["attempt analysis", "process analysis", "send analysis", "request"],
        "only the sampled request's spans, none from the untraced read"
    );
}

/// Polls a future that never waits (the ones above) to completion, without a runtime.
fn poll_once<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the future waited"),
    }
}
