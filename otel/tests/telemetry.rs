//! `otel::init` and the `Telemetry` guard: start-up errors name their variable, the SDK switch
//! works, and shutdown is bounded even when the collector is unreachable and the caller sits on a
//! current-thread runtime (where a naive blocking flush deadlocks).

use opentelemetry::metrics::MeterProvider;
use otel::FromEnv;
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

/// An OTLP/HTTP receiver that answers every request with a 200 after `delay`; returns its
/// endpoint and a channel that gets the length of each request body it answered.
fn slow_receiver(delay: Duration) -> (String, mpsc::Receiver<usize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    std::thread::sleep(delay);
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\n\
                                  content-length: 0\r\n\r\n";
                    let _ = reader.get_mut().write_all(answer.as_bytes());
                    let _ = tx.send(length);
                }
            });
        }
    });
    (endpoint, rx)
}

#[test]
fn the_final_flush_gets_the_exports_timeout_not_the_sdks_5_seconds() {
    // The collector takes 6 s to answer: beyond the SDK's own shutdown cap, within the
    // configured export timeout (8 s).
    let (endpoint, answered) = slow_receiver(Duration::from_secs(6));
    let config = config(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "8000"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "8000"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "600000"),
    ]);
    assert_eq!(Telemetry::flush_bound(&config), Duration::from_secs(9));
    let telemetry = Telemetry::start(&config, SERVICE).expect("start");
    let provider = telemetry.meter_provider().expect("enabled").clone();
    provider.meter("test").u64_counter("test.counter").build().add(1, &[]);
    let result = must_return("shutdown", Duration::from_secs(30), move || telemetry.shutdown());
    assert!(result.is_ok(), "the flush should land within the export timeout: {result:?}");
    let body = answered.try_recv().expect("the receiver answered the final export");
    assert!(body > 0, "the final export carried the counter");
}
