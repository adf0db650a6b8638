//! Worker metrics: tasks running per queue (a guard keeps the count right even when a task
//! panics), configured concurrency, and finished attempts by task type and status.

use super::zero;
use crate::catalogue::{self, Label, Queue, TaskStatus, TaskType};
use opentelemetry::metrics::{Counter, Histogram, Meter, UpDownCounter};
use std::time::Duration;

/// The worker instruments of one service.
#[derive(Clone)]
pub struct WorkerMetrics {
    active: UpDownCounter<i64>,
    concurrency: UpDownCounter<i64>,
    completed: Counter<u64>,
    duration: Histogram<f64>,
}

/// A task being run; counts in `orgraph.worker.active` until dropped.
pub struct ActiveTask {
    active: UpDownCounter<i64>,
    queue: Queue,
}

impl WorkerMetrics {
    /// Builds the instruments from the catalogue on `meter`.
    pub fn new(meter: &Meter) -> Self {
        WorkerMetrics {
            active: catalogue::WORKER_ACTIVE.i64_up_down_counter(meter),
            concurrency: catalogue::WORKER_CONCURRENCY.i64_up_down_counter(meter),
            completed: catalogue::TASK_COMPLETED.u64_counter(meter),
            duration: catalogue::TASK_DURATION.f64_histogram(meter),
        }
    }

    /// A worker for `queue` started that runs up to `slots` tasks at once; call once per worker.
    pub fn worker_started(&self, queue: Queue, slots: u32) {
        self.concurrency.add(i64::from(slots), &[queue.key_value()]);
    }

    /// A task from `queue` starts running.
    pub fn task_started(&self, queue: Queue) -> ActiveTask {
        self.active.add(1, &[queue.key_value()]);
        ActiveTask { active: self.active.clone(), queue }
    }

    /// The finished-attempt counts of `task` exist from now on, at 0 for every status (5 series:
    /// every task type can succeed, fail, be retried, time out or panic). For a service that runs
    /// `task`.
    pub fn start_at_zero(&self, task: TaskType) {
        for status in TaskStatus::ALL {
            let attributes = [task.key_value(), status.key_value()];
            zero::start_at_zero(&self.completed, &catalogue::TASK_COMPLETED, &attributes);
        }
    }

    /// One attempt of a `task` ended with `status` after `took`.
    pub fn task_finished(&self, task: TaskType, status: TaskStatus, took: Duration) {
        let attributes = [task.key_value(), status.key_value()];
        self.completed.add(1, &attributes);
        self.duration.record(took.as_secs_f64(), &attributes);
    }
}

impl Drop for ActiveTask {
    fn drop(&mut self) {
        self.active.add(-1, &[self.queue.key_value()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::Recorder;

    #[test]
    fn counts_active_tasks_and_finished_attempts() {
        let recorder = Recorder::new();
        let worker = WorkerMetrics::new(recorder.meter());
        worker.worker_started(Queue::Export, 4);
        let first = worker.task_started(Queue::Export);
        let second = worker.task_started(Queue::Export);
        drop(first);
        worker.task_finished(TaskType::Export, TaskStatus::Retry, Duration::from_secs(2));
        worker.task_finished(TaskType::Export, TaskStatus::Success, Duration::from_secs(3));
        let points = recorder.collect();
        points.assert_conforms();
        let export = [("messaging.destination.name", "export")];
        assert_eq!(points.value("orgraph.worker.active", &export), 1.0);
        assert_eq!(points.value("orgraph.worker.concurrency", &export), 4.0);
        let retry = [("task.type", "export"), ("task.status", "retry")];
        assert_eq!(points.value("orgraph.task.completed", &retry), 1.0);
        assert_eq!(points.count("orgraph.task.duration", &[("task.type", "export")]), 2);
        drop(second);
        assert_eq!(recorder.collect().value("orgraph.worker.active", &export), 0.0);
    }

    #[test]
    fn finished_attempts_start_at_zero_for_every_status() {
        let recorder = Recorder::new();
        let worker = WorkerMetrics::new(recorder.meter());
        worker.start_at_zero(TaskType::Export);
        let points = recorder.collect();
        points.assert_conforms();
        let timeout = [("task.type", "export"), ("task.status", "timeout")];
        assert_eq!(points.value("orgraph.task.completed", &timeout), 0.0);
        assert_eq!(points.value("orgraph.task.completed", &[]), 0.0);
        assert_eq!(points.series("orgraph.task.completed"), 5);
        assert_eq!(points.series("orgraph.task.duration"), 0, "histograms are not started");
        worker.task_finished(TaskType::Export, TaskStatus::Timeout, Duration::from_secs(1));
        assert_eq!(recorder.collect().value("orgraph.task.completed", &timeout), 1.0);
    }

    #[test]
    fn a_panicking_task_still_leaves_the_active_count() {
        let recorder = Recorder::new();
        let worker = WorkerMetrics::new(recorder.meter());
        let w = worker.clone();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _task = w.task_started(Queue::Analysis);
            panic!("job panicked");
        }));
        assert!(result.is_err());
        let points = recorder.collect();
        assert_eq!(points.value("orgraph.worker.active", &[]), 0.0);
    }
}
