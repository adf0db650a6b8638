//! The worker binary: `--health-check`, or the queue workers and the health listener until
//! SIGTERM or Ctrl-C (then in-flight jobs finish within the grace period and telemetry is
//! flushed); see `domain::service`.

use std::process::ExitCode;

fn main() -> ExitCode {
    domain::service::main(
        otel::service_info!(),
        || worker::Config::from_env().map(|c| c.health_addr).map_err(|e| e.to_string()),
        serve,
    )
}

async fn serve() -> anyhow::Result<()> {
    let config = worker::Config::from_env()?;
    let listener = tokio::net::TcpListener::bind(config.health_addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {} (WORKER_HEALTH_ADDR): {e}", config.health_addr)
    })?;
    worker::run(config, listener, domain::shutdown::signal()).await
}
