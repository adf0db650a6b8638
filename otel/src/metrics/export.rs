//! Export metrics: finished exports by kind, format and status (`timeout` for an attempt the
//! worker cancelled), their duration, the size of the file a successful export wrote, and the
//! duration above which an export counts as slow, so alerts read the threshold from the worker.

use crate::catalogue::{self, ExportFormat, ExportKind, ExportStatus, Label};
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};
use std::time::Duration;

/// The export instruments of one service.
#[derive(Clone)]
pub struct ExportMetrics {
    requests: Counter<u64>,
    duration: Histogram<f64>,
    size: Histogram<u64>,
    slow_threshold: Gauge<f64>,
}

impl ExportMetrics {
    /// Builds the instruments from the catalogue on `meter`.
    pub fn new(meter: &Meter) -> Self {
        ExportMetrics {
            requests: catalogue::EXPORT_REQUESTS.u64_counter(meter),
            duration: catalogue::EXPORT_DURATION.f64_histogram(meter),
            size: catalogue::EXPORT_SIZE.u64_histogram(meter),
            slow_threshold: catalogue::EXPORT_SLOW_THRESHOLD.f64_gauge(meter),
        }
    }

    /// Exports running longer than `threshold` count as slow; call once at start-up (the gauge
    /// keeps its value for every later collection).
    pub fn set_slow_threshold(&self, threshold: Duration) {
        self.slow_threshold.record(threshold.as_secs_f64(), &[]);
    }

    /// An export succeeded after `took`, writing `bytes` bytes.
    pub fn succeeded(&self, kind: ExportKind, format: ExportFormat, took: Duration, bytes: u64) {
        self.finished(kind, format, ExportStatus::Success, took);
        self.size.record(bytes, &[kind.key_value(), format.key_value()]);
    }

    /// An export failed after `took`.
    pub fn failed(&self, kind: ExportKind, format: ExportFormat, took: Duration) {
        self.finished(kind, format, ExportStatus::Failure, took);
    }

    /// An export was cancelled at its timeout after running for `took`.
    pub fn timed_out(&self, kind: ExportKind, format: ExportFormat, took: Duration) {
        self.finished(kind, format, ExportStatus::Timeout, took);
    }

    fn finished(
        &self,
        kind: ExportKind,
        format: ExportFormat,
        status: ExportStatus,
        took: Duration,
    ) {
        let attributes = [kind.key_value(), format.key_value(), status.key_value()];
        self.requests.add(1, &attributes);
        self.duration.record(took.as_secs_f64(), &attributes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::Recorder;

    #[test]
    fn records_outcome_duration_and_size() {
        let recorder = Recorder::new();
        let exports = ExportMetrics::new(recorder.meter());
        let (kind, csv) = (ExportKind::EmployeeMetrics, ExportFormat::Csv);
        exports.succeeded(kind, csv, Duration::from_secs(4), 2048);
        exports.failed(kind, ExportFormat::Jsonl, Duration::from_secs(1));
        let points = recorder.collect();
        points.assert_conforms();
        let ok = [("export.format", "csv"), ("export.status", "success")];
        assert_eq!(points.value("orgraph.export.requests", &ok), 1.0);
        assert_eq!(points.value("orgraph.export.requests", &[("export.status", "failure")]), 1.0);
        assert_eq!(points.count("orgraph.export.duration", &[]), 2);
        assert_eq!(points.sum("orgraph.export.size", &[("export.format", "csv")]), 2048.0);
        assert_eq!(points.series("orgraph.export.size"), 1, "failures write no file");
    }

    #[test]
    fn records_a_timed_out_export_with_its_duration() {
        let recorder = Recorder::new();
        let exports = ExportMetrics::new(recorder.meter());
        exports.timed_out(ExportKind::EmployeeMetrics, ExportFormat::Csv, Duration::from_secs(600));
        let points = recorder.collect();
        points.assert_conforms();
        let timeout = [("export.format", "csv"), ("export.status", "timeout")];
        assert_eq!(points.value("orgraph.export.requests", &timeout), 1.0);
        assert_eq!(points.count("orgraph.export.duration", &timeout), 1);
        assert_eq!(points.sum("orgraph.export.duration", &timeout), 600.0);
        assert_eq!(points.series("orgraph.export.size"), 0, "a timed-out export wrote no file");
    }

    #[test]
    fn the_slow_threshold_is_reported_in_seconds_at_every_collection() {
        let recorder = Recorder::new();
        let exports = ExportMetrics::new(recorder.meter());
        exports.set_slow_threshold(Duration::from_millis(300_000));
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!(points.only("orgraph.export.slow_threshold").value, 300.0);
        assert!(points.only("orgraph.export.slow_threshold").attributes.is_empty());
        // Set once at start-up, it must not vanish from later exports.
        assert_eq!(recorder.collect().only("orgraph.export.slow_threshold").value, 300.0);
    }
}
