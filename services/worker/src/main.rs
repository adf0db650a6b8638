//! The worker binary: telemetry first (so every meter is real), then the queue workers and the
//! health listener, until SIGTERM or Ctrl-C; then in-flight jobs finish within the grace period
//! and telemetry is flushed. A bad setting exits non-zero with a one-line reason.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
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
    worker::run(config, listener, shutdown_signal()).await
}

/// SIGTERM (what compose and the native stack send) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutdown signal received");
}
