//! The instruments, grouped by what they watch. [`ALL`] lists every one of them; a test fails if
//! an instrument is declared but missing there, or recorded without being declared.

use super::{Attribute, Instrument, Kind, Scope, attributes::*, buckets::*, labels::*};
use opentelemetry_semantic_conventions::metric as semconv;

const fn instrument(
    name: &'static str,
    kind: Kind,
    unit: &'static str,
    description: &'static str,
    attributes: &'static [Attribute],
) -> Instrument {
    Instrument { name, kind, unit, description, attributes, buckets: &[], scope: Scope::Instance }
}

const fn histogram(
    name: &'static str,
    unit: &'static str,
    description: &'static str,
    attributes: &'static [Attribute],
    buckets: &'static [f64],
) -> Instrument {
    Instrument {
        name,
        kind: Kind::Histogram,
        unit,
        description,
        attributes,
        buckets,
        scope: Scope::Instance,
    }
}

// --- HTTP server (semantic conventions) -------------------------------------------------------

const HTTP_REQUEST_ATTRIBUTES: &[Attribute] =
    &[HTTP_REQUEST_METHOD, HTTP_ROUTE, HTTP_RESPONSE_STATUS_CODE, ERROR_TYPE, URL_SCHEME];

/// Duration of HTTP server requests.
pub const HTTP_SERVER_REQUEST_DURATION: Instrument = histogram(
    semconv::HTTP_SERVER_REQUEST_DURATION,
    "s",
    "Duration of HTTP server requests.",
    HTTP_REQUEST_ATTRIBUTES,
    HTTP_DURATION_BUCKETS,
);
/// Requests being served right now.
pub const HTTP_SERVER_ACTIVE_REQUESTS: Instrument = instrument(
    semconv::HTTP_SERVER_ACTIVE_REQUESTS,
    Kind::UpDownCounter,
    "{request}",
    "Number of active HTTP server requests.",
    &[HTTP_REQUEST_METHOD, URL_SCHEME],
);
/// Size of request bodies.
pub const HTTP_SERVER_REQUEST_BODY_SIZE: Instrument = histogram(
    semconv::HTTP_SERVER_REQUEST_BODY_SIZE,
    "By",
    "Size of HTTP server request bodies.",
    HTTP_REQUEST_ATTRIBUTES,
    SIZE_BUCKETS,
);
/// Size of response bodies.
pub const HTTP_SERVER_RESPONSE_BODY_SIZE: Instrument = histogram(
    semconv::HTTP_SERVER_RESPONSE_BODY_SIZE,
    "By",
    "Size of HTTP server response bodies.",
    HTTP_REQUEST_ATTRIBUTES,
    SIZE_BUCKETS,
);

// --- Caches -------------------------------------------------------------------------------------

/// Cache look-ups, by layer, cache and result (hit or miss).
pub const CACHE_REQUESTS: Instrument = instrument(
    "orgraph.cache.requests",
    Kind::Counter,
    "{request}",
    "Cache look-ups by cache layer, cache name and result.",
    &[CACHE_LAYER, CACHE_NAME, CACHE_RESULT],
);
/// Bytes held by a cache.
pub const CACHE_SIZE: Instrument = instrument(
    "orgraph.cache.size",
    Kind::Gauge,
    "By",
    "Approximate size of the entries a cache holds.",
    &[CACHE_LAYER, CACHE_NAME],
)
.shared_when("the L2 cache in Redis, read by every API instance", "cache.layer", "l2");
/// Entries held by a cache.
pub const CACHE_ITEMS: Instrument = instrument(
    "orgraph.cache.items",
    Kind::Gauge,
    "{item}",
    "Number of entries a cache holds.",
    &[CACHE_LAYER, CACHE_NAME],
)
.shared_when("the L2 cache in Redis, read by every API instance", "cache.layer", "l2");

// --- Connection pools (semantic conventions: db.client.connection.*) ---------------------------

/// Open connections by state.
pub const DB_CLIENT_CONNECTION_COUNT: Instrument = instrument(
    semconv::DB_CLIENT_CONNECTION_COUNT,
    Kind::UpDownCounter,
    "{connection}",
    "Number of connections in the pool, by state (idle or used).",
    &[DB_POOL_NAME, DB_CONNECTION_STATE],
);
/// Pool capacity.
pub const DB_CLIENT_CONNECTION_MAX: Instrument = instrument(
    semconv::DB_CLIENT_CONNECTION_MAX,
    Kind::UpDownCounter,
    "{connection}",
    "Maximum number of open connections the pool allows.",
    &[DB_POOL_NAME],
);
/// Callers waiting for a connection.
pub const DB_CLIENT_CONNECTION_PENDING_REQUESTS: Instrument = instrument(
    semconv::DB_CLIENT_CONNECTION_PENDING_REQUESTS,
    Kind::UpDownCounter,
    "{request}",
    "Number of callers waiting for a connection from the pool.",
    &[DB_POOL_NAME],
);
/// Timed-out connection requests.
pub const DB_CLIENT_CONNECTION_TIMEOUTS: Instrument = instrument(
    semconv::DB_CLIENT_CONNECTION_TIMEOUTS,
    Kind::Counter,
    "{timeout}",
    "Number of connection requests that timed out waiting for the pool.",
    &[DB_POOL_NAME],
);
/// Time spent waiting for a connection.
pub const DB_CLIENT_CONNECTION_WAIT_TIME: Instrument = histogram(
    semconv::DB_CLIENT_CONNECTION_WAIT_TIME,
    "s",
    "Time it took to obtain a connection from the pool.",
    &[DB_POOL_NAME],
    POOL_WAIT_BUCKETS,
);

// --- Job queues ---------------------------------------------------------------------------------

/// Jobs in a queue by state, read from the queue backend.
pub const QUEUE_JOBS: Instrument = instrument(
    "orgraph.queue.jobs",
    Kind::Gauge,
    "{job}",
    "Jobs in a queue by state (pending is the queue depth), read from the queue backend.",
    &[QUEUE, JOB_STATE],
)
.shared("the job queues in Postgres, read by every worker instance");
/// Age of the oldest pending job.
pub const QUEUE_OLDEST_PENDING_AGE: Instrument = instrument(
    "orgraph.queue.oldest_pending_age",
    Kind::Gauge,
    "s",
    "Age of the oldest job still pending in a queue (0 when none is pending).",
    &[QUEUE],
)
.shared("the job queues in Postgres, read by every worker instance");
/// Jobs enqueued.
pub const MESSAGING_CLIENT_SENT_MESSAGES: Instrument = instrument(
    semconv::MESSAGING_CLIENT_SENT_MESSAGES,
    Kind::Counter,
    "{message}",
    "Number of jobs enqueued.",
    &[MESSAGING_SYSTEM, MESSAGING_OPERATION_SEND, QUEUE],
);
/// Jobs taken from a queue.
pub const MESSAGING_CLIENT_CONSUMED_MESSAGES: Instrument = instrument(
    semconv::MESSAGING_CLIENT_CONSUMED_MESSAGES,
    Kind::Counter,
    "{message}",
    "Number of jobs taken from a queue by a worker.",
    &[MESSAGING_SYSTEM, MESSAGING_OPERATION_RECEIVE, QUEUE],
);

// --- Circuit breakers ---------------------------------------------------------------------------

/// Breaker state as a one-hot gauge.
pub const CIRCUIT_BREAKER_STATE: Instrument = instrument(
    "orgraph.circuit_breaker.state",
    Kind::Gauge,
    "{state}",
    "Circuit breaker state: 1 on the series of the current state, 0 on the others.",
    &[BREAKER_NAME, BREAKER_STATE],
);
/// Calls through a breaker by outcome.
pub const CIRCUIT_BREAKER_CALLS: Instrument = instrument(
    "orgraph.circuit_breaker.calls",
    Kind::Counter,
    "{call}",
    "Calls through a circuit breaker by outcome (success, failure, or rejected while open).",
    &[BREAKER_NAME, BREAKER_OUTCOME],
);

// --- Org graph ----------------------------------------------------------------------------------

/// Employees in the graph.
pub const GRAPH_NODES: Instrument = instrument(
    "orgraph.graph.nodes",
    Kind::Gauge,
    "{node}",
    "Number of nodes (employees) in the org graph.",
    &[],
)
.shared("the org graph in Postgres, read by every API instance");
/// Relations in the graph.
pub const GRAPH_EDGES: Instrument = instrument(
    "orgraph.graph.edges",
    Kind::Gauge,
    "{edge}",
    "Number of edges (relations) in the org graph.",
    &[],
)
.shared("the org graph in Postgres, read by every API instance");
/// Time to apply a graph change.
pub const GRAPH_UPDATE_DURATION: Instrument = histogram(
    "orgraph.graph.update.duration",
    "s",
    "Duration of a change to the org graph, by operation.",
    &[GRAPH_OPERATION],
    GRAPH_UPDATE_BUCKETS,
);

// --- Worker -------------------------------------------------------------------------------------

/// Tasks being worked on.
pub const WORKER_ACTIVE: Instrument = instrument(
    "orgraph.worker.active",
    Kind::UpDownCounter,
    "{task}",
    "Tasks a worker is running right now, by queue.",
    &[QUEUE],
);
/// Configured concurrency.
pub const WORKER_CONCURRENCY: Instrument = instrument(
    "orgraph.worker.concurrency",
    Kind::UpDownCounter,
    "{task}",
    "Tasks a worker may run at once, by queue.",
    &[QUEUE],
);
/// Finished task attempts.
pub const TASK_COMPLETED: Instrument = instrument(
    "orgraph.task.completed",
    Kind::Counter,
    "{task}",
    "Task attempts finished, by task type and status.",
    &[TASK_TYPE, TASK_STATUS],
);
/// Task attempt duration.
pub const TASK_DURATION: Instrument = histogram(
    "orgraph.task.duration",
    "s",
    "Duration of a task attempt, by task type and status.",
    &[TASK_TYPE, TASK_STATUS],
    TASK_DURATION_BUCKETS,
);

// --- Exports ------------------------------------------------------------------------------------

/// Finished exports.
pub const EXPORT_REQUESTS: Instrument = instrument(
    "orgraph.export.requests",
    Kind::Counter,
    "{export}",
    "Exports finished, one per export job (not per attempt), by kind, format and status.",
    &[EXPORT_KIND, EXPORT_FORMAT, EXPORT_STATUS],
);
/// Export duration.
pub const EXPORT_DURATION: Instrument = histogram(
    "orgraph.export.duration",
    "s",
    "Duration of an export, by kind, format and status.",
    &[EXPORT_KIND, EXPORT_FORMAT, EXPORT_STATUS],
    TASK_DURATION_BUCKETS,
);
/// Export file size.
pub const EXPORT_SIZE: Instrument = histogram(
    "orgraph.export.size",
    "By",
    "Size of the file a successful export wrote.",
    &[EXPORT_KIND, EXPORT_FORMAT],
    SIZE_BUCKETS,
);
/// The duration above which an export counts as slow.
pub const EXPORT_SLOW_THRESHOLD: Instrument = instrument(
    "orgraph.export.slow_threshold",
    Kind::Gauge,
    "s",
    "Export duration above which an export counts as slow (the worker's EXPORT_SLOW_MS).",
    &[],
)
.shared("the EXPORT_SLOW_MS setting, the same on every worker instance");

/// Export files removed by the worker's retention.
pub const EXPORT_RETENTION_REMOVED: Instrument = instrument(
    "orgraph.export.retention.removed",
    Kind::Counter,
    "{file}",
    "Export files the worker's retention removed, by reason (age or count).",
    &[EXPORT_RETENTION_REASON],
);
/// Retention passes.
pub const EXPORT_RETENTION_RUNS: Instrument = instrument(
    "orgraph.export.retention.runs",
    Kind::Counter,
    "{run}",
    "Retention passes over the export files, by outcome.",
    &[EXPORT_RETENTION_OUTCOME],
);
/// Retention pass duration.
pub const EXPORT_RETENTION_DURATION: Instrument = histogram(
    "orgraph.export.retention.duration",
    "s",
    "Duration of a retention pass over the export files, by outcome.",
    &[EXPORT_RETENTION_OUTCOME],
    MAINTENANCE_DURATION_BUCKETS,
);

// --- Interventions ------------------------------------------------------------------------------

/// Proposed interventions.
pub const INTERVENTION_PROPOSALS: Instrument = instrument(
    "orgraph.intervention.proposals",
    Kind::Counter,
    "{intervention}",
    "Interventions proposed, by kind.",
    &[INTERVENTION_KIND],
);
/// Executed interventions.
pub const INTERVENTION_EXECUTIONS: Instrument = instrument(
    "orgraph.intervention.executions",
    Kind::Counter,
    "{intervention}",
    "Intervention executions that changed the graph or failed for good, by kind and outcome.",
    &[INTERVENTION_KIND, INTERVENTION_OUTCOME],
);
/// Rolled-back interventions.
pub const INTERVENTION_ROLLBACKS: Instrument = instrument(
    "orgraph.intervention.rollbacks",
    Kind::Counter,
    "{intervention}",
    "Intervention rollbacks that changed the graph or failed for good, by kind and outcome.",
    &[INTERVENTION_KIND, INTERVENTION_OUTCOME],
);

// --- Process (semantic conventions) -------------------------------------------------------------

/// CPU time used.
pub const PROCESS_CPU_TIME: Instrument = instrument(
    semconv::PROCESS_CPU_TIME,
    Kind::Counter,
    "s",
    "Total CPU seconds used by the process, by mode.",
    &[CPU_MODE],
);
/// Resident memory.
pub const PROCESS_MEMORY_USAGE: Instrument = instrument(
    semconv::PROCESS_MEMORY_USAGE,
    Kind::UpDownCounter,
    "By",
    "Physical memory in use by the process (resident set size).",
    &[],
);
/// Virtual memory.
pub const PROCESS_MEMORY_VIRTUAL: Instrument = instrument(
    semconv::PROCESS_MEMORY_VIRTUAL,
    Kind::UpDownCounter,
    "By",
    "Virtual memory committed by the process.",
    &[],
);
/// Threads.
pub const PROCESS_THREAD_COUNT: Instrument = instrument(
    semconv::PROCESS_THREAD_COUNT,
    Kind::UpDownCounter,
    "{thread}",
    "Number of threads of the process.",
    &[],
);
/// Uptime.
pub const PROCESS_UPTIME: Instrument =
    instrument(semconv::PROCESS_UPTIME, Kind::Gauge, "s", "Time since the process started.", &[]);

// --- Span pipeline (semantic conventions: the SDK's self-observability) ----------------------

/// Finished spans handled by the span processor.
pub const OTEL_SDK_PROCESSOR_SPAN_PROCESSED: Instrument = instrument(
    semconv::OTEL_SDK_PROCESSOR_SPAN_PROCESSED,
    Kind::Counter,
    "{span}",
    "Finished spans the span processor handled: handed to the exporter, or dropped (error.type says why).",
    &[SPAN_PROCESSOR_TYPE, SPAN_DROP_REASON.only_when("the span was dropped, not exported")],
);
/// Spans the exporter sent, delivered or lost.
pub const OTEL_SDK_EXPORTER_SPAN_EXPORTED: Instrument = instrument(
    semconv::OTEL_SDK_EXPORTER_SPAN_EXPORTED,
    Kind::Counter,
    "{span}",
    "Spans the span exporter tried to send: delivered, or lost with a failed export (error.type says why).",
    &[SPAN_EXPORTER_TYPE, SPAN_EXPORT_ERROR.only_when("the export failed")],
);

/// Every instrument of the catalogue, in the order the docs list them.
pub const ALL: &[&Instrument] = &[
    &HTTP_SERVER_REQUEST_DURATION,
    &HTTP_SERVER_ACTIVE_REQUESTS,
    &HTTP_SERVER_REQUEST_BODY_SIZE,
    &HTTP_SERVER_RESPONSE_BODY_SIZE,
    &CACHE_REQUESTS,
    &CACHE_SIZE,
    &CACHE_ITEMS,
    &DB_CLIENT_CONNECTION_COUNT,
    &DB_CLIENT_CONNECTION_MAX,
    &DB_CLIENT_CONNECTION_PENDING_REQUESTS,
    &DB_CLIENT_CONNECTION_TIMEOUTS,
    &DB_CLIENT_CONNECTION_WAIT_TIME,
    &QUEUE_JOBS,
    &QUEUE_OLDEST_PENDING_AGE,
    &MESSAGING_CLIENT_SENT_MESSAGES,
    &MESSAGING_CLIENT_CONSUMED_MESSAGES,
    &CIRCUIT_BREAKER_STATE,
    &CIRCUIT_BREAKER_CALLS,
    &GRAPH_NODES,
    &GRAPH_EDGES,
    &GRAPH_UPDATE_DURATION,
    &WORKER_ACTIVE,
    &WORKER_CONCURRENCY,
    &TASK_COMPLETED,
    &TASK_DURATION,
    &EXPORT_REQUESTS,
    &EXPORT_DURATION,
    &EXPORT_SIZE,
    &EXPORT_SLOW_THRESHOLD,
    &EXPORT_RETENTION_REMOVED,
    &EXPORT_RETENTION_RUNS,
    &EXPORT_RETENTION_DURATION,
    &INTERVENTION_PROPOSALS,
    &INTERVENTION_EXECUTIONS,
    &INTERVENTION_ROLLBACKS,
    &PROCESS_CPU_TIME,
    &PROCESS_MEMORY_USAGE,
    &PROCESS_MEMORY_VIRTUAL,
    &PROCESS_THREAD_COUNT,
    &PROCESS_UPTIME,
    &OTEL_SDK_PROCESSOR_SPAN_PROCESSED,
    &OTEL_SDK_EXPORTER_SPAN_EXPORTED,
];
