//! Client spans for the calls no layer traces for us (Redis; Postgres statements get theirs from
//! the sqlx layer), and the decisions taken around such calls, as events on the current span: a
//! cache look-up's result, a circuit breaker refusing a call or changing state.
//!
//! Everything here is bounded: a span's name is the command (`GET`, `SET`, ...), never a key or a
//! value; events carry the catalogue's label values. Nothing is formatted or recorded unless the
//! span records (traces on and sampled).

use crate::catalogue::{BreakerName, BreakerState, CacheLayer, CacheName, CacheResult, Label};
use opentelemetry::trace::{Span, SpanBuilder, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue, StringValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use std::fmt::Display;
use std::sync::Arc;

/// `db.system.name` of Redis.
pub const REDIS: &str = "redis";

/// The attribute of a circuit-breaker state change naming the state it left.
pub const BREAKER_PREVIOUS_STATE: &str = "circuit_breaker.previous_state";

/// Where a client's server is (`server.address`, `server.port`); cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    address: Arc<str>,
    port: Option<u16>,
}

impl Server {
    /// The server at `address` (a host name, an IP address or a socket path) and `port`.
    pub fn new(address: &str, port: Option<u16>) -> Server {
        Server { address: address.into(), port }
    }

    fn attributes(&self) -> impl Iterator<Item = KeyValue> {
        let address = StringValue::from(self.address.clone());
        std::iter::once(KeyValue::new(semconv::SERVER_ADDRESS, address))
            .chain(self.port.map(|port| KeyValue::new(semconv::SERVER_PORT, i64::from(port))))
    }
}

/// A client span around one call: ended by [`ClientSpan::end`] or [`ClientSpan::fail`]; one
/// dropped before (its call timed out or was cancelled) ends failed, `error.type` `cancelled`.
pub struct ClientSpan {
    span: opentelemetry::global::BoxedSpan,
    ended: bool,
}

/// `error.type` of a client span whose call never finished.
pub const CANCELLED: &str = "cancelled";

impl ClientSpan {
    /// The span of Redis command `command` (upper case, e.g. `GET`; for a transaction `MULTI`),
    /// a child of the current span, with `db.system.name` `redis`, `db.operation.name` and,
    /// when known, the server. Without a current span (a background task: the cache's size
    /// report every export interval) it records nothing: a command of no request is no trace.
    pub fn redis(command: &'static str, server: Option<&Server>) -> ClientSpan {
        let builder =
            SpanBuilder::from_name(command).with_kind(SpanKind::Client).with_attributes([
                KeyValue::new(semconv::DB_SYSTEM_NAME, REDIS),
                KeyValue::new(semconv::DB_OPERATION_NAME, command),
            ]);
        let mut span = Context::map_current(|cx| {
            if cx.has_active_span() {
                super::tracer().build_with_context(builder, cx)
            } else {
                // The SDK makes a non-recording span under a suppressed context.
                super::tracer().build_with_context(builder, &cx.with_telemetry_suppressed())
            }
        });
        if let Some(server) = server
            && span.is_recording()
        {
            span.set_attributes(server.attributes());
        }
        ClientSpan { span, ended: false }
    }

    /// Whether the span records (traces on and sampled).
    pub fn is_recording(&self) -> bool {
        self.span.is_recording()
    }

    /// The call succeeded.
    pub fn end(mut self) {
        self.ended = true;
        self.span.end();
    }

    /// The call failed: status Error with `description`, and `error.type` (bounded: an error
    /// class or code, never a message).
    pub fn fail(mut self, error_type: impl Into<StringValue>, description: impl Display) {
        self.set_error(error_type.into(), description);
        self.ended = true;
        self.span.end();
    }

    fn set_error(&mut self, error_type: StringValue, description: impl Display) {
        if self.span.is_recording() {
            self.span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, error_type));
            self.span.set_status(Status::error(description.to_string()));
        }
    }
}

impl Drop for ClientSpan {
    fn drop(&mut self) {
        if !self.ended {
            let why = "the call was abandoned before it finished (timed out or cancelled)";
            self.set_error(CANCELLED.into(), why);
            self.span.end();
        }
    }
}

/// Event `cache.lookup` on the current span: cache `name` on `layer` answered with `result`.
pub fn cache_lookup(layer: CacheLayer, name: CacheName, result: CacheResult) {
    event("cache.lookup", || vec![layer.key_value(), name.key_value(), result.key_value()]);
}

/// Event `circuit_breaker.rejected` on the current span: breaker `name`, in `state`, refused a
/// call without making it.
pub fn breaker_rejected(name: BreakerName, state: BreakerState) {
    event("circuit_breaker.rejected", || vec![name.key_value(), state.key_value()]);
}

/// Event `circuit_breaker.state_change` on the current span: breaker `name` went from `from` to
/// `to` (`circuit_breaker.state`), during this span's call.
pub fn breaker_state_changed(name: BreakerName, from: BreakerState, to: BreakerState) {
    event("circuit_breaker.state_change", || {
        vec![name.key_value(), to.key_value(), KeyValue::new(BREAKER_PREVIOUS_STATE, from.as_str())]
    });
}

/// Adds event `name` to the current span if it records; `attributes` is only called then.
fn event(name: &'static str, attributes: impl FnOnce() -> Vec<KeyValue>) {
    Context::map_current(|cx| {
        let span = cx.span();
        if span.is_recording() {
            span.add_event(name, attributes());
        }
    });
}
