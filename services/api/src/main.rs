//! The API binary: telemetry first (so every meter is real), then the service, until SIGTERM or
//! Ctrl-C; then it drains requests and flushes telemetry. A bad setting exits non-zero with a
//! one-line reason.

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before telemetry and the runtime: the health check is a short-lived probe, not a service.
    if std::env::args_os().nth(1).is_some_and(|arg| arg == "--health-check") {
        return domain::health_check::run(
            "api",
            api::Config::from_env().map(|c| c.addr).map_err(|e| e.to_string()),
        );
    }
    serve_until_stopped()
}

#[tokio::main]
async fn serve_until_stopped() -> ExitCode {
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
    api::run(config, listener, domain::shutdown::signal()).await
}
