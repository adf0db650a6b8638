//! The worker binary: `--health-check`, or the queue workers and the health listener until
//! SIGTERM or Ctrl-C (then in-flight jobs finish within the grace period and telemetry is
//! flushed); see `servicekit`.

use std::process::ExitCode;

fn main() -> ExitCode {
    servicekit::main(otel::service_info!(), serve)
}

async fn serve(config: worker::Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.health_addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen on {} (WORKER_HEALTH_ADDR): {e}", config.health_addr)
    })?;
    worker::run(config, listener, servicekit::shutdown::signal()).await
}
