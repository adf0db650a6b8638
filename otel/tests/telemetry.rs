//! `otel::init` and the `Telemetry` guard: start-up errors name their variable, the SDK switch
//! works, and shutdown is bounded even when the collector is unreachable and the caller sits on a
//! current-thread runtime (where a naive blocking flush deadlocks).

use opentelemetry::metrics::MeterProvider;
use otel::{Config, InitError, ShutdownError, Telemetry};
use std::sync::mpsc;
use std::time::Duration;

const SERVICE: otel::ServiceInfo = otel::service_info!();

fn config(vars: &[(&str, &str)]) -> Config {
    let vars: Vec<(String, String)> =
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_lookup(|k| vars.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()))
        .expect("valid config")
}

/// A loopback endpoint nobody listens on.
fn unreachable_endpoint() -> String {
    format!("http://127.0.0.1:{}", testkit::free_port())
}

/// Runs `f` on its own thread and fails the test if it has not returned after `deadline`
/// (a liveness check: the thing under test must not hang).
fn must_return<T: Send + 'static>(
    what: &str,
    deadline: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(deadline)
        .unwrap_or_else(|_| panic!("{what} did not return within {deadline:?}"))
}

#[test]
fn shutdown_on_a_current_thread_runtime_never_hangs() {
    for protocol in ["grpc", "http/protobuf"] {
        let endpoint = unreachable_endpoint();
        let result = must_return("shutdown", Duration::from_secs(60), move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let config = config(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                    ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
                    ("OTEL_METRIC_EXPORT_TIMEOUT", "2000"),
                ]);
                let telemetry = Telemetry::start(&config, SERVICE).expect("start");
                let provider = telemetry.meter_provider().expect("enabled").clone();
                provider.meter("test").u64_counter("test.counter").build().add(1, &[]);
                // Called on the only runtime thread, as a careless `main` would.
                telemetry.shutdown()
            })
        });
        // The collector is unreachable: the flush fails or runs out of time, but it returns.
        match result {
            Ok(()) => {}
            Err(ShutdownError::Failed(_)) | Err(ShutdownError::TimedOut(_)) => {}
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn async_shutdown_is_safe_on_a_current_thread_runtime() {
    let endpoint = unreachable_endpoint();
    let config = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "2000"),
    ]);
    let telemetry = Telemetry::start(&config, SERVICE).expect("start");
    let outcome = tokio::time::timeout(Duration::from_secs(60), telemetry.shutdown_async()).await;
    assert!(outcome.is_ok(), "shutdown_async hung");
}

#[test]
fn a_disabled_sdk_installs_no_provider() {
    let config = config(&[("OTEL_SDK_DISABLED", "true")]);
    let telemetry = Telemetry::start(&config, SERVICE).expect("start");
    assert!(telemetry.meter_provider().is_none());
    telemetry.shutdown().expect("nothing to flush");
}

#[test]
fn grpc_without_a_runtime_is_a_clear_error() {
    let config = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")]);
    let err = Telemetry::start(&config, SERVICE).err().expect("no runtime, no gRPC channel");
    assert!(matches!(err, InitError::NoRuntime), "{err}");
    assert!(err.to_string().contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_checks_the_log_filter_and_installs_the_subscriber_once() {
    let bad = config(&[("RUST_LOG", "info,[unclosed")]);
    let err = otel::init_with(bad, SERVICE).err().expect("bad RUST_LOG");
    assert!(err.to_string().starts_with("RUST_LOG="), "{err}");

    let good = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &unreachable_endpoint()),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "2000"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
    ]);
    let telemetry = otel::init_with(good.clone(), SERVICE).expect("first init");
    assert!(telemetry.meter_provider().is_some());
    let again = otel::init_with(good, SERVICE).err().expect("second init");
    assert!(matches!(again, InitError::Subscriber(_)), "{again}");
    telemetry.shutdown_async().await.ok();
}
