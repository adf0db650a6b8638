//! HTTP server metrics per the semantic conventions. The tower layer in the services records
//! through this: [`HttpServerMetrics::start`] when a request arrives (active requests go up),
//! [`InFlightRequest::finish`] when its response is complete.

use crate::catalogue::{self, HTTP_METHODS, Label, Scheme};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter, UpDownCounter};
use opentelemetry_semantic_conventions::attribute as semconv;
use std::time::Instant;

/// The HTTP server instruments of one service.
#[derive(Clone)]
pub struct HttpServerMetrics {
    duration: Histogram<f64>,
    active: UpDownCounter<i64>,
    request_size: Histogram<u64>,
    response_size: Histogram<u64>,
}

/// How a request ended, as far as metrics care.
#[derive(Debug, Clone, Copy)]
pub struct RequestOutcome<'a> {
    /// The matched route template (`/api/graph/nodes/{id}`), `None` when no route matched.
    pub route: Option<&'a str>,
    /// The response status code.
    pub status: u16,
    /// Request body bytes received.
    pub request_bytes: u64,
    /// Response body bytes sent.
    pub response_bytes: u64,
}

/// A request being served; counts in `http.server.active_requests` until finished or dropped.
pub struct InFlightRequest {
    metrics: HttpServerMetrics,
    method: &'static str,
    scheme: Scheme,
    started: Instant,
}

impl HttpServerMetrics {
    /// Builds the instruments from the catalogue on `meter`.
    pub fn new(meter: &Meter) -> Self {
        HttpServerMetrics {
            duration: catalogue::HTTP_SERVER_REQUEST_DURATION.f64_histogram(meter),
            active: catalogue::HTTP_SERVER_ACTIVE_REQUESTS.i64_up_down_counter(meter),
            request_size: catalogue::HTTP_SERVER_REQUEST_BODY_SIZE.u64_histogram(meter),
            response_size: catalogue::HTTP_SERVER_RESPONSE_BODY_SIZE.u64_histogram(meter),
        }
    }

    /// A request arrived: counts it as active and starts its clock.
    pub fn start(&self, method: &str, scheme: Scheme) -> InFlightRequest {
        let method = normalize_method(method);
        self.active.add(1, &active_attributes(method, scheme));
        InFlightRequest { metrics: self.clone(), method, scheme, started: Instant::now() }
    }
}

impl InFlightRequest {
    /// The response is complete: records duration and body sizes.
    pub fn finish(self, outcome: RequestOutcome<'_>) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut attributes = Vec::with_capacity(5);
        attributes.push(KeyValue::new(semconv::HTTP_REQUEST_METHOD, self.method));
        attributes.push(self.scheme.key_value());
        attributes
            .push(KeyValue::new(semconv::HTTP_RESPONSE_STATUS_CODE, i64::from(outcome.status)));
        if let Some(route) = outcome.route {
            attributes.push(KeyValue::new(semconv::HTTP_ROUTE, route.to_string()));
        }
        if outcome.status >= 500 {
            attributes.push(KeyValue::new(semconv::ERROR_TYPE, outcome.status.to_string()));
        }
        self.metrics.duration.record(elapsed, &attributes);
        self.metrics.request_size.record(outcome.request_bytes, &attributes);
        self.metrics.response_size.record(outcome.response_bytes, &attributes);
        // Drop decrements the active count.
    }

    /// The request ended without a response (the service failed, or the request was abandoned
    /// before the response was ready): records the duration and the request size with
    /// `error.type` `_OTHER` and no status code, as the semantic conventions ask when no status
    /// was sent. No response size is recorded, since there was no response.
    pub fn fail(self, route: Option<&str>, request_bytes: u64) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let mut attributes = Vec::with_capacity(4);
        attributes.push(KeyValue::new(semconv::HTTP_REQUEST_METHOD, self.method));
        attributes.push(self.scheme.key_value());
        if let Some(route) = route {
            attributes.push(KeyValue::new(semconv::HTTP_ROUTE, route.to_string()));
        }
        attributes.push(KeyValue::new(semconv::ERROR_TYPE, "_OTHER"));
        self.metrics.duration.record(elapsed, &attributes);
        self.metrics.request_size.record(request_bytes, &attributes);
        // Drop decrements the active count.
    }
}

impl Drop for InFlightRequest {
    fn drop(&mut self) {
        self.metrics.active.add(-1, &active_attributes(self.method, self.scheme));
    }
}

fn active_attributes(method: &'static str, scheme: Scheme) -> [KeyValue; 2] {
    [KeyValue::new(semconv::HTTP_REQUEST_METHOD, method), scheme.key_value()]
}

/// The method as recorded: a known method as itself, anything else as `_OTHER`.
pub fn normalize_method(method: &str) -> &'static str {
    HTTP_METHODS.iter().copied().find(|m| *m == method && *m != "_OTHER").unwrap_or("_OTHER")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::Recorder;

    #[test]
    fn records_duration_sizes_and_active_requests() {
        let recorder = Recorder::new();
        let metrics = HttpServerMetrics::new(recorder.meter());
        let request = metrics.start("GET", Scheme::Http);
        let during = recorder.collect();
        assert_eq!(
            during.value("http.server.active_requests", &[("http.request.method", "GET")]),
            1.0
        );
        request.finish(RequestOutcome {
            route: Some("/api/graph/nodes/{id}"),
            status: 503,
            request_bytes: 12,
            response_bytes: 345,
        });
        let after = recorder.collect();
        after.assert_conforms();
        assert_eq!(after.value("http.server.active_requests", &[]), 0.0);
        let labels = [
            ("http.route", "/api/graph/nodes/{id}"),
            ("http.response.status_code", "503"),
            ("error.type", "503"),
            ("url.scheme", "http"),
        ];
        assert_eq!(after.count("http.server.request.duration", &labels), 1);
        assert_eq!(after.sum("http.server.request.body.size", &labels), 12.0);
        assert_eq!(after.sum("http.server.response.body.size", &labels), 345.0);
    }

    #[test]
    fn success_has_no_error_type_and_unmatched_route_has_no_route() {
        let recorder = Recorder::new();
        let metrics = HttpServerMetrics::new(recorder.meter());
        metrics.start("GET", Scheme::Https).finish(RequestOutcome {
            route: None,
            status: 404,
            request_bytes: 0,
            response_bytes: 10,
        });
        let points = recorder.collect();
        points.assert_conforms();
        let point = points.only("http.server.request.duration");
        assert!(!point.attributes.contains_key("error.type"));
        assert!(!point.attributes.contains_key("http.route"));
        assert_eq!(point.attributes["url.scheme"], "https");
    }

    #[test]
    fn failed_request_has_error_type_other_and_no_status() {
        let recorder = Recorder::new();
        let metrics = HttpServerMetrics::new(recorder.meter());
        metrics.start("POST", Scheme::Http).fail(Some("/api/graph/nodes"), 7);
        let points = recorder.collect();
        assert_eq!(points.value("http.server.active_requests", &[]), 0.0);
        let point = points.only("http.server.request.duration");
        assert_eq!(point.count, 1);
        assert_eq!(point.attributes["error.type"], "_OTHER");
        assert_eq!(point.attributes["http.route"], "/api/graph/nodes");
        assert!(!point.attributes.contains_key("http.response.status_code"));
        assert_eq!(points.sum("http.server.request.body.size", &[("error.type", "_OTHER")]), 7.0);
        assert_eq!(points.series("http.server.response.body.size"), 0);
    }

    #[test]
    fn unknown_methods_fold_to_other() {
        assert_eq!(normalize_method("GET"), "GET");
        assert_eq!(normalize_method("get"), "_OTHER");
        assert_eq!(normalize_method("BREW"), "_OTHER");
        assert_eq!(normalize_method("_OTHER"), "_OTHER");
        let recorder = Recorder::new();
        let metrics = HttpServerMetrics::new(recorder.meter());
        for method in ["FOO", "BAR", "PROPFIND"] {
            metrics.start(method, Scheme::Http).finish(RequestOutcome {
                route: None,
                status: 405,
                request_bytes: 0,
                response_bytes: 0,
            });
        }
        let points = recorder.collect();
        assert_eq!(
            points.count("http.server.request.duration", &[("http.request.method", "_OTHER")]),
            3
        );
        assert_eq!(points.series("http.server.request.duration"), 1);
    }
}
