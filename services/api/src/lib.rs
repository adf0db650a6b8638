//! The org-graph API: an axum service on Postgres (the graph, jobs, interventions) and Redis (the
//! shared cache), instrumented through the `otel` catalogue.
//!
//! [`run`] is the whole service: it takes a bound listener so tests can start it on a free port.

// An application crate: its library is the API binary and what the tests drive, no public API,
// so an item has a doc comment where it says something, not by rule. (The request and
// response types and the handlers are documented: their docs are the OpenAPI document.)
#![allow(missing_docs)]

pub mod auth;
pub mod breaker;
pub mod cache;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod graph;
pub mod interventions;
pub mod jobs;
pub mod redis;
pub mod routes;
pub mod state;
pub mod validate;

pub use config::Config;
pub use state::AppState;

use std::future::{Future, IntoFuture};
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves until `shutdown` resolves, then stops accepting and drains in-flight requests.
/// Meanwhile it migrates the schema, once Postgres answers (until then the API is live, not ready,
/// and its queries are 503s: it starts whether Postgres is up or not), and refreshes the graph
/// gauges. A schema that cannot be migrated stops it with that error.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tokens = auth::Tokens::load(&config.tokens_file)?;
    tracing::info!(
        admin = tokens.count(auth::Role::Admin),
        write = tokens.count(auth::Role::Write),
        read = tokens.count(auth::Role::Read),
        "api tokens loaded"
    );
    let state = AppState::new(&config)?;
    let db = state.db.clone();
    // Postgres is normally up: then the schema is migrated before the first request. If it does
    // not answer within a second, the API listens first (live, not ready) and migrates later.
    // The connection goes back to the pool at the end of this statement (held in a binding, it
    // would be taken from the pool for the API's whole life).
    let answers = matches!(
        tokio::time::timeout(Duration::from_secs(1), db.pool().acquire()).await,
        Ok(Ok(_))
    );
    if answers {
        db.migrate().await?;
    }
    let refresher =
        tokio::spawn(refresh_graph_gauges(state.clone(), config.graph_metrics_interval));
    let app = routes::router(state, &config, std::sync::Arc::new(tokens));
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).into_future();
    let migrated = async move {
        db.migrate().await?;
        std::future::pending::<anyhow::Result<()>>().await
    };
    let result = tokio::select! {
        served = served => served.map_err(Into::into),
        failed = migrated => failed,
    };
    refresher.abort();
    result
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
        state.redis.report_size(otel::catalogue::CacheName::GraphStats).await;
    }
}
