//! `otel`: everything a service of the org-graph platform needs to emit metrics (and, when
//! switched on, traces) through OpenTelemetry.
//!
//! * [`init`] reads the standard `OTEL_*` variables ([`config`], through [`settings`], the one
//!   environment reader of every service), builds the resource, the meter provider with its OTLP
//!   exporter and the `tracing` subscriber, and installs them globally. It returns a
//!   [`Telemetry`] guard whose shutdown flushes within a bounded time.
//! * [`catalogue`] declares every instrument once: name, kind, unit, description, attributes and
//!   bucket boundaries, and derives from it the exact Prometheus series the collector will emit.
//! * [`metrics`] holds the typed recording helpers services use; they build their instruments
//!   only from the catalogue, so no name or unit is ever written twice.
//! * [`layers`] holds the tower layer that records an axum router's HTTP server metrics.
//! * [`trace`] holds the tracer and the span helpers services use directly.

pub mod catalogue;
pub mod config;
mod init;
pub mod layers;
pub mod metrics;
mod resource;
pub mod settings;
pub mod trace;

pub use config::{Config, ConfigError, LogFormat, Protocol, TracesExporter};
pub use init::{InitError, ShutdownError, Telemetry, init, init_with, meter_provider};
pub use resource::{DEFAULT_ENVIRONMENT, DEFAULT_NAMESPACE, ServiceInfo, build_resource};
pub use settings::FromEnv;

/// Name of the instrumentation scope all catalogue instruments are created under. It becomes the
/// `otel_scope_name` label of every series.
pub const METER_NAME: &str = "orgraph";

/// The meter every service records through: the global provider's meter for [`METER_NAME`],
/// versioned with this crate. Call it after [`init`]: a meter taken before the global provider is
/// set stays a no-op forever.
pub fn meter() -> opentelemetry::metrics::Meter {
    opentelemetry::global::meter_with_scope(scope())
}

/// The instrumentation scope of [`meter`], also used by tests that build their own provider.
pub fn scope() -> opentelemetry::InstrumentationScope {
    opentelemetry::InstrumentationScope::builder(METER_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}
