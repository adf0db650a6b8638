//! Tower layers that instrument a service, recording only through the catalogue helpers in
//! [`crate::metrics`]: [`http`], the layer that records the HTTP server metrics of an axum router.

pub mod http;

pub use http::{HttpMetrics, HttpMetricsLayer};
