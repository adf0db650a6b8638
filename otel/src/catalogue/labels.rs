//! The bounded attributes services record through enums. Each [`label!`] declares one attribute
//! once: its key, its values and the enum that gives them, so the catalogue's `OneOf` set and the
//! enum's strings are one list and the type system keeps label values bounded.

use super::Attribute;
use opentelemetry::KeyValue;
use opentelemetry_semantic_conventions::attribute as semconv;

/// An enum whose values are the bounded values of one catalogue attribute.
pub trait Label: Copy + 'static {
    /// The catalogue attribute this enum gives values for.
    const ATTRIBUTE: Attribute;
    /// Every value, in catalogue order.
    const ALL: &'static [Self];
    /// The attribute value.
    fn as_str(self) -> &'static str;
    /// The value whose string is `text`, if there is one.
    fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == text)
    }
    /// The value as an OpenTelemetry attribute.
    fn key_value(self) -> KeyValue {
        KeyValue::new(Self::ATTRIBUTE.key, self.as_str())
    }
}

/// Declares the catalogue attribute `$attribute` (key `$key`, exactly the values listed) and the
/// enum `$name` whose variants are those values, in that order.
macro_rules! label {
    (
        $(#[$doc:meta])*
        $attribute:ident = $key:expr => $name:ident {
            $($(#[$vdoc:meta])* $variant:ident => $value:literal),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        pub const $attribute: Attribute = Attribute::one_of($key, &[$($value),+]);

        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* #[doc = concat!("The value `", $value, "`.")] $variant),+
        }

        impl Label for $name {
            const ATTRIBUTE: Attribute = $attribute;
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $value),+
                }
            }
        }
    };
}

label!(
    /// `url.scheme`.
    URL_SCHEME = semconv::URL_SCHEME => Scheme { Http => "http", Https => "https" }
);

label!(
    /// `db.client.connection.pool.name`: the connection pools of the services.
    DB_POOL_NAME = semconv::DB_CLIENT_CONNECTION_POOL_NAME => PoolName {
        Postgres => "postgres",
        Redis => "redis",
    }
);
label!(
    /// `db.client.connection.state`: a pooled connection's state.
    DB_CONNECTION_STATE = semconv::DB_CLIENT_CONNECTION_STATE => ConnectionState {
        Idle => "idle",
        Used => "used",
    }
);

label!(
    /// `cache.layer`: which cache layer answered.
    CACHE_LAYER = "cache.layer" => CacheLayer {
        /// The in-process cache.
        L1 => "l1",
        /// The shared Redis cache.
        L2 => "l2",
    }
);
label!(
    /// `cache.name`: one name per cached kind of data.
    CACHE_NAME = "cache.name" => CacheName {
        /// Graph statistics.
        GraphStats => "graph_stats",
        /// Pages of the node list.
        GraphNodes => "graph_nodes",
        /// Status of analysis and export jobs.
        JobStatus => "job_status",
    }
);
label!(
    /// `cache.result`: whether a cache look-up found the entry.
    CACHE_RESULT = "cache.result" => CacheResult { Hit => "hit", Miss => "miss" }
);

label!(
    /// `messaging.destination.name`: the job queue, one per job family. Never a Rust type path.
    QUEUE = semconv::MESSAGING_DESTINATION_NAME => Queue {
        /// Causal-analysis jobs.
        Analysis => "analysis",
        /// Export jobs.
        Export => "export",
        /// Intervention execute and rollback jobs.
        Intervention => "intervention",
    }
);
label!(
    /// `job.state`: the states a queued job is counted in.
    JOB_STATE = "job.state" => JobState {
        Pending => "pending",
        Running => "running",
        Failed => "failed",
    }
);

label!(
    /// `circuit_breaker.name`: one breaker per remote dependency.
    BREAKER_NAME = "circuit_breaker.name" => BreakerName {
        Postgres => "postgres",
        Redis => "redis",
    }
);
label!(
    /// `circuit_breaker.state`.
    BREAKER_STATE = "circuit_breaker.state" => BreakerState {
        Closed => "closed",
        Open => "open",
        HalfOpen => "half_open",
    }
);
label!(
    /// `circuit_breaker.outcome`: what became of a call through the breaker.
    BREAKER_OUTCOME = "circuit_breaker.outcome" => BreakerOutcome {
        /// The call succeeded.
        Success => "success",
        /// The call failed (and counts towards opening the breaker).
        Failure => "failure",
        /// The breaker was open and refused the call.
        Rejected => "rejected",
    }
);

label!(
    /// `graph.operation`: the graph changes that are timed.
    GRAPH_OPERATION = "graph.operation" => GraphOperation {
        /// A node was added.
        AddNode => "add_node",
        /// A node was deleted.
        DeleteNode => "delete_node",
        /// An edge was added.
        AddEdge => "add_edge",
        /// An edge was deleted.
        DeleteEdge => "delete_edge",
        /// A generated org graph replaced the graph.
        Seed => "seed",
        /// An intervention was applied.
        InterventionExecute => "intervention_execute",
        /// An intervention was reverted.
        InterventionRollback => "intervention_rollback",
    }
);

label!(
    /// `task.type`: the kinds of job the worker runs. The same strings are the `jobs.kind` column
    /// (`domain::JobKind` is this enum).
    TASK_TYPE = "task.type" => TaskType {
        /// Causal analysis of the org graph.
        Analysis => "analysis",
        /// An export of employee metrics.
        Export => "export",
        /// Applying an intervention.
        InterventionExecute => "intervention_execute",
        /// Reverting an intervention.
        InterventionRollback => "intervention_rollback",
    }
);

impl TaskType {
    /// The queue a task of this type is taken from: one queue per job family.
    pub fn queue(self) -> Queue {
        match self {
            TaskType::Analysis => Queue::Analysis,
            TaskType::Export => Queue::Export,
            TaskType::InterventionExecute | TaskType::InterventionRollback => Queue::Intervention,
        }
    }
}

label!(
    /// `task.status`: how one attempt of a task ended.
    TASK_STATUS = "task.status" => TaskStatus {
        /// The attempt finished the job.
        Success => "success",
        /// The attempt failed and the job ends failed.
        Failure => "failure",
        /// The attempt failed transiently; the job is tried again.
        Retry => "retry",
        /// The attempt ran into its queue's timeout and was cancelled.
        Timeout => "timeout",
        /// The attempt panicked; the runner caught it and ended the job.
        Panic => "panic",
    }
);

label!(
    /// `export.kind`: what an export contains.
    EXPORT_KIND = "export.kind" => ExportKind { EmployeeMetrics => "employee_metrics" }
);
label!(
    /// `export.format`: an export's file format.
    EXPORT_FORMAT = "export.format" => ExportFormat { Csv => "csv", Jsonl => "jsonl" }
);
label!(
    /// `export.status`: how one export attempt ended.
    EXPORT_STATUS = "export.status" => ExportStatus {
        /// The file was written.
        Success => "success",
        /// The export failed (the database, the file system, or a panic).
        Failure => "failure",
        /// The worker cancelled it at `TIMEOUT_EXPORT_MS`.
        Timeout => "timeout",
    }
);

label!(
    /// `export.retention.reason`: why the worker's retention pass removed an export file.
    EXPORT_RETENTION_REASON = "export.retention.reason" => RetentionReason {
        /// Its export finished longer ago than `EXPORT_RETENTION_MAX_AGE_MS`.
        Age => "age",
        /// More than `EXPORT_RETENTION_MAX_FILES` finished exports had files; it was among the
        /// oldest.
        Count => "count",
    }
);
label!(
    /// `export.retention.outcome`: how one retention pass over the export files ended.
    EXPORT_RETENTION_OUTCOME = "export.retention.outcome" => RetentionOutcome {
        /// Every file due for removal was removed.
        Success => "success",
        /// The directory or the job rows could not be read, or a file could not be removed (it
        /// is tried again by the next pass).
        Failure => "failure",
    }
);

label!(
    /// `intervention.kind`: the planned graph changes the platform knows.
    INTERVENTION_KIND = "intervention.kind" => InterventionKind { Reassign => "reassign" }
);
label!(
    /// `intervention.outcome`: how an intervention execution or rollback ended.
    INTERVENTION_OUTCOME = "intervention.outcome" => InterventionOutcome {
        Success => "success",
        Failure => "failure",
    }
);

label!(
    /// `cpu.mode` of process CPU time.
    CPU_MODE = semconv::CPU_MODE => CpuMode { User => "user", System => "system" }
);

label!(
    /// `otel.component.type` of the span processor: the SDK's batching processor.
    SPAN_PROCESSOR_TYPE = semconv::OTEL_COMPONENT_TYPE => SpanProcessorType {
        Batching => "batching_span_processor",
    }
);
label!(
    /// `error.type` of a finished span the processor dropped instead of queueing it for export.
    SPAN_DROP_REASON = semconv::ERROR_TYPE => SpanDropReason {
        /// The export queue (`OTEL_BSP_MAX_QUEUE_SIZE`) was full.
        QueueFull => "queue_full",
        /// The tracer provider had been shut down.
        AlreadyShutdown => "already_shutdown",
    }
);
label!(
    /// `otel.component.type` of the span exporter: OTLP over the configured protocol.
    SPAN_EXPORTER_TYPE = semconv::OTEL_COMPONENT_TYPE => SpanExporterType {
        OtlpGrpc => "otlp_grpc_span_exporter",
        OtlpHttp => "otlp_http_span_exporter",
    }
);
label!(
    /// `error.type` of spans lost with a failed export.
    SPAN_EXPORT_ERROR = semconv::ERROR_TYPE => SpanExportError {
        /// The export did not finish within its timeout.
        Timeout => "timeout",
        /// The exporter had been shut down.
        AlreadyShutdown => "already_shutdown",
        /// Any other failure (collector unreachable, request rejected).
        Other => "_OTHER",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_back_to_themselves() {
        for task in TaskType::ALL {
            assert_eq!(TaskType::parse(task.as_str()), Some(*task));
        }
        assert_eq!(TaskType::parse("nope"), None);
    }
}
