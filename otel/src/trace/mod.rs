//! Traces: spans made with the OpenTelemetry API directly (not through `tracing`, which stays for
//! logs), so a span the sampler drops is a non-recording span that costs next to nothing, and
//! attribute keys come from `opentelemetry-semantic-conventions`.
//!
//! * [`tracer`] is the one tracer every span is made with; [`enabled`] is the switch
//!   instrumentation checks first, so with traces off it does no other work.
//! * The context travels through async code with [`opentelemetry::context::FutureExt`]
//!   (`future.with_context(cx)`), so `Context::current()` is right inside every poll.
//! * [`config`] reads the sampler and the span queue from the standard variables; [`pipeline`] is
//!   the bounded batch processor that counts lost spans.
//! * [`propagation`] reads and writes W3C `traceparent` headers through the global propagator.
//! * The HTTP server span is made by [`crate::layers::http`], with the request's metrics.
//! * [`sql`] turns sqlx's per-statement log event into a Postgres client span ([`sql_summary`]
//!   names it); [`client`] and [`messaging`] make the Redis client spans and the job send/process
//!   spans.
//! * [`log_ids`] puts the current `trace_id`/`span_id` on every JSON log line.

pub mod client;
pub mod config;
pub mod log_ids;
pub mod messaging;
pub mod pipeline;
pub mod propagation;
pub mod sql;
pub mod sql_summary;

pub use config::{SpanBatch, TraceSampler};

use std::sync::atomic::{AtomicBool, Ordering};

/// The tracer every span of the platform is made with (the global provider's, scope `orgraph`).
pub fn tracer() -> opentelemetry::global::BoxedTracer {
    opentelemetry::global::tracer_with_scope(crate::scope())
}

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether a tracer provider is installed (`OTEL_TRACES_EXPORTER=otlp`). Instrumentation checks
/// this first and does nothing else when it is `false`: one relaxed atomic load.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Turns span making on or off. [`crate::init`] switches it on when it installs a tracer
/// provider; tests that install their own provider (an in-memory exporter) call it themselves.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the current context's span is sampled: work done only for recorded traces (the
/// Postgres client spans) asks this.
pub fn current_is_sampled() -> bool {
    use opentelemetry::trace::TraceContextExt;
    opentelemetry::Context::map_current(|cx| cx.span().span_context().is_sampled())
}
