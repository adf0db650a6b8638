//! Job-queue metrics: depth by state and the oldest pending job's age, observed from the latest
//! snapshot a background refresh stored (reading the queue backend at collection time would put
//! a database query inside the exporter's thread); and enqueued/dequeued counts
//! (`messaging.client.*` semantic conventions).

use super::zero;
use crate::catalogue::{self, JobState, Label, Queue};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter, ObservableGauge};
use opentelemetry_semantic_conventions::attribute as semconv;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// One queue's numbers, as read from the queue backend.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct QueueStats {
    /// Jobs waiting to run (the queue depth).
    pub pending: u64,
    /// Jobs running.
    pub running: u64,
    /// Jobs that ended failed.
    pub failed: u64,
    /// Age in seconds of the oldest pending job; 0 when none is pending.
    pub oldest_pending_age_secs: f64,
}

type Snapshot = Arc<Mutex<BTreeMap<Queue, QueueStats>>>;

/// The queue instruments of one service.
#[derive(Clone)]
pub struct QueueMetrics {
    snapshot: Snapshot,
    sent: Counter<u64>,
    consumed: Counter<u64>,
    _observed: Arc<(ObservableGauge<u64>, ObservableGauge<f64>)>,
}

impl QueueMetrics {
    /// Builds the instruments from the catalogue on `meter`.
    pub fn new(meter: &Meter) -> Self {
        let snapshot: Snapshot = Arc::default();
        let s = snapshot.clone();
        let jobs = catalogue::QUEUE_JOBS.u64_observable_gauge(meter, move |observer| {
            for (queue, stats) in read(&s).iter() {
                for (state, value) in [
                    (JobState::Pending, stats.pending),
                    (JobState::Running, stats.running),
                    (JobState::Failed, stats.failed),
                ] {
                    observer.observe(value, &[queue.key_value(), state.key_value()]);
                }
            }
        });
        let s = snapshot.clone();
        let age =
            catalogue::QUEUE_OLDEST_PENDING_AGE.f64_observable_gauge(meter, move |observer| {
                for (queue, stats) in read(&s).iter() {
                    observer.observe(stats.oldest_pending_age_secs, &[queue.key_value()]);
                }
            });
        QueueMetrics {
            snapshot,
            sent: catalogue::MESSAGING_CLIENT_SENT_MESSAGES.u64_counter(meter),
            consumed: catalogue::MESSAGING_CLIENT_CONSUMED_MESSAGES.u64_counter(meter),
            _observed: Arc::new((jobs, age)),
        }
    }

    /// Stores the latest numbers of `queue`; the next collection reports them.
    pub fn update(&self, queue: Queue, stats: QueueStats) {
        read(&self.snapshot).insert(queue, stats);
    }

    /// The enqueued count of `queue` exists from now on, at 0 (1 series); for a service that
    /// sends jobs to `queue`.
    pub fn start_enqueued_at_zero(&self, queue: Queue) {
        let attributes = attributes(queue, "send");
        zero::start_at_zero(&self.sent, &catalogue::MESSAGING_CLIENT_SENT_MESSAGES, &attributes);
    }

    /// The dequeued count of `queue` exists from now on, at 0 (1 series); for a service that
    /// takes jobs from `queue`.
    pub fn start_dequeued_at_zero(&self, queue: Queue) {
        let attributes = attributes(queue, "receive");
        let instrument = &catalogue::MESSAGING_CLIENT_CONSUMED_MESSAGES;
        zero::start_at_zero(&self.consumed, instrument, &attributes);
    }

    /// A job was enqueued on `queue`.
    pub fn enqueued(&self, queue: Queue) {
        self.sent.add(1, &attributes(queue, "send"));
    }

    /// A worker took a job from `queue`.
    pub fn dequeued(&self, queue: Queue) {
        self.consumed.add(1, &attributes(queue, "receive"));
    }
}

fn read(snapshot: &Snapshot) -> std::sync::MutexGuard<'_, BTreeMap<Queue, QueueStats>> {
    // The map holds plain numbers: a panic elsewhere cannot leave it half-written.
    snapshot.lock().unwrap_or_else(PoisonError::into_inner)
}

fn attributes(queue: Queue, operation: &'static str) -> [KeyValue; 3] {
    [
        KeyValue::new(semconv::MESSAGING_SYSTEM, "apalis_postgres"),
        KeyValue::new(semconv::MESSAGING_OPERATION_NAME, operation),
        queue.key_value(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::Recorder;

    #[test]
    fn reports_the_latest_snapshot_and_counts_messages() {
        let recorder = Recorder::new();
        let queues = QueueMetrics::new(recorder.meter());
        let stats = QueueStats { pending: 5, running: 1, failed: 2, oldest_pending_age_secs: 42.5 };
        queues.update(Queue::Export, stats);
        queues.update(Queue::Export, QueueStats { pending: 4, ..stats });
        queues.enqueued(Queue::Analysis);
        queues.enqueued(Queue::Analysis);
        queues.dequeued(Queue::Analysis);
        let points = recorder.collect();
        points.assert_conforms();
        let export = ("messaging.destination.name", "export");
        assert_eq!(points.value("orgraph.queue.jobs", &[export, ("job.state", "pending")]), 4.0);
        assert_eq!(points.value("orgraph.queue.jobs", &[export, ("job.state", "failed")]), 2.0);
        assert_eq!(points.value("orgraph.queue.oldest_pending_age", &[export]), 42.5);
        let analysis = ("messaging.destination.name", "analysis");
        assert_eq!(points.value("messaging.client.sent.messages", &[analysis]), 2.0);
        assert_eq!(points.value("messaging.client.consumed.messages", &[analysis]), 1.0);
    }

    #[test]
    fn sent_and_consumed_counts_start_at_zero_only_where_started() {
        let recorder = Recorder::new();
        let queues = QueueMetrics::new(recorder.meter());
        queues.start_enqueued_at_zero(Queue::Intervention);
        queues.start_dequeued_at_zero(Queue::Export);
        let points = recorder.collect();
        points.assert_conforms();
        let queue = |q| [("messaging.destination.name", q)];
        assert_eq!(points.value("messaging.client.sent.messages", &queue("intervention")), 0.0);
        assert_eq!(points.value("messaging.client.consumed.messages", &queue("export")), 0.0);
        let sent = points.only("messaging.client.sent.messages");
        assert_eq!(
            sent.attributes.get("messaging.operation.name").map(String::as_str),
            Some("send")
        );
        assert_eq!(points.series("messaging.client.consumed.messages"), 1);
    }
}
