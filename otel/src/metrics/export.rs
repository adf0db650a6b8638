//! Export metrics: finished exports by kind, format and status, their duration, and the size of
//! the file a successful export wrote.

use super::labels::{ExportFormat, ExportKind, ExportStatus, Label};
use crate::catalogue;
use opentelemetry::metrics::{Counter, Histogram, Meter};
use std::time::Duration;

/// The export instruments of one service.
#[derive(Clone)]
pub struct ExportMetrics {
    requests: Counter<u64>,
    duration: Histogram<f64>,
    size: Histogram<u64>,
}

impl ExportMetrics {
    /// Builds the instruments from the catalogue on `meter`.
    pub fn new(meter: &Meter) -> Self {
        ExportMetrics {
            requests: catalogue::EXPORT_REQUESTS.u64_counter(meter),
            duration: catalogue::EXPORT_DURATION.f64_histogram(meter),
            size: catalogue::EXPORT_SIZE.u64_histogram(meter),
        }
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
}
