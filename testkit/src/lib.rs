//! The test harness of the workspace. Integration tests of every crate (and `cargo xtask`) share
//! one way to find the natively built tools, pick free ports, wait with a deadline, run and signal
//! child processes, speak HTTP to loopback servers, and run a real collector, so no test grows its
//! own half-working copy.
//!
//! * [`tools`]: where the pinned tools live (the cache outside the clone) and the versions of
//!   `.env`.
//! * [`free_port`], [`wait_for`], [`http_get`], [`http_post_json`], [`http_request`]: the small
//!   pieces every server test needs.
//! * [`process::Daemon`]: a child process that logs to a file and dies with its owner;
//!   [`process::output`], [`process::run`]: a short command under a deadline, its output captured
//!   or shown; [`process::signal`]: a signal by name, without `unsafe`.
//! * [`Collector`]: the collector built from `collector/builder-config.yaml`, running the repo's own
//!   `collector-config.yaml` on free loopback ports.
//! * [`Jaeger`]: Jaeger v2 (the trace store) running the repo's `jaeger/config.yaml` on free
//!   loopback ports, for tests that send spans through the collector and read them back.
//! * [`Postgres`], [`Redis`]: real servers from the OS packages on free loopback ports, which fault
//!   tests can stop and start again; [`pg`]: the Postgres cluster handling (initdb, running as the
//!   `postgres` user when root, the monitoring role) they share with `cargo xtask stack`.
//! * [`PostgresExporter`]: postgres_exporter reading a test's Postgres as the monitoring role, the
//!   collector's `prometheus/postgres` target.
//! * [`tokens::ApiTokens`]: a token per API role and the tokens file the API reads.
//! * [`trace_env`]: the services' trace settings (exporter, sampler) of `.env`, which compose, the
//!   native stack and the benchmarks share.

mod collector;
pub mod exposition;
mod http;
mod jaeger;
mod net;
pub mod pg;
mod postgres;
pub mod postgres_exporter;
pub mod process;
mod redis;
mod scratch;
pub mod tokens;
pub mod tools;
mod trace_env;
mod wait;

pub use collector::Collector;
pub use http::{http_get, http_post_json, http_request};
pub use jaeger::Jaeger;
pub use net::free_port;
pub use postgres::Postgres;
pub use postgres_exporter::PostgresExporter;
pub use redis::Redis;
pub use scratch::ScratchDir;
pub use trace_env::{TRACE_VARS, trace_env};
pub use wait::wait_for;

use std::path::{Path, PathBuf};

/// The root of the repository (the workspace directory, the one with `Cargo.lock`), so it is right
/// whatever the current directory of a test or tool is. Found at run time from the
/// `CARGO_MANIFEST_DIR` cargo gives the process it runs (a test, `cargo xtask`), else from the
/// current directory: the path compiled in is only the last resort, because a target directory
/// shared by several clones (CI's cache) reuses a build made in another clone, whose path it holds.
pub fn repo_root() -> PathBuf {
    let workspace = |start: PathBuf| {
        start.ancestors().find(|dir| dir.join("Cargo.lock").is_file()).map(Path::to_path_buf)
    };
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .and_then(workspace)
        .or_else(|| std::env::current_dir().ok().and_then(workspace))
        .unwrap_or_else(|| {
            let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest_dir.parent().map_or_else(|| manifest_dir.join(".."), Path::to_path_buf)
        })
}
