//! The server span of an HTTP request, for [`super::http`]: started when the request reaches the
//! layer, ended when the request is recorded.
//!
//! Name: `{method} {route template}`, or the method alone when no route matched, as the semantic
//! conventions name server spans; a method outside the known set is `_OTHER` in the attributes
//! and `HTTP` in the name (the conventions' rule), so neither can grow with what clients send.
//! Status: `Error` for a 5xx response and for a request that ended without a response (the
//! service failed, or the client went away first, both recorded with `error.type` `_OTHER` as in
//! the metrics); unset otherwise (a 4xx is the client's error, not the server's).

use crate::catalogue::{Label, Scheme};
use crate::metrics::normalize_method;
use http::Request;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;

/// Starts the server span of `request`, a child of the trace its headers carry if any; returns
/// the context holding it.
pub(crate) fn start<B>(request: &Request<B>, scheme: Scheme, route: Option<&str>) -> Context {
    let parent = crate::trace::propagation::extract(request.headers());
    let method = normalize_method(request.method().as_str());
    let name_method = if method == "_OTHER" { "HTTP" } else { method };
    let name = match route {
        Some(route) => format!("{name_method} {route}"),
        None => name_method.to_string(),
    };
    let mut attributes = Vec::with_capacity(3);
    attributes.push(KeyValue::new(semconv::HTTP_REQUEST_METHOD, method));
    attributes.push(scheme.key_value());
    if let Some(route) = route {
        attributes.push(KeyValue::new(semconv::HTTP_ROUTE, route.to_string()));
    }
    let tracer = crate::trace::tracer();
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(&tracer, &parent);
    parent.with_span(span)
}

/// Ends the span of `trace` for a request that ended with `status` (`None`: no response).
pub(crate) fn end(trace: &Context, status: Option<u16>) {
    let span = trace.span();
    if span.is_recording() {
        match status {
            Some(status) => {
                span.set_attribute(KeyValue::new(
                    semconv::HTTP_RESPONSE_STATUS_CODE,
                    i64::from(status),
                ));
                if status >= 500 {
                    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, status.to_string()));
                    span.set_status(Status::error(""));
                }
            }
            None => {
                span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, "_OTHER"));
                span.set_status(Status::error("no response was sent"));
            }
        }
    }
    span.end();
}
