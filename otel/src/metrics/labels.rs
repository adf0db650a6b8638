//! The bounded attribute values, as enums. Each enum's strings are exactly the `OneOf` set of its
//! catalogue attribute (a test checks every pair), so the type system keeps label values bounded.

use crate::catalogue::{self, Attribute};
use opentelemetry::KeyValue;

/// An enum whose values are the bounded values of one catalogue attribute.
pub trait Label: Copy + 'static {
    /// The catalogue attribute this enum gives values for.
    const ATTRIBUTE: Attribute;
    /// Every value, in catalogue order.
    const ALL: &'static [Self];
    /// The attribute value.
    fn as_str(self) -> &'static str;
    /// The value as an OpenTelemetry attribute.
    fn key_value(self) -> KeyValue {
        KeyValue::new(Self::ATTRIBUTE.key, self.as_str())
    }
}

macro_rules! label {
    ($(#[$doc:meta])* $name:ident for $attribute:path { $($(#[$vdoc:meta])* $variant:ident => $value:literal),+ $(,)? }) => {
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
    Scheme for catalogue::URL_SCHEME { Http => "http", Https => "https" }
);
label!(
    /// Which cache layer answered.
    CacheLayer for catalogue::CACHE_LAYER {
        /// The in-process cache.
        L1 => "l1",
        /// The shared Redis cache.
        L2 => "l2",
    }
);
label!(
    /// Which cache.
    CacheName for catalogue::CACHE_NAME {
        /// Graph statistics.
        GraphStats => "graph_stats",
        /// Pages of the node list.
        GraphNodes => "graph_nodes",
        /// Status of analysis and export jobs.
        JobStatus => "job_status",
    }
);
label!(
    /// Whether a cache look-up found the entry.
    CacheResult for catalogue::CACHE_RESULT { Hit => "hit", Miss => "miss" }
);
label!(
    /// A connection pool.
    PoolName for catalogue::DB_POOL_NAME { Postgres => "postgres", Redis => "redis" }
);
label!(
    /// A pooled connection's state.
    ConnectionState for catalogue::DB_CONNECTION_STATE { Idle => "idle", Used => "used" }
);
label!(
    /// A job queue.
    Queue for catalogue::QUEUE {
        /// Causal-analysis jobs.
        Analysis => "analysis",
        /// Export jobs.
        Export => "export",
        /// Intervention execute and rollback jobs.
        Intervention => "intervention",
    }
);
label!(
    /// The state a queued job is counted in.
    JobState for catalogue::JOB_STATE { Pending => "pending", Running => "running", Failed => "failed" }
);
label!(
    /// A circuit breaker, one per remote dependency.
    BreakerName for catalogue::BREAKER_NAME { Postgres => "postgres", Redis => "redis" }
);
label!(
    /// A circuit breaker's state.
    BreakerState for catalogue::BREAKER_STATE { Closed => "closed", Open => "open", HalfOpen => "half_open" }
);
label!(
    /// What became of a call through a breaker.
    BreakerOutcome for catalogue::BREAKER_OUTCOME {
        /// The call succeeded.
        Success => "success",
        /// The call failed (and counts towards opening the breaker).
        Failure => "failure",
        /// The breaker was open and refused the call.
        Rejected => "rejected",
    }
);
label!(
    /// A timed graph change.
    GraphOperation for catalogue::GRAPH_OPERATION {
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
    /// A kind of task the worker runs.
    TaskType for catalogue::TASK_TYPE {
        /// Causal analysis.
        Analysis => "analysis",
        /// An export.
        Export => "export",
        /// Executing an intervention.
        InterventionExecute => "intervention_execute",
        /// Rolling an intervention back.
        InterventionRollback => "intervention_rollback",
    }
);
label!(
    /// How one task attempt ended.
    TaskStatus for catalogue::TASK_STATUS {
        /// Done.
        Success => "success",
        /// Failed for good.
        Failure => "failure",
        /// Failed, will be tried again.
        Retry => "retry",
        /// Ran out of time.
        Timeout => "timeout",
        /// Panicked (caught).
        Panic => "panic",
    }
);
label!(
    /// What an export contains.
    ExportKind for catalogue::EXPORT_KIND { EmployeeMetrics => "employee_metrics" }
);
label!(
    /// An export's file format.
    ExportFormat for catalogue::EXPORT_FORMAT { Csv => "csv", Jsonl => "jsonl" }
);
label!(
    /// How an export attempt ended.
    ExportStatus for catalogue::EXPORT_STATUS {
        /// The file was written.
        Success => "success",
        /// The export failed (the database, the file system, or a panic).
        Failure => "failure",
        /// The worker cancelled it at `TIMEOUT_EXPORT_MS`.
        Timeout => "timeout",
    }
);
label!(
    /// A kind of intervention.
    InterventionKind for catalogue::INTERVENTION_KIND { Reassign => "reassign" }
);
label!(
    /// How an intervention execution or rollback ended.
    InterventionOutcome for catalogue::INTERVENTION_OUTCOME { Success => "success", Failure => "failure" }
);
label!(
    /// CPU mode of process CPU time.
    CpuMode for catalogue::CPU_MODE { User => "user", System => "system" }
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Values;

    fn check<L: Label>() {
        let Values::OneOf(declared) = L::ATTRIBUTE.values else {
            panic!("{} is not a closed set", L::ATTRIBUTE.key);
        };
        let ours: Vec<&str> = L::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(ours, declared, "enum for {} differs from the catalogue", L::ATTRIBUTE.key);
    }

    #[test]
    fn every_label_enum_matches_its_catalogue_attribute() {
        check::<Scheme>();
        check::<CacheLayer>();
        check::<CacheName>();
        check::<CacheResult>();
        check::<PoolName>();
        check::<ConnectionState>();
        check::<Queue>();
        check::<JobState>();
        check::<BreakerName>();
        check::<BreakerState>();
        check::<BreakerOutcome>();
        check::<GraphOperation>();
        check::<TaskType>();
        check::<TaskStatus>();
        check::<ExportKind>();
        check::<ExportFormat>();
        check::<ExportStatus>();
        check::<InterventionKind>();
        check::<InterventionOutcome>();
        check::<CpuMode>();
    }
}
