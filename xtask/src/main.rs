//! `cargo xtask`: the project's own tooling, in Rust so it runs wherever `cargo` does.
//!
//! * `tools`: builds the pinned native tools (collector, Prometheus, promtool) into the cache
//!   outside the clone and checks the OS packages (Postgres, Redis).
//! * `stack`: runs Postgres, Redis, the collector, Prometheus and the API natively on the compose
//!   ports, on 127.0.0.1.
//! * `docs`: regenerates `docs/METRICS.md` from the metric catalogue.
//! * `test`: everything CI checks, in order, failing fast.

mod docs;
mod run;
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
    /// Build (once) and check the native tools: collector, Prometheus, promtool, Postgres, Redis.
    Tools {
        /// After ensuring every tool, print `name=/absolute/path` lines (only those on stdout).
        #[arg(long)]
        print: bool,
    },
    /// Run the native stack (Postgres, Redis, collector, Prometheus, API) on 127.0.0.1, on the compose ports.
    Stack {
        #[command(subcommand)]
        action: stack::Action,
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
