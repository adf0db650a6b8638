//! Instrumented building blocks the services put around their work, each recording only through
//! the catalogue helpers in [`crate::metrics`]:
//!
//! * [`http`]: the tower layer that records the HTTP server metrics of an axum router.
//! * [`breaker`]: a circuit breaker around a remote dependency (state and calls by outcome).
//! * [`cache`]: the bounded in-process (L1) cache (hits, misses, size in items and bytes).

pub mod breaker;
pub mod cache;
pub mod http;

pub use http::{HttpMetrics, HttpMetricsLayer};
