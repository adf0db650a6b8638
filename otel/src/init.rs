//! The one call a service makes at start-up: [`init`] installs the meter provider (OTLP,
//! cumulative, periodic), the W3C trace-context propagator, the tracer provider when traces are
//! switched on (sampler and bounded span queue from the environment, see [`crate::trace`]), the
//! `tracing` subscriber (logs, see [`crate::subscriber`]) and the process metrics, and hands back
//! a [`Telemetry`] guard that flushes on shutdown.
//!
//! The global providers are set before `init` returns, so every meter taken afterwards is real;
//! a meter taken before stays a no-op forever (the SDK caches nothing for it to upgrade).

use crate::catalogue::SpanExporterType;
use crate::config::{Config, ConfigError, Protocol, TracesExporter};
use crate::metrics::ProcessMetrics;
use crate::metrics::SpanPipelineMetrics;
use crate::resource::{ServiceInfo, build_resource};
use crate::settings::FromEnv;
use crate::trace::pipeline::CountingProcessor;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::mpsc;
use std::time::Duration;
use tracing_subscriber::util::SubscriberInitExt;

/// Why telemetry could not be set up. The service should print it and exit non-zero.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// An `OTEL_*` (or `RUST_LOG`/`LOG_FORMAT`) variable is malformed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP {signal} exporter for {endpoint}: {reason}")]
    Exporter {
        /// `metrics` or `traces`.
        signal: &'static str,
        /// The endpoint it was built for.
        endpoint: String,
        /// What the OpenTelemetry SDK said went wrong.
        reason: String,
    },
    /// `RUST_LOG` is not a valid filter.
    #[error("RUST_LOG={value:?} is invalid: {reason}")]
    LogFilter {
        /// The variable's value.
        value: String,
        /// What `tracing-subscriber`'s filter parser said is wrong with it.
        reason: String,
    },
    /// The gRPC exporter needs a Tokio runtime to build its channel on.
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs a Tokio runtime: call otel::init inside one")]
    NoRuntime,
    /// A global `tracing` subscriber was already installed.
    #[error("a tracing subscriber is already installed: {0}")]
    Subscriber(String),
}

/// Shutdown did not complete cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// The final flush took longer than its bound; what it held may be lost.
    #[error("telemetry shutdown did not finish within {0:?}")]
    TimedOut(Duration),
    /// A provider reported an error while flushing.
    #[error("telemetry shutdown failed: {0}")]
    Failed(String),
}

/// Keeps telemetry running; [`Telemetry::shutdown`] (or drop) flushes what is buffered, within
/// [`Telemetry::flush_bound`].
pub struct Telemetry {
    meter_provider: Option<SdkMeterProvider>,
    tracer_provider: Option<SdkTracerProvider>,
    shutdown_timeout: Duration,
    process: Option<ProcessMetrics>,
}

/// Reads the configuration from the environment and sets telemetry up; see [`init_with`].
pub fn init(service: ServiceInfo) -> Result<Telemetry, InitError> {
    init_with(Config::from_env()?, service)
}

/// Sets telemetry up from `config`: the resource, the global meter provider (unless
/// `OTEL_SDK_DISABLED=true`) with process metrics, the tracer provider when
/// `OTEL_TRACES_EXPORTER=otlp`, and the global `tracing` subscriber. With the gRPC protocol it
/// must run inside a Tokio runtime.
pub fn init_with(config: Config, service: ServiceInfo) -> Result<Telemetry, InitError> {
    // Checked (RUST_LOG) before anything is built.
    let subscriber = |sql_spans| {
        crate::subscriber::build(&config.log_filter, config.log_format, sql_spans, std::io::stdout)
    };
    subscriber(false)?;
    // Globals are installed only once the subscriber is: a failed init leaves no trace behind.
    let mut telemetry = Telemetry::build(&config, service)?;
    let sql_spans = telemetry.tracer_provider.is_some();
    subscriber(sql_spans)?.try_init().map_err(|e| InitError::Subscriber(e.to_string()))?;
    telemetry.install_globals();
    tracing::info!(
        service = service.name,
        version = service.version,
        metrics = telemetry.meter_provider.is_some(),
        traces = telemetry.tracer_provider.is_some(),
        sampler = ?config.sampler,
        endpoint = %crate::config::without_credentials(&config.endpoint),
        protocol = ?config.protocol,
        export_interval_ms = config.export_interval.as_millis() as u64,
        "telemetry initialised"
    );
    Ok(telemetry)
}

/// The bound of one metric export: it must end before the next is due and within
/// `OTEL_METRIC_EXPORT_TIMEOUT`.
fn export_timeout(config: &Config) -> Duration {
    config.otlp_timeout.min(config.export_timeout)
}

/// A meter provider exporting to the configured OTLP endpoint every `OTEL_METRIC_EXPORT_INTERVAL`,
/// with cumulative temporality (the collector's `prometheus` exporter drops or mangles delta
/// histograms, and cumulative sums lose nothing while the collector is away). Not installed
/// globally: [`init_with`] does that; tests use it to build private providers.
pub fn meter_provider(config: &Config, resource: Resource) -> Result<SdkMeterProvider, InitError> {
    let endpoint = config.signal_endpoint("/v1/metrics");
    let timeout = export_timeout(config);
    let builder = MetricExporter::builder().with_temporality(Temporality::Cumulative);
    let exporter = match config.protocol {
        Protocol::Grpc => {
            ensure_runtime()?;
            builder.with_tonic().with_endpoint(&endpoint).with_timeout(timeout).build()
        }
        Protocol::HttpProtobuf => builder
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(&endpoint)
            .with_timeout(timeout)
            .build(),
    }
    .map_err(|e| InitError::Exporter {
        signal: "metrics",
        endpoint: crate::config::without_credentials(&endpoint),
        reason: e.to_string(),
    })?;
    let reader = PeriodicReader::builder(exporter).with_interval(config.export_interval).build();
    Ok(SdkMeterProvider::builder().with_resource(resource).with_reader(reader).build())
}

/// The tracer provider: the configured sampler, and an OTLP exporter behind the bounded,
/// counting batch processor ([`CountingProcessor`]) whose lost spans are counted on `meter`.
fn tracer_provider(
    config: &Config,
    resource: Resource,
    meter: &opentelemetry::metrics::Meter,
) -> Result<SdkTracerProvider, InitError> {
    let endpoint = config.signal_endpoint("/v1/traces");
    let timeout = config.otlp_timeout.min(config.span_batch.export_timeout);
    let (exporter, kind) = match config.protocol {
        Protocol::Grpc => {
            ensure_runtime()?;
            let exporter = SpanExporter::builder()
                .with_tonic()
                .with_endpoint(&endpoint)
                .with_timeout(timeout)
                .build();
            (exporter, SpanExporterType::OtlpGrpc)
        }
        Protocol::HttpProtobuf => {
            let exporter = SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(&endpoint)
                .with_timeout(timeout)
                .build();
            (exporter, SpanExporterType::OtlpHttp)
        }
    };
    let exporter = exporter.map_err(|e| InitError::Exporter {
        signal: "traces",
        endpoint: crate::config::without_credentials(&endpoint),
        reason: e.to_string(),
    })?;
    let metrics = SpanPipelineMetrics::new(meter, kind);
    Ok(SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(config.sampler.sdk())
        .with_span_processor(CountingProcessor::new(exporter, &config.span_batch, metrics))
        .build())
}

fn ensure_runtime() -> Result<(), InitError> {
    tokio::runtime::Handle::try_current().map(|_| ()).map_err(|_| InitError::NoRuntime)
}

impl Telemetry {
    /// The providers without the `tracing` subscriber: builds the resource, installs the global
    /// meter provider (unless the SDK is disabled) with the process metrics, and the global
    /// tracer provider when traces are on. [`init_with`] calls it; tests call it directly, as the
    /// subscriber can be installed only once per process.
    pub fn start(config: &Config, service: ServiceInfo) -> Result<Telemetry, InitError> {
        let mut telemetry = Telemetry::build(config, service)?;
        telemetry.install_globals();
        Ok(telemetry)
    }

    fn build(config: &Config, service: ServiceInfo) -> Result<Telemetry, InitError> {
        let enabled = !config.sdk_disabled;
        let resource = build_resource(config, &service);
        let meter_provider =
            enabled.then(|| meter_provider(config, resource.clone())).transpose()?;
        let tracer_provider = match &meter_provider {
            Some(meters) if config.traces == TracesExporter::Otlp => {
                Some(tracer_provider(config, resource, &meters.meter_with_scope(crate::scope()))?)
            }
            _ => None,
        };
        Ok(Telemetry {
            meter_provider,
            tracer_provider,
            shutdown_timeout: Telemetry::flush_bound(config),
            process: None,
        })
    }

    /// Makes the propagator and the providers global, switches span making on when traces are,
    /// and starts the process metrics on the global meter.
    fn install_globals(&mut self) {
        // Always, traces on or off: code that reads or writes `traceparent` never has to ask.
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        if let Some(provider) = &self.tracer_provider {
            opentelemetry::global::set_tracer_provider(provider.clone());
            crate::trace::set_enabled(true);
        }
        if let Some(provider) = &self.meter_provider {
            opentelemetry::global::set_meter_provider(provider.clone());
            self.process = Some(ProcessMetrics::new(&crate::meter()));
        }
    }

    /// The installed meter provider; `None` when the SDK is disabled.
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.meter_provider.as_ref()
    }

    /// How long the final flush may take: one export (its timeout, the lesser of
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` and `OTEL_METRIC_EXPORT_TIMEOUT`: 10 s by default) and 1 s
    /// more, so the exporter's own timeout ends a hung export first and says why. A service's
    /// stop grace period must hold its drain and this.
    pub fn flush_bound(config: &Config) -> Duration {
        export_timeout(config) + Duration::from_secs(1)
    }

    /// Flushes and stops the providers, giving up after [`Telemetry::flush_bound`]. Never
    /// hangs: the flush runs on a thread of its own and is abandoned at the deadline.
    ///
    /// With the gRPC exporter the flush needs the Tokio runtime to make progress, so on a
    /// current-thread runtime call [`Telemetry::shutdown_async`] instead: blocking the only
    /// runtime thread here would leave the flush nothing to run on until the deadline.
    pub fn shutdown(mut self) -> Result<(), ShutdownError> {
        self.shutdown_now()
    }

    /// [`Telemetry::shutdown`] from async code, on the blocking pool so the runtime keeps
    /// driving the exporter's I/O (safe on current-thread runtimes).
    pub async fn shutdown_async(self) -> Result<(), ShutdownError> {
        let timeout = self.shutdown_timeout;
        tokio::task::spawn_blocking(move || self.shutdown())
            .await
            .unwrap_or(Err(ShutdownError::TimedOut(timeout)))
    }

    fn shutdown_now(&mut self) -> Result<(), ShutdownError> {
        let meters = self.meter_provider.take();
        let tracers = self.tracer_provider.take();
        if tracers.is_some() {
            crate::trace::set_enabled(false);
        }
        if meters.is_none() && tracers.is_none() {
            return Ok(());
        }
        let (done, wait) = mpsc::channel();
        let spawned = std::thread::Builder::new().name("otel-shutdown".into()).spawn(move || {
            let mut errors = Vec::new();
            // Metrics first: they are what the bound is for. Traces (off by default) get what is
            // left of it.
            if let Some(p) = meters {
                // The SDK's shutdown (0.33) caps its export at a hard-coded 5 s, whatever the
                // exporter's timeout: flush first, bounded only by the exporter. The shutdown
                // then has nothing new to send; it runs on without being waited for.
                errors.extend(p.force_flush().err().map(|e| format!("metrics: {e}")));
                let _ = std::thread::Builder::new()
                    .name("otel-meter-shutdown".into())
                    .spawn(move || p.shutdown());
            }
            if let Some(p) = tracers {
                errors.extend(p.shutdown().err().map(|e| format!("traces: {e}")));
            }
            // The receiver may have given up; nothing to do then.
            let _ = done.send(errors);
        });
        if let Err(e) = spawned {
            return Err(ShutdownError::Failed(format!("cannot spawn the shutdown thread: {e}")));
        }
        match wait.recv_timeout(self.shutdown_timeout) {
            Ok(errors) if errors.is_empty() => Ok(()),
            Ok(errors) => Err(ShutdownError::Failed(errors.join("; "))),
            Err(_) => Err(ShutdownError::TimedOut(self.shutdown_timeout)),
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown_now() {
            tracing::warn!(error = %e, "telemetry shutdown on drop");
        }
    }
}
