//! The span pipeline's own metrics, named as the semantic conventions name the SDK's
//! self-observability: `otel.sdk.processor.span.processed` (a finished span handed to the exporter,
//! or dropped with `error.type` `queue_full`/`already_shutdown`) and
//! `otel.sdk.exporter.span.exported` (spans sent, with `error.type` when the export failed). Lost
//! spans are thus counted where they are lost; `crate::trace::pipeline` records through this.

use crate::catalogue::{
    self, Label, SpanDropReason, SpanExportError, SpanExporterType, SpanProcessorType,
};
use opentelemetry::metrics::{Counter, Meter};

/// The span pipeline instruments of one tracer provider.
#[derive(Clone, Debug)]
pub struct SpanPipelineMetrics {
    processed: Counter<u64>,
    exported: Counter<u64>,
    exporter: SpanExporterType,
}

impl SpanPipelineMetrics {
    /// Builds the instruments from the catalogue on `meter`, for an exporter of type `exporter`.
    pub fn new(meter: &Meter, exporter: SpanExporterType) -> Self {
        SpanPipelineMetrics {
            processed: catalogue::OTEL_SDK_PROCESSOR_SPAN_PROCESSED.u64_counter(meter),
            exported: catalogue::OTEL_SDK_EXPORTER_SPAN_EXPORTED.u64_counter(meter),
            exporter,
        }
    }

    /// Every series of the pipeline exists from now on, at 0: the handed-over and exported spans,
    /// and each reason a span can be lost (7 series), so the first loss is an increase from 0. Not
    /// through `zero::start_at_zero`, which refuses `error.type` (present only on failure): here
    /// the failure series are ones this helper records, each reason a closed set.
    pub fn start_at_zero(&self) {
        let processor = SpanProcessorType::Batching.key_value();
        self.processed.add(0, std::slice::from_ref(&processor));
        for reason in SpanDropReason::ALL {
            self.processed.add(0, &[processor.clone(), reason.key_value()]);
        }
        self.exported.add(0, &[self.exporter.key_value()]);
        for error in SpanExportError::ALL {
            self.exported.add(0, &[self.exporter.key_value(), error.key_value()]);
        }
    }

    /// `spans` finished spans left the queue for the exporter.
    pub fn handed_to_exporter(&self, spans: u64) {
        self.processed.add(spans, &[SpanProcessorType::Batching.key_value()]);
    }

    /// A finished span was dropped instead of queued, for `reason`.
    pub fn dropped(&self, reason: SpanDropReason) {
        self.processed.add(1, &[SpanProcessorType::Batching.key_value(), reason.key_value()]);
    }

    /// An export of `spans` spans succeeded.
    pub fn exported(&self, spans: u64) {
        self.exported.add(spans, &[self.exporter.key_value()]);
    }

    /// An export of `spans` spans failed: they are lost.
    pub fn export_failed(&self, spans: u64, error: SpanExportError) {
        self.exported.add(spans, &[self.exporter.key_value(), error.key_value()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::Recorder;

    #[test]
    fn processed_and_exported_spans_are_counted_by_outcome() {
        let recorder = Recorder::new();
        let metrics = SpanPipelineMetrics::new(recorder.meter(), SpanExporterType::OtlpGrpc);
        metrics.handed_to_exporter(5);
        metrics.dropped(SpanDropReason::QueueFull);
        metrics.dropped(SpanDropReason::QueueFull);
        metrics.exported(3);
        metrics.export_failed(2, SpanExportError::Timeout);
        let points = recorder.collect();
        points.assert_conforms();
        let processed = "otel.sdk.processor.span.processed";
        let exported = "otel.sdk.exporter.span.exported";
        assert_eq!(points.value(processed, &[("error.type", "queue_full")]), 2.0);
        assert_eq!(points.series(processed), 2);
        assert_eq!(points.value(exported, &[("error.type", "timeout")]), 2.0);
        assert_eq!(points.series(exported), 2);
        assert_eq!(
            points.value(exported, &[("otel.component.type", "otlp_grpc_span_exporter")]),
            5.0,
            "both series carry the exporter type"
        );
    }

    #[test]
    fn every_series_starts_at_zero() {
        let recorder = Recorder::new();
        let metrics = SpanPipelineMetrics::new(recorder.meter(), SpanExporterType::OtlpHttp);
        metrics.start_at_zero();
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!(points.series("otel.sdk.processor.span.processed"), 3);
        assert_eq!(points.series("otel.sdk.exporter.span.exported"), 4);
        assert_eq!(points.value("otel.sdk.processor.span.processed", &[]), 0.0);
        assert_eq!(points.value("otel.sdk.exporter.span.exported", &[]), 0.0);
    }
}
