//! Tower layers that instrument a service, recording only through the catalogue helpers in
//! [`crate::metrics`]: [`http`], the layer that records the HTTP server metrics of an axum router
//! and makes its server spans (`http_span`).

pub mod http;
mod http_span;

pub use http::{HttpMetrics, HttpMetricsLayer};
