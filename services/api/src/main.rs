//! The API binary: `--health-check`, or the service until SIGTERM or Ctrl-C (then it drains
//! requests and flushes telemetry); see `servicekit`.

use std::process::ExitCode;

fn main() -> ExitCode {
    servicekit::main(otel::service_info!(), serve)
}

async fn serve(config: api::Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (API_ADDR): {e}", config.addr))?;
    api::run(config, listener, servicekit::shutdown::signal()).await
}
