//! The org-graph API: an axum service on Postgres (the graph, jobs, interventions) and Redis (the
//! shared cache), instrumented through the `otel` catalogue.
//!
//! [`run`] is the whole service: it takes a bound listener so tests can start it on a free port.

pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod graph;
pub mod jobs;
pub mod redis;
pub mod routes;
pub mod state;

pub use config::Config;
pub use state::AppState;

use std::future::Future;
use tokio::net::TcpListener;

/// Migrates the schema (if Postgres is reachable), starts the background refresh of the graph
/// gauges, and serves until `shutdown` resolves; then stops accepting and drains in-flight
/// requests.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState::new(&config)?;
    domain::migrate(state.db.pool()).await?;
    let refresher =
        tokio::spawn(refresh_graph_gauges(state.clone(), config.graph_metrics_interval));
    let app = routes::router(state, &config);
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    refresher.abort();
    served.map_err(Into::into)
}

/// Keeps the node/edge gauges and the L2 size current; a failed refresh keeps the last values.
async fn refresh_graph_gauges(state: AppState, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Ok((nodes, edges)) = state.db.run(async |c| graph::queries::counts(c).await).await {
            state.graph_metrics.set_size(nodes.max(0) as u64, edges.max(0) as u64);
        }
        state.redis.report_size(otel::metrics::labels::CacheName::GraphStats).await;
    }
}
