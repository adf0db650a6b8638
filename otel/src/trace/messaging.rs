//! Spans across the job queue, after the messaging semantic conventions: the API's producer span
//! `send {queue}`, whose W3C `traceparent` is stored with the job; the worker's consumer span
//! `process {queue}`, which continues that trace; and one `attempt {kind}` span per attempt of a
//! job. One trace then runs from the HTTP request to the job's last database statement.
//!
//! A [`JobSpan`] ends when it is dropped. Its [`JobSpan::context`] is what the work runs with
//! ([`JobSpan::run`]), so every client span made meanwhile (a
//! Postgres statement) is its child. Names come from bounded sets (the queues, the task types) and
//! are written out, never formatted; whatever needs formatting (the job id, an error's
//! description, the traceparent) is only done for a recording span, so with traces off (the
//! no-op tracer) or in an unsampled trace all of this costs a few branches.

use crate::catalogue::{Label, Queue, TaskType};
use opentelemetry::context::{FutureExt, WithContext};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{Link, SpanBuilder, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_semantic_conventions::attribute as semconv;
use std::fmt::Display;
use std::time::SystemTime;

/// `messaging.system` of every queue span: the queue is apalis' table in Postgres.
pub const SYSTEM: &str = "apalis";

/// The W3C Trace Context field a job carries (the `jobs.traceparent` column).
pub const TRACEPARENT: &str = "traceparent";

/// The attribute of an attempt span that numbers it: 1 for the first attempt of a job.
pub const ATTEMPT: &str = "task.attempt";

/// One span of a job's way through the queue; ends when dropped.
#[derive(Debug)]
pub struct JobSpan {
    /// The parent's context with this span active.
    cx: Context,
}

impl JobSpan {
    /// The producer span `send {queue}` of a job being queued, a child of the current span (the
    /// HTTP request's). Run the transaction that queues the job with [`JobSpan::context`], store
    /// [`JobSpan::traceparent`] with the job, and name it with [`JobSpan::set_message_id`].
    pub fn send(queue: Queue) -> JobSpan {
        let builder = SpanBuilder::from_name(send_name(queue))
            .with_kind(SpanKind::Producer)
            .with_attributes(operation(queue, "send"));
        JobSpan::start(builder, Context::current())
    }

    /// The consumer span `process {queue}` of job `job_id`: a child of the send span whose
    /// `traceparent` the job carried, and linked to it (the conventions link every processed
    /// message's creation context; one message per job also makes it the parent). Without a
    /// usable traceparent (none stored, traces off in the API, an old row) it is a root span.
    /// `start` is when the runner began on the job: reading the row that carried the
    /// traceparent happened before the span could exist.
    pub fn process(
        queue: Queue,
        job_id: impl Display,
        traceparent: Option<&str>,
        start: SystemTime,
    ) -> JobSpan {
        let parent = traceparent.map_or_else(Context::new, extract);
        let mut builder = SpanBuilder::from_name(process_name(queue))
            .with_kind(SpanKind::Consumer)
            .with_start_time(start)
            .with_attributes(operation(queue, "process"));
        let sent = parent.span().span_context().clone();
        if sent.is_valid() {
            builder = builder.with_links(vec![Link::with_context(sent)]);
        }
        let span = JobSpan::start(builder, parent);
        span.set_message_id(job_id);
        span
    }

    /// The span `attempt {kind}` of attempt number `attempt` (from 1) of a job of `kind`, a child
    /// of the current span (the process span). Run the attempt's work with
    /// [`JobSpan::context`]; a failed attempt is [`JobSpan::fail`]ed.
    pub fn attempt(kind: TaskType, attempt: u32) -> JobSpan {
        let builder = SpanBuilder::from_name(attempt_name(kind))
            .with_kind(SpanKind::Internal)
            .with_attributes([kind.key_value(), KeyValue::new(ATTEMPT, i64::from(attempt))]);
        JobSpan::start(builder, Context::current())
    }

    fn start(builder: SpanBuilder, parent: Context) -> JobSpan {
        let span = super::tracer().build_with_context(builder, &parent);
        JobSpan { cx: parent.with_span(span) }
    }

    /// The context to run the span's work with: this span is its current span.
    pub fn context(&self) -> Context {
        self.cx.clone()
    }

    /// `work`, run with [`JobSpan::context`] attached on every poll: this span is current while
    /// it runs, also across its awaits.
    pub fn run<F: Future>(&self, work: F) -> WithContext<F> {
        work.with_context(self.context())
    }

    /// Whether the span records (traces on and sampled).
    pub fn is_recording(&self) -> bool {
        self.cx.span().is_recording()
    }

    /// The span's W3C `traceparent`, through the global propagator: `Some` only for a valid,
    /// sampled span (an unsampled or no-op span has nothing worth continuing), and only when a
    /// propagator that writes `traceparent` is installed.
    pub fn traceparent(&self) -> Option<String> {
        let context = self.cx.span().span_context().clone();
        if !(context.is_valid() && context.is_sampled()) {
            return None;
        }
        let mut carrier = Carrier(None);
        global::get_text_map_propagator(|p| p.inject_context(&self.cx, &mut carrier));
        carrier.0
    }

    /// Sets `messaging.message.id`: the job id.
    pub fn set_message_id(&self, id: impl Display) {
        let span = self.cx.span();
        if span.is_recording() {
            span.set_attribute(KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id.to_string()));
        }
    }

    /// The operation failed: status Error with `description`, and `error.type` (from a bounded
    /// set, e.g. `transient`, `invalid`, `timeout`, `panic`, `queue_full`).
    pub fn fail(&self, error_type: &'static str, description: impl Display) {
        let span = self.cx.span();
        if span.is_recording() {
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, error_type));
            span.set_status(Status::error(description.to_string()));
        }
    }
}

impl Drop for JobSpan {
    fn drop(&mut self) {
        self.cx.span().end();
    }
}

/// `work`, with no span made for it: telemetry suppressed on every poll. For the worker's read of
/// a job's row, which says what trace the job continues: it runs before the job's span can exist,
/// and would otherwise be a root span (a trace of its own) for every job.
pub fn untraced<F: Future>(work: F) -> WithContext<F> {
    let suppressed = Context::current().with_telemetry_suppressed();
    work.with_context(suppressed)
}

/// The attributes both ends of the queue share.
fn operation(queue: Queue, operation: &'static str) -> Vec<KeyValue> {
    vec![
        KeyValue::new(semconv::MESSAGING_SYSTEM, SYSTEM),
        KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, operation),
        KeyValue::new(semconv::MESSAGING_OPERATION_NAME, operation),
        queue.key_value(),
    ]
}

/// `send {queue}`.
pub fn send_name(queue: Queue) -> &'static str {
    match queue {
        Queue::Analysis => "send analysis",
        Queue::Export => "send export",
        Queue::Intervention => "send intervention",
    }
}

/// `process {queue}`.
pub fn process_name(queue: Queue) -> &'static str {
    match queue {
        Queue::Analysis => "process analysis",
        Queue::Export => "process export",
        Queue::Intervention => "process intervention",
    }
}

/// `attempt {kind}`.
pub fn attempt_name(kind: TaskType) -> &'static str {
    match kind {
        TaskType::Analysis => "attempt analysis",
        TaskType::Export => "attempt export",
        TaskType::InterventionExecute => "attempt intervention_execute",
        TaskType::InterventionRollback => "attempt intervention_rollback",
    }
}

/// The context `traceparent` names, through the global propagator (an empty context if it
/// names none).
fn extract(traceparent: &str) -> Context {
    global::get_text_map_propagator(|p| {
        p.extract_with_context(&Context::new(), &Carried(traceparent))
    })
}

/// Receives the `traceparent` a propagator writes.
struct Carrier(Option<String>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.0 = Some(value);
        }
    }
}

/// A stored `traceparent`, as a propagator reads it.
struct Carried<'a>(&'a str);

impl Extractor for Carried<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_operation_and_the_bounded_queue_or_kind() {
        for queue in Queue::ALL.iter().copied() {
            assert_eq!(send_name(queue), format!("send {}", queue.as_str()));
            assert_eq!(process_name(queue), format!("process {}", queue.as_str()));
        }
        for kind in TaskType::ALL.iter().copied() {
            assert_eq!(attempt_name(kind), format!("attempt {}", kind.as_str()));
        }
    }

    #[test]
    fn a_traceparent_is_read_from_and_written_to_its_one_field() {
        let carried = Carried("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        assert_eq!(carried.get(TRACEPARENT), Some(carried.0));
        assert_eq!(carried.get("tracestate"), None);
        let mut carrier = Carrier(None);
        carrier.set("tracestate", "a=b".into());
        assert_eq!(carrier.0, None);
        carrier.set(TRACEPARENT, carried.0.into());
        assert_eq!(carrier.0.as_deref(), Some(carried.0));
    }
}
