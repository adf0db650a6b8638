//! The attributes instruments carry, each declared once with the values it may take.
//!
//! Semantic-convention keys come from `opentelemetry-semantic-conventions`; project keys are
//! plain, namespaced by their subject (`cache.*`, `task.*`, …). Every value set is bounded: no
//! user id, raw path, URL or error message ever becomes an attribute value. The sets services
//! record through an enum are declared with it in `labels.rs`; these are the rest.

use super::Attribute;
use opentelemetry_semantic_conventions::attribute as semconv;

/// HTTP methods kept as themselves; any other method is recorded as `_OTHER` (semantic
/// conventions), so a client inventing methods cannot create series.
pub const HTTP_METHODS: &[&str] =
    &["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "_OTHER"];

/// `http.request.method`.
pub const HTTP_REQUEST_METHOD: Attribute =
    Attribute::one_of(semconv::HTTP_REQUEST_METHOD, HTTP_METHODS);
/// `http.route`: the matched route template, never the raw path.
pub const HTTP_ROUTE: Attribute =
    Attribute::bounded_by(semconv::HTTP_ROUTE, "the route templates of the service's router")
        .only_when("a route matched (absent for unknown paths)");
/// `http.response.status_code`.
pub const HTTP_RESPONSE_STATUS_CODE: Attribute =
    Attribute::bounded_by(semconv::HTTP_RESPONSE_STATUS_CODE, "HTTP status codes (100-599)")
        .only_when("a response was sent");
/// `error.type`: the status code for 5xx responses, or `timeout`/`_OTHER` when no response was sent.
pub const ERROR_TYPE: Attribute =
    Attribute::bounded_by(semconv::ERROR_TYPE, "5xx status codes, `timeout`, `_OTHER`")
        .only_when("the request failed (5xx or no response)");

/// `messaging.system`: the queue implementation.
pub const MESSAGING_SYSTEM: Attribute =
    Attribute::one_of(semconv::MESSAGING_SYSTEM, &["apalis_postgres"]);
/// `messaging.operation.name` for messages sent to a queue.
pub const MESSAGING_OPERATION_SEND: Attribute =
    Attribute::one_of(semconv::MESSAGING_OPERATION_NAME, &["send"]);
/// `messaging.operation.name` for messages taken from a queue.
pub const MESSAGING_OPERATION_RECEIVE: Attribute =
    Attribute::one_of(semconv::MESSAGING_OPERATION_NAME, &["receive"]);
