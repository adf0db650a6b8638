//! Helpers for the otel crate's integration tests.
pub mod exposition;
