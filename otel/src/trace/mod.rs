//! Spans: the tracer every span of the platform is made with, and the span helpers by kind.
pub mod client;
pub mod messaging;
/// The tracer every span of the platform is made with (the global provider's, scope `orgraph`).
pub fn tracer() -> opentelemetry::global::BoxedTracer {
    opentelemetry::global::tracer_with_scope(crate::scope())
}
