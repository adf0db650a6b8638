//! Typed recording helpers, one module per area the platform watches.
//!
//! Each helper builds its instruments from [`crate::catalogue`] and takes its attribute values as
//! the catalogue's label enums ([`crate::catalogue::Label`]), whose strings are its bounded sets,
//! so a service cannot record a name, a unit or an attribute value the catalogue does not know. Their counters can
//! be started at 0 for the label sets a service really has ([`start_counter_at_zero`]), so the
//! first event is visible.

mod breaker;
mod cache;
mod export;
mod graph;
mod http;
mod intervention;
mod pool;
mod process;
mod queue;
mod retention;
mod spans;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod worker;
mod zero;

pub use breaker::BreakerMetrics;
pub use cache::CacheMetrics;
pub use export::ExportMetrics;
pub use graph::GraphMetrics;
pub(crate) use http::normalize_method;
pub use http::{HttpServerMetrics, InFlightRequest, RequestOutcome};
pub use intervention::InterventionMetrics;
pub use pool::{PoolMetrics, PoolStats};
pub use process::ProcessMetrics;
pub use queue::{QueueMetrics, QueueStats};
pub use retention::RetentionMetrics;
pub use spans::SpanPipelineMetrics;
pub use worker::{ActiveTask, WorkerMetrics};
pub use zero::start_counter_at_zero;
