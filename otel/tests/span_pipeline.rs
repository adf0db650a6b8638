//! Lost spans are counted: with the collector unreachable, the bounded batch processor drops what
//! does not fit its queue without ever blocking the code that ends a span, counts each drop as
//! `otel.sdk.processor.span.processed{error.type="queue_full"}`, and counts the spans of each
//! failed export as `otel.sdk.exporter.span.exported{error.type=...}`. Once the exporter is back,
//! spans flow again.

use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use otel::catalogue::SpanExporterType;
use otel::metrics::SpanPipelineMetrics;
use otel::metrics::testing::Recorder;
use otel::trace::SpanBatch;
use otel::trace::pipeline::CountingProcessor;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An exporter whose collector is down: every export fails; while `stuck`, an export hangs first
/// (as one waiting for its timeout does), holding the batch thread.
#[derive(Debug)]
struct DownCollector {
    stuck: Arc<AtomicBool>,
    exports: Mutex<mpsc::Sender<usize>>,
}

impl SpanExporter for DownCollector {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let _ = self.exports.lock().expect("not poisoned").send(batch.len());
        while self.stuck.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::future::ready(Err(OTelSdkError::InternalFailure("connection refused".into())))
    }
}

const PROCESSED: &str = "otel.sdk.processor.span.processed";
const EXPORTED: &str = "otel.sdk.exporter.span.exported";

#[test]
fn spans_beyond_the_queue_are_dropped_and_counted_and_failed_exports_too() {
    let recorder = Recorder::new();
    let stuck = Arc::new(AtomicBool::new(true));
    let (exports, exported) = mpsc::channel();
    let collector = DownCollector { stuck: stuck.clone(), exports: Mutex::new(exports) };
    let batch = SpanBatch {
        max_queue_size: 4,
        schedule_delay: Duration::from_millis(10),
        max_export_batch_size: 1,
        export_timeout: Duration::from_secs(1),
    };
    let metrics = SpanPipelineMetrics::new(recorder.meter(), SpanExporterType::OtlpGrpc);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(CountingProcessor::new(collector, &batch, metrics))
        .build();
    let tracer = provider.tracer("test");

    // The first span takes the batch thread into the hanging export.
    tracer.start("first").end();
    assert_eq!(exported.recv_timeout(Duration::from_secs(10)), Ok(1), "the export started");

    // Ten more: four fit the queue, six are dropped, and ending them never waits.
    let started = Instant::now();
    for _ in 0..10 {
        tracer.start("more").end();
    }
    assert!(started.elapsed() < Duration::from_secs(1), "ending spans blocked");
    let during = recorder.collect();
    during.assert_conforms();
    assert_eq!(during.value(PROCESSED, &[("error.type", "queue_full")]), 6.0);

    // The collector stays down, but exports stop hanging: the four queued spans are exported
    // (and lost), and a new span fits the queue again.
    stuck.store(false, Ordering::Release);
    let _ = provider.force_flush();
    tracer.start("after").end();
    let _ = provider.force_flush();
    let after = recorder.collect();
    after.assert_conforms();
    assert_eq!(after.value(PROCESSED, &[("error.type", "queue_full")]), 6.0);
    let handed_over: f64 = after
        .0
        .iter()
        .filter(|p| p.name == PROCESSED && !p.attributes.contains_key("error.type"))
        .map(|p| p.value)
        .sum();
    assert_eq!(handed_over, 6.0, "1 + 4 queued + 1 after");
    assert_eq!(after.value(EXPORTED, &[("error.type", "_OTHER")]), 6.0);
    assert_eq!(after.value(EXPORTED, &[("error.type", "timeout")]), 0.0);
    let delivered: f64 = after
        .0
        .iter()
        .filter(|p| p.name == EXPORTED && !p.attributes.contains_key("error.type"))
        .map(|p| p.value)
        .sum();
    assert_eq!(delivered, 0.0);
    let _ = provider.shutdown();
}
