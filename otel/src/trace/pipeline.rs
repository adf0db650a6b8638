//! The way finished spans leave the process: the SDK's `BatchSpanProcessor` (a bounded queue, a
//! thread that exports in batches) between two thin wrappers that count what is lost.
//!
//! Why wrappers and not the SDK's own count: the 0.33 `BatchSpanProcessor` drops a span when its
//! queue is full without telling anyone (its `otel.sdk.processor.span.processed` needs an
//! experimental feature and records on a meter of its own scope). So [`CountingProcessor`] keeps
//! the queue bound itself: it counts the spans it lets in, and [`CountingExporter`] counts them
//! out when the SDK's thread hands a batch to the exporter. A span that would exceed
//! `OTEL_BSP_MAX_QUEUE_SIZE` is dropped and counted (`error.type=queue_full`) before it reaches
//! the SDK's queue of the same size, which therefore never overflows unseen. Nothing blocks: a
//! request thread only does an atomic add and a non-blocking send. Export failures (the collector
//! down) are counted per span by the exporter wrapper (`otel.sdk.exporter.span.exported` with
//! `error.type`), so every lost span shows up in one of the two counters.

use crate::catalogue::{SpanDropReason, SpanExportError};
use crate::metrics::SpanPipelineMetrics;
use crate::trace::config::SpanBatch;
use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Span, SpanData, SpanExporter, SpanProcessor,
};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// A bounded batching span processor that counts what it drops; see the module doc.
#[derive(Debug)]
pub struct CountingProcessor {
    inner: BatchSpanProcessor,
    queue: Arc<Queue>,
    metrics: SpanPipelineMetrics,
}

/// Spans admitted to the SDK's queue and not yet handed to the exporter.
#[derive(Debug)]
struct Queue {
    waiting: AtomicUsize,
    capacity: usize,
    shut_down: AtomicBool,
}

impl CountingProcessor {
    /// Batches the spans for `exporter` as `batch` says, counting through `metrics`.
    pub fn new<E>(exporter: E, batch: &SpanBatch, metrics: SpanPipelineMetrics) -> Self
    where
        E: SpanExporter + 'static,
    {
        metrics.start_at_zero();
        let queue = Arc::new(Queue {
            waiting: AtomicUsize::new(0),
            capacity: batch.max_queue_size,
            shut_down: AtomicBool::new(false),
        });
        let exporter =
            CountingExporter { inner: exporter, queue: queue.clone(), metrics: metrics.clone() };
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(batch.max_queue_size)
            .with_max_export_batch_size(batch.max_export_batch_size)
            .with_scheduled_delay(batch.schedule_delay)
            .build();
        CountingProcessor { inner: BatchSpanProcessor::new(exporter, config), queue, metrics }
    }

    /// Lets one more span in unless the queue is full.
    fn admit(&self) -> Result<(), SpanDropReason> {
        if self.queue.shut_down.load(Ordering::Relaxed) {
            return Err(SpanDropReason::AlreadyShutdown);
        }
        if self.queue.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue.capacity {
            self.queue.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(SpanDropReason::QueueFull);
        }
        Ok(())
    }
}

impl SpanProcessor for CountingProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        match self.admit() {
            Ok(()) => self.inner.on_end(span),
            Err(reason) => self.metrics.dropped(reason),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.queue.shut_down.store(true, Ordering::Relaxed);
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter as the SDK's batch thread sees it: counts the spans out of the queue, and what
/// became of them.
#[derive(Debug)]
struct CountingExporter<E> {
    inner: E,
    queue: Arc<Queue>,
    metrics: SpanPipelineMetrics,
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let spans = batch.len();
        // Saturating: a miscount must never wedge the queue shut.
        let _ = self.queue.waiting.fetch_update(Ordering::AcqRel, Ordering::Acquire, |waiting| {
            Some(waiting.saturating_sub(spans))
        });
        self.metrics.handed_to_exporter(spans as u64);
        let metrics = self.metrics.clone();
        let export = self.inner.export(batch);
        async move {
            let result = export.await;
            match &result {
                Ok(()) => metrics.exported(spans as u64),
                Err(error) => metrics.export_failed(spans as u64, error_type(error)),
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The bounded `error.type` of a failed export.
fn error_type(error: &OTelSdkError) -> SpanExportError {
    match error {
        OTelSdkError::Timeout(_) => SpanExportError::Timeout,
        OTelSdkError::AlreadyShutdown => SpanExportError::AlreadyShutdown,
        _ => SpanExportError::Other,
    }
}
