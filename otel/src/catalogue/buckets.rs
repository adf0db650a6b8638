//! Histogram bucket boundaries, one set per kind of measurement.
//!
//! Every histogram gets explicit boundaries: the Rust SDK's defaults are millisecond-scale
//! (0…10000) and would put every seconds-valued request into the first bucket. Boundaries that
//! alerts and SLOs compare against (0.5 s, 2 s, 300 s) are included, so those thresholds are exact.

/// HTTP server durations (s): the semantic-conventions advice, plus 2 s for the P95 alert.
pub const HTTP_DURATION_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 2.5, 5.0, 7.5, 10.0];

/// Message and file sizes (By), 100 B to 1 GB.
pub const SIZE_BUCKETS: &[f64] = &[
    100.0,
    1_000.0,
    10_000.0,
    100_000.0,
    1_000_000.0,
    10_000_000.0,
    100_000_000.0,
    1_000_000_000.0,
];

/// Waiting for a pooled connection (s), 0.5 ms to 10 s.
pub const POOL_WAIT_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Graph updates (s), 1 ms to 30 s (a large seed is the slow end).
pub const GRAPH_UPDATE_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Background tasks and exports (s), 10 ms to 10 min.
pub const TASK_DURATION_BUCKETS: &[f64] =
    &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// Maintenance passes (s), 1 ms to 60 s: listing a directory, one query, a few removals.
pub const MAINTENANCE_DURATION_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
