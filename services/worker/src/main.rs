//! The worker binary: telemetry first (so every meter is real), then the queue workers and the
//! health listener, until SIGTERM or Ctrl-C; then in-flight jobs finish within the grace period
//! and telemetry is flushed. A bad setting exits non-zero with a one-line reason.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before telemetry and the runtime: the health check is a short-lived probe, not a service.
    if std::env::args_os().nth(1).is_some_and(|arg| arg == "--health-check") {
        return domain::health_check::run(
            "worker",
            worker::Config::from_env().map(|c| c.health_addr).map_err(|e| e.to_string()),
        );
    }
    serve_until_stopped()
}

#[tokio::main]
async fn serve_until_stopped() -> ExitCode {
    let telemetry = match otel::init(otel::service_info!()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("worker: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "worker stopped");
            eprintln!("worker: {e:#}");
            ExitCode::FAILURE
        }
    };
    if let Err(e) = telemetry.shutdown_async().await {
        eprintln!("worker: {e}");
    }
    code
}

async fn serve() -> anyhow::Result<()> {
    let config = worker::Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.health_addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {} (WORKER_HEALTH_ADDR): {e}", config.health_addr)
    })?;
    worker::run(config, listener, domain::shutdown::signal()).await
}
