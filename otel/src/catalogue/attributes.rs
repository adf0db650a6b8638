//! The attributes instruments carry, each declared once with the values it may take.
//!
//! Semantic-convention keys come from `opentelemetry-semantic-conventions`; project keys are
//! plain, namespaced by their subject (`cache.*`, `task.*`, …). Every value set is bounded: no
//! user id, raw path, URL or error message ever becomes an attribute value.

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
/// `url.scheme`.
pub const URL_SCHEME: Attribute = Attribute::one_of(semconv::URL_SCHEME, &["http", "https"]);

/// Connection pools of the services.
pub const POOL_NAMES: &[&str] = &["postgres", "redis"];
/// `db.client.connection.pool.name`.
pub const DB_POOL_NAME: Attribute =
    Attribute::one_of(semconv::DB_CLIENT_CONNECTION_POOL_NAME, POOL_NAMES);
/// `db.client.connection.state`.
pub const DB_CONNECTION_STATE: Attribute =
    Attribute::one_of(semconv::DB_CLIENT_CONNECTION_STATE, &["idle", "used"]);

/// `cache.layer`: `l1` is the in-process cache, `l2` the shared Redis cache.
pub const CACHE_LAYER: Attribute = Attribute::one_of("cache.layer", &["l1", "l2"]);
/// `cache.name`: one name per cached kind of data.
pub const CACHE_NAME: Attribute =
    Attribute::one_of("cache.name", &["graph_stats", "graph_nodes", "job_status"]);
/// `cache.result`.
pub const CACHE_RESULT: Attribute = Attribute::one_of("cache.result", &["hit", "miss"]);

/// The job queues, one per job kind. Never a Rust type path.
pub const QUEUES: &[&str] = &["analysis", "export", "intervention"];
/// `messaging.destination.name`: the queue.
pub const QUEUE: Attribute = Attribute::one_of(semconv::MESSAGING_DESTINATION_NAME, QUEUES);
/// `messaging.system`: the queue implementation.
pub const MESSAGING_SYSTEM: Attribute =
    Attribute::one_of(semconv::MESSAGING_SYSTEM, &["apalis_postgres"]);
/// `messaging.operation.name` for messages sent to a queue.
pub const MESSAGING_OPERATION_SEND: Attribute =
    Attribute::one_of(semconv::MESSAGING_OPERATION_NAME, &["send"]);
/// `messaging.operation.name` for messages taken from a queue.
pub const MESSAGING_OPERATION_RECEIVE: Attribute =
    Attribute::one_of(semconv::MESSAGING_OPERATION_NAME, &["receive"]);
/// `job.state`: the states a queued job is counted in.
pub const JOB_STATE: Attribute = Attribute::one_of("job.state", &["pending", "running", "failed"]);

/// `circuit_breaker.name`: one breaker per remote dependency.
pub const BREAKER_NAME: Attribute = Attribute::one_of("circuit_breaker.name", POOL_NAMES);
/// `circuit_breaker.state`.
pub const BREAKER_STATE: Attribute =
    Attribute::one_of("circuit_breaker.state", &["closed", "open", "half_open"]);
/// `circuit_breaker.outcome`: what became of a call through the breaker.
pub const BREAKER_OUTCOME: Attribute =
    Attribute::one_of("circuit_breaker.outcome", &["success", "failure", "rejected"]);

/// The graph changes that are timed.
pub const GRAPH_OPERATION: Attribute = Attribute::one_of(
    "graph.operation",
    &[
        "add_node",
        "delete_node",
        "add_edge",
        "delete_edge",
        "seed",
        "intervention_execute",
        "intervention_rollback",
    ],
);

/// `task.type`: the kinds of job the worker runs.
pub const TASK_TYPE: Attribute = Attribute::one_of(
    "task.type",
    &["analysis", "export", "intervention_execute", "intervention_rollback"],
);
/// `task.status`: how one attempt of a task ended.
pub const TASK_STATUS: Attribute =
    Attribute::one_of("task.status", &["success", "failure", "retry", "timeout", "panic"]);

/// `export.kind`.
pub const EXPORT_KIND: Attribute = Attribute::one_of("export.kind", &["employee_metrics"]);
/// `export.format`.
pub const EXPORT_FORMAT: Attribute = Attribute::one_of("export.format", &["csv", "jsonl"]);
/// `export.status`: how one export attempt ended; `timeout` when the worker cancelled it at
/// `TIMEOUT_EXPORT_MS`.
pub const EXPORT_STATUS: Attribute =
    Attribute::one_of("export.status", &["success", "failure", "timeout"]);

/// `intervention.kind`: the planned graph changes the platform knows.
pub const INTERVENTION_KIND: Attribute = Attribute::one_of("intervention.kind", &["reassign"]);
/// `intervention.outcome`.
pub const INTERVENTION_OUTCOME: Attribute =
    Attribute::one_of("intervention.outcome", &["success", "failure"]);

/// `cpu.mode` for process CPU time.
pub const CPU_MODE: Attribute = Attribute::one_of(semconv::CPU_MODE, &["user", "system"]);
