//! The life of a service binary, the same for the API and the worker: `--health-check` answers
//! the container's probe and exits; otherwise telemetry first (so every meter is real), then the
//! service until it returns (on SIGTERM or Ctrl-C), then telemetry is flushed. A bad setting or a
//! failure exits non-zero with a one-line reason.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

/// Runs the binary of service `info.name`: `health_addr` says where its health endpoint listens
/// (read from its config), `serve` is the service itself.
pub fn main<F: Future<Output = anyhow::Result<()>>>(
    info: otel::ServiceInfo,
    health_addr: impl FnOnce() -> Result<SocketAddr, String>,
    serve: impl FnOnce() -> F,
) -> ExitCode {
    let name = info.name;
    if std::env::args_os().nth(1).is_some_and(|arg| arg == "--health-check") {
        // Before telemetry and the runtime: the health check is a short-lived probe.
        return crate::health_check::run(name, health_addr());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let telemetry = match otel::init(info) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::from(2);
            }
        };
        let code = match serve().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "{name} stopped");
                eprintln!("{name}: {e:#}");
                ExitCode::FAILURE
            }
        };
        if let Err(e) = telemetry.shutdown_async().await {
            eprintln!("{name}: {e}");
        }
        code
    })
}
