//! `cargo xtask`: the project's own tooling, in Rust so it runs wherever `cargo` does.
//!
//! * `tools`: builds the pinned native tools (collector, Prometheus, promtool, Alertmanager,
//!   amtool, Jaeger, actionlint) and schemathesis (pip, into a venv) into the cache outside the clone and
//!   checks the OS packages (Postgres, Redis).
//! * `stack`: runs Postgres, Redis, Jaeger, the collector, Alertmanager, Prometheus, the API and
//!   the worker natively on the compose ports, on 127.0.0.1.
//! * `load`: drives a mix of requests against the API (replaces locust) and reports counts and
//!   latencies by route; fails on a 5xx or a transport error.
//! * `bench`: what the metrics pipeline costs and how it behaves (layer overhead, API and worker
//!   throughput instrumented vs disabled, freshness, a URL flood), one `name=value` line each;
//!   the benchmarks are the `bench` crate, as the load generator is the `load` crate.
//! * `e2e`: the live proof: the whole stack under load, every dashboard and rule query against the
//!   real Prometheus, alerts under induced faults.
//! * `docs`: regenerates `docs/METRICS.md` from the metric catalogue.
//! * `test`: everything CI checks, in order, failing fast.

mod docs;
mod e2e;
mod stack;
mod test;
mod tools;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The project's own tooling.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build (once) and check the native tools: collector, Prometheus, promtool, Alertmanager,
    /// amtool, Jaeger, actionlint, schemathesis, Postgres, Redis.
    Tools {
        /// After ensuring every tool, print `name=/absolute/path` lines (only those on stdout).
        #[arg(long)]
        print: bool,
    },
    /// Run the native stack (Postgres, Redis, Jaeger, collector, Alertmanager, Prometheus, API,
    /// worker) on 127.0.0.1, on the compose ports.
    Stack {
        #[command(subcommand)]
        action: stack::Action,
    },
    /// Drive a mix of requests against the API; report counts and latencies by route.
    Load(load::Args),
    /// Measure the metrics pipeline: layer overhead, throughput instrumented vs disabled,
    /// freshness, a flood of unique URLs; prints one `name=value` line per figure.
    Bench(bench::Args),
    /// The live proof: the stack under load; every dashboard and rule query; alerts under faults.
    E2e {
        /// `single`: the native stack on the compose ports; `ha`: replicas, the collector tier,
        /// Prometheus HA with Thanos and the Alertmanager cluster on free ports.
        #[arg(long, value_enum, default_value_t)]
        profile: e2e::Profile,
    },
    /// Regenerate docs/METRICS.md from the metric catalogue.
    Docs,
    /// Run every check CI runs: fmt, clippy, tools, config validation, tests.
    Test,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tools { print } => tools::command(print),
        Command::Stack { action } => stack::command(action),
        Command::Load(args) => load::command(args, stack::tokens::admin_token),
        Command::Bench(args) => bench::command(args, &stack::NATIVE),
        Command::E2e { profile } => e2e::command(profile),
        Command::Docs => docs::command(),
        Command::Test => test::command(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
