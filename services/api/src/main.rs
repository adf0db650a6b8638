//! The API binary: `--health-check`, or the service until SIGTERM or Ctrl-C (then it drains
//! requests and flushes telemetry); see `domain::service`.

use std::process::ExitCode;

fn main() -> ExitCode {
    domain::service::main(
        otel::service_info!(),
        || api::Config::from_env().map(|c| c.addr).map_err(|e| e.to_string()),
        serve,
    )
}

async fn serve() -> anyhow::Result<()> {
    let config = api::Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (API_ADDR): {e}", config.addr))?;
    api::run(config, listener, domain::shutdown::signal()).await
}
