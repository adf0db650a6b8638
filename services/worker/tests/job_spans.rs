//! One trace from the request that queues a job to the job's last attempt, on a real Postgres: the
//! API's enqueue is a `send` span whose traceparent is stored with the job; the worker's runner
//! continues it with a `process` span and one `attempt` span per attempt. Spans are recorded by
//! the SDK's in-memory exporter through a tracer provider installed globally in this test binary.

mod support;

use domain::JobKind;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer, TracerProvider,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{Value as Json, json};
use std::sync::{Arc, Mutex};
use support::Db;
use uuid::Uuid;
use worker::runner::{self, JobError};

/// The global tracer provider, its spans kept in memory, and the W3C propagator.
fn install_tracing() -> (SdkTracerProvider, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    (provider, exporter)
}

fn text(span: &SpanData, key: &str) -> String {
    attribute(span, key).map(|v| v.as_str().into_owned()).unwrap_or_default()
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes.iter().find(|kv: &&KeyValue| kv.key.as_str() == key).map(|kv| &kv.value)
}

fn named<'a>(spans: &'a [SpanData], name: &str, trace: TraceId) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name && s.span_context.trace_id() == trace).collect()
}

/// Queues a job through the API's enqueue with `parent` as the current context.
async fn enqueue(db: &Db, kind: JobKind, parent: Context) -> Uuid {
    let mut conn = db.pool.acquire().await.expect("connection");
    let params = json!({});
    let queued = api::jobs::queries::enqueue(&mut conn, kind, &params, 100);
    let queued = opentelemetry::context::FutureExt::with_context(queued, parent).await;
    queued.expect("no database error").expect("room on the queue")
}

async fn traceparent(db: &Db, job: Uuid) -> Option<String> {
    sqlx::query_scalar("SELECT traceparent FROM jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&db.pool)
        .await
        .expect("job row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_continues_the_trace_of_the_request_that_queued_it() {
    let (provider, exporter) = install_tracing();
    let db = Db::start().await;
    let dir = support::scratch_dir("job-spans");
    let ctx = support::ctx(&db, &dir, &[("RETRY_ATTEMPTS", "3")]);
    let tracer = provider.tracer("test");

    // The request queues the job: the send span is its child, and the job carries the send span.
    let request = Context::current_with_span(tracer.start("request"));
    let trace = request.span().span_context().trace_id();
    let job = enqueue(&db, JobKind::Export, request.clone()).await;
    request.span().end();
    let spans = exporter.get_finished_spans().expect("spans");
    let [send] = named(&spans, "send export", trace)[..] else {
        panic!("one send span in the request's trace: {spans:#?}");
    };
    assert_eq!(send.span_kind, SpanKind::Producer);
    assert_eq!(send.parent_span_id, request.span().span_context().span_id());
    assert_eq!(text(send, "messaging.system"), "apalis");
    assert_eq!(text(send, "messaging.operation.type"), "send");
    assert_eq!(text(send, "messaging.operation.name"), "send");
    assert_eq!(text(send, "messaging.destination.name"), "export");
    assert_eq!(text(send, "messaging.message.id"), job.to_string());
    let stored = traceparent(&db, job).await;
    let expected = format!("00-{trace}-{}-01", send.span_context.span_id());
    assert_eq!(stored.as_deref(), Some(expected.as_str()), "the send span's traceparent");

    // The worker runs it: transient once, then done. The work sees its attempt's span as current.
    let seen = Arc::new(Mutex::new(Vec::<SpanId>::new()));
    let s = seen.clone();
    let result = runner::run(&ctx, job, move |_, _| {
        let current = Context::current().span().span_context().span_id();
        let s = s.clone();
        async move {
            let mut seen = s.lock().expect("lock");
            seen.push(current);
            if seen.len() == 1 {
                Err::<Json, _>(JobError::Transient(anyhow::anyhow!("disk hiccup")))
            } else {
                Ok(json!({"ok": true}))
            }
        }
    })
    .await;
    assert!(result.is_ok(), "{result:?}");
    let spans = exporter.get_finished_spans().expect("spans");
    let [process] = named(&spans, "process export", trace)[..] else {
        panic!("one process span in the request's trace: {spans:#?}");
    };
    assert_eq!(process.span_kind, SpanKind::Consumer);
    assert_eq!(process.parent_span_id, send.span_context.span_id(), "a child of the send span");
    assert!(process.parent_span_is_remote, "the parent came through the job row");
    let links: Vec<(TraceId, SpanId)> = process
        .links
        .links
        .iter()
        .map(|l| (l.span_context.trace_id(), l.span_context.span_id()))
        .collect();
    assert_eq!(links, vec![(trace, send.span_context.span_id())], "linked to the send span");
    assert_eq!(text(process, "messaging.system"), "apalis");
    assert_eq!(text(process, "messaging.operation.type"), "process");
    assert_eq!(text(process, "messaging.destination.name"), "export");
    assert_eq!(text(process, "messaging.message.id"), job.to_string());
    assert_eq!(process.status, Status::Unset);
    let attempts = named(&spans, "attempt export", trace);
    assert_eq!(attempts.len(), 2, "one span per attempt: {attempts:#?}");
    for (number, attempt) in attempts.iter().enumerate() {
        assert_eq!(attempt.parent_span_id, process.span_context.span_id());
        assert_eq!(attribute(attempt, "task.attempt"), Some(&Value::I64(number as i64 + 1)));
        assert_eq!(text(attempt, "task.type"), "export");
    }
    assert!(matches!(attempts[0].status, Status::Error { .. }), "{:?}", attempts[0].status);
    assert_eq!(text(attempts[0], "error.type"), "transient");
    assert_eq!(
        (attempts[1].status.clone(), text(attempts[1], "error.type")),
        (Status::Unset, "".into())
    );
    assert!(attempts[0].end_time <= attempts[1].start_time, "the retry comes after");
    let ids: Vec<SpanId> = attempts.iter().map(|a| a.span_context.span_id()).collect();
    assert_eq!(*seen.lock().expect("lock"), ids, "each attempt's work ran in its span");

    // An invalid job: one failed attempt, the process span failed too.
    let request = Context::current_with_span(tracer.start("request"));
    let trace = request.span().span_context().trace_id();
    let job = enqueue(&db, JobKind::Analysis, request.clone()).await;
    let failed = runner::run(&ctx, job, |_, _| async {
        Err::<Json, _>(JobError::Invalid("no such graph".into()))
    })
    .await;
    assert_eq!(failed.expect_err("fails").status, "failure");
    let spans = exporter.get_finished_spans().expect("spans");
    let [process] = named(&spans, "process analysis", trace)[..] else {
        panic!("one process span: {spans:#?}");
    };
    let [attempt] = named(&spans, "attempt analysis", trace)[..] else {
        panic!("one attempt span: {spans:#?}");
    };
    for span in [process, attempt] {
        assert_eq!(span.status, Status::error("invalid: no such graph"), "{}", span.name);
        assert_eq!(text(span, "error.type"), "invalid", "{}", span.name);
    }

    // No traceparent (an older row, or queued without a trace): the process span is a root.
    let job = db.enqueue(JobKind::Export, json!({})).await;
    assert_eq!(traceparent(&db, job).await, None);
    runner::run(&ctx, job, |_, _| async { Ok(json!({})) }).await.expect("done");
    let spans = exporter.get_finished_spans().expect("spans");
    let process = spans
        .iter()
        .find(|s| s.name == "process export" && text(s, "messaging.message.id") == job.to_string())
        .expect("the process span of the untraced job");
    assert_eq!(process.parent_span_id, SpanId::INVALID, "a root span");
    assert!(process.links.links.is_empty());

    // A request that is not sampled queues a job with no traceparent.
    let unsampled = SpanContext::new(
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("trace id"),
        SpanId::from_hex("b7ad6b7169203331").expect("span id"),
        TraceFlags::default(),
        true,
        TraceState::default(),
    );
    let job =
        enqueue(&db, JobKind::Export, Context::new().with_remote_span_context(unsampled)).await;
    assert_eq!(traceparent(&db, job).await, None, "an unsampled send span is not continued");
}
