//! Export retention metrics: the worker removes old export files so exports cannot fill its disk,
//! and these say that it does: the files removed by reason (`age`, `count`), and each pass by
//! outcome with its duration, so a pass that keeps failing (and a disk that keeps filling) shows.

use super::zero;
use crate::catalogue::{self, Label, RetentionOutcome, RetentionReason};
use opentelemetry::metrics::{Counter, Histogram, Meter};
use std::time::Duration;

/// The export retention instruments of one service.
#[derive(Clone)]
pub struct RetentionMetrics {
    removed: Counter<u64>,
    runs: Counter<u64>,
    duration: Histogram<f64>,
}

impl RetentionMetrics {
    /// Builds the instruments from the catalogue on `meter`.
    pub fn new(meter: &Meter) -> Self {
        RetentionMetrics {
            removed: catalogue::EXPORT_RETENTION_REMOVED.u64_counter(meter),
            runs: catalogue::EXPORT_RETENTION_RUNS.u64_counter(meter),
            duration: catalogue::EXPORT_RETENTION_DURATION.f64_histogram(meter),
        }
    }

    /// The removal count of every reason and the pass count of every outcome exist from now on,
    /// at 0 (4 series); for the service that runs the retention.
    pub fn start_at_zero(&self) {
        for reason in RetentionReason::ALL {
            let attributes = [reason.key_value()];
            zero::start_at_zero(&self.removed, &catalogue::EXPORT_RETENTION_REMOVED, &attributes);
        }
        for outcome in RetentionOutcome::ALL {
            let attributes = [outcome.key_value()];
            zero::start_at_zero(&self.runs, &catalogue::EXPORT_RETENTION_RUNS, &attributes);
        }
    }

    /// `files` export files were removed for `reason`.
    pub fn removed(&self, reason: RetentionReason, files: u64) {
        self.removed.add(files, &[reason.key_value()]);
    }

    /// A retention pass ended with `outcome` after `took`.
    pub fn pass_finished(&self, outcome: RetentionOutcome, took: Duration) {
        let attributes = [outcome.key_value()];
        self.runs.add(1, &attributes);
        self.duration.record(took.as_secs_f64(), &attributes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::Recorder;

    #[test]
    fn starts_at_zero_then_counts_removals_and_passes() {
        let recorder = Recorder::new();
        let retention = RetentionMetrics::new(recorder.meter());
        retention.start_at_zero();
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!(points.series("orgraph.export.retention.removed"), 2);
        assert_eq!(points.series("orgraph.export.retention.runs"), 2);
        assert_eq!(points.value("orgraph.export.retention.removed", &[]), 0.0);
        assert_eq!(points.series("orgraph.export.retention.duration"), 0, "no pass yet");

        retention.removed(RetentionReason::Age, 3);
        retention.removed(RetentionReason::Count, 1);
        retention.pass_finished(RetentionOutcome::Success, Duration::from_millis(20));
        retention.pass_finished(RetentionOutcome::Failure, Duration::from_millis(5));
        let points = recorder.collect();
        points.assert_conforms();
        let age = [("export.retention.reason", "age")];
        assert_eq!(points.value("orgraph.export.retention.removed", &age), 3.0);
        let count = [("export.retention.reason", "count")];
        assert_eq!(points.value("orgraph.export.retention.removed", &count), 1.0);
        let failure = [("export.retention.outcome", "failure")];
        assert_eq!(points.value("orgraph.export.retention.runs", &failure), 1.0);
        assert_eq!(points.count("orgraph.export.retention.duration", &[]), 2);
        let success = [("export.retention.outcome", "success")];
        assert_eq!(points.sum("orgraph.export.retention.duration", &success), 0.02);
    }
}
