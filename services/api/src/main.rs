//! The API binary: telemetry first (so every meter is real), then the service, until SIGTERM or
//! Ctrl-C; then it drains requests and flushes telemetry. A bad setting exits non-zero with a
//! one-line reason.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let telemetry = match otel::init(otel::service_info!()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("api: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "api stopped");
            eprintln!("api: {e:#}");
            ExitCode::FAILURE
        }
    };
    if let Err(e) = telemetry.shutdown_async().await {
        eprintln!("api: {e}");
    }
    code
}

async fn serve() -> anyhow::Result<()> {
    let config = api::Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (API_ADDR): {e}", config.addr))?;
    api::run(config, listener, shutdown_signal()).await
}

/// SIGTERM (what compose and the native stack send) or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutdown signal received; draining");
}
