//! `cargo xtask stack`: the native stack for machines without Docker. The same services as
//! compose, on the same ports, but on 127.0.0.1, running the repo's own config files (never a
//! copy). Each service runs detached in its own process group; its log and pid file are under
//! `<repo>/target/stack/`, and `down` stops only what a pid file says this tool started. `up`
//! first builds the API and the worker (one `cargo build` for those not running), then starts
//! Postgres and Redis (from the OS packages; see [`service`] for their data and authentication),
//! postgres_exporter (the collector reads Postgres through it, as the role of [`monitoring`]),
//! Jaeger (the trace store; its query service at [`jaeger_query_url`]), the collector,
//! Alertmanager, Prometheus (which alerts to Alertmanager), the API (it needs Postgres, Redis and
//! the collector healthy) and the worker (it needs Postgres and the collector). `down` stops them in reverse: the worker and the API first, so they finish their
//! jobs and requests and flush their telemetry while the collector still runs.

mod monitoring;
mod pid;
mod service;
pub mod tokens;

pub use service::{
    PROMETHEUS_CONFIG_ENV, STACK_DIR_ENV, jaeger_query_url, scrape_interval_ms, target_dir,
};

/// This stack, as the freshness benchmark of `cargo xtask bench` runs it.
pub const NATIVE: bench::NativeStack = bench::NativeStack {
    ensure_ports_free,
    own_copy,
    dir_env: STACK_DIR_ENV,
    token_file: tokens::ADMIN_TOKEN_FILE,
};

/// Fails, naming the port and what uses it, unless every port of the native stack (each
/// service's [`Service::ports`]) is free: a command that runs a stack of its own (`purpose`)
/// needs them all.
pub fn ensure_ports_free(purpose: &str) -> anyhow::Result<()> {
    for &(port, what) in Service::ALL.iter().flat_map(|service| service.ports()) {
        anyhow::ensure!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} ({what}) is in use: {purpose} runs the native stack on the compose ports; \
             stop what holds it (`cargo xtask stack status`, `cargo xtask stack down`)"
        );
    }
    Ok(())
}

/// Copies the running binary into `dir` and returns the copy's path: a `cargo build` or `cargo
/// test` meanwhile may replace (and so delete) `target/debug/xtask`, while a long-running command
/// (the live proof, a benchmark) must still run `stack down` with the binary that ran `stack up`.
/// `/proc/self/exe` reads this process's binary even after its file was replaced.
pub fn own_copy(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let copy = dir.join("xtask");
    std::fs::copy("/proc/self/exe", &copy)
        .with_context(|| format!("copying this binary to {}", copy.display()))?;
    Ok(copy)
}

use anyhow::Context;
use clap::Subcommand;
use service::{Native, Service};
use std::time::{Duration, Instant};
use testkit::process::human;

/// How long a service may take to become healthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines of a log shown when a service fails.
const LOG_TAIL: usize = 40;

/// What to do with the stack.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Start every native service (a running one is left alone) and wait until all are healthy.
    Up,
    /// Stop every service this tool started.
    Down,
    /// One line per service: running (pid, healthy or not) or stopped.
    Status,
    /// Start one service and wait until it is healthy.
    Start {
        /// The service, named as in compose.
        service: Service,
    },
    /// Stop one service.
    Stop {
        /// The service, named as in compose.
        service: Service,
    },
    /// Crash one service: SIGKILL to it and all its processes, no grace (a fault for tests).
    Kill {
        /// The service, named as in compose.
        service: Service,
    },
    /// Hang one service: SIGSTOP to it and all its processes (for Postgres the postmaster and
    /// every backend, which would otherwise keep serving open connections). A fault for tests.
    Pause {
        /// The service, named as in compose.
        service: Service,
    },
    /// Undo `pause`: SIGCONT to the service and all its processes.
    Resume {
        /// The service, named as in compose.
        service: Service,
    },
}

pub fn command(action: Action) -> anyhow::Result<()> {
    match action {
        Action::Up => {
            let natives = Service::ALL.map(Service::native);
            let natives: Vec<Native> = natives.into_iter().collect::<anyhow::Result<_>>()?;
            // Before anything starts, so a compile error leaves nothing half started.
            let stopped: Vec<&Native> =
                natives.iter().filter(|native| pid::running(native).is_none()).collect();
            service::build(&stopped)?;
            for native in &natives {
                start(native, Build::Done)?;
            }
            eprintln!("stack is up; logs in {}", service::stack_dir().display());
            eprintln!("traces: Jaeger's UI and API at {}", jaeger_query_url());
            if let Some(token) = tokens::admin_token() {
                eprintln!(
                    "API token (role admin): {token}\n  kept in {}; `cargo xtask load` sends it; \
                     curl: -H \"Authorization: Bearer $(cat {})\"",
                    tokens::admin_token_file().display(),
                    tokens::admin_token_file().display()
                );
            }
            Ok(())
        }
        Action::Down => {
            let mut failures = Vec::new();
            for service in Service::ALL.iter().rev() {
                if let Err(e) = stop(&service.native()?) {
                    failures.push(format!("{service}: {e:#}"));
                }
            }
            anyhow::ensure!(failures.is_empty(), "{}", failures.join("\n"));
            Ok(())
        }
        Action::Status => {
            for service in Service::ALL {
                let line = status_line(&service.native()?);
                println!("{:<13}{line}", service.to_string());
            }
            Ok(())
        }
        Action::Start { service } => start(&service.native()?, Build::First),
        Action::Stop { service } => stop(&service.native()?),
        Action::Kill { service } => signal_service(&service.native()?, "KILL"),
        Action::Pause { service } => signal_service(&service.native()?, "STOP"),
        Action::Resume { service } => signal_service(&service.native()?, "CONT"),
    }
}

/// Whether [`start`] builds the service (if it is one of the platform's own) before spawning it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Build {
    /// Build it first, so the current code runs.
    First,
    /// The caller built it already (`up` builds all of them with one `cargo build`).
    Done,
}

/// Starts `native` unless it runs already, then waits until it is healthy.
fn start(native: &Native, build: Build) -> anyhow::Result<()> {
    let name = native.service;
    let mut child = None;
    match pid::running(native) {
        Some(pid) => eprintln!("{name}: already running (pid {pid})"),
        None => {
            check_needs(name)?;
            native.check_ports_free()?;
            if build == Build::First {
                native.build()?;
            }
            if name == Service::Api && tokens::ensure()?.is_some() {
                eprintln!("api: made the stack's token: {}", tokens::admin_token_file().display());
            }
            let spawned = native.spawn()?;
            let target = native.health_target();
            eprintln!("{name}: started (pid {}), waiting for {target}", spawned.id());
            child = Some(spawned);
        }
    }
    let started = Instant::now();
    let result = testkit::wait_for(
        &format!("{name} to be healthy at {}", native.health_target()),
        HEALTH_TIMEOUT,
        || {
            if let Some(status) = child.as_mut().map(|c| c.try_wait()).transpose()?.flatten() {
                return Ok(Some(Err(anyhow::anyhow!(
                    "{name} exited ({status}) before it was healthy"
                ))));
            }
            if child.is_none() && pid::running(native).is_none() {
                return Ok(Some(Err(anyhow::anyhow!("{name} stopped before it was healthy"))));
            }
            native.health().map(|()| Some(Ok(())))
        },
    )
    .and_then(|outcome| outcome);
    match result {
        Ok(()) => {
            match child {
                Some(_) => eprintln!("{name}: healthy ({} after start)", human(started.elapsed())),
                None => eprintln!("{name}: healthy"),
            }
            if let Some(done) = native.after_healthy()? {
                eprintln!("{name}: {done}");
            }
            Ok(())
        }
        Err(e) => {
            if child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(Some(_)))) {
                pid::remove(native);
            }
            anyhow::bail!(
                "{name} is not healthy: {e:#}\nlast lines of {}:\n{}",
                native.log_path.display(),
                tail(&native.log_path, LOG_TAIL)
            )
        }
    }
}

/// Stops `native` if a pid file names a live process of it.
fn stop(native: &Native) -> anyhow::Result<()> {
    let name = native.service;
    match pid::running(native) {
        Some(pid) => {
            pid::terminate(pid, name, native.stop_signal(), native.stop_grace())?;
            pid::remove(native);
            eprintln!("{name}: stopped (was pid {pid})");
        }
        None => {
            pid::remove(native);
            eprintln!("{name}: not running");
        }
    }
    Ok(())
}

/// Sends `signal` to `native`, its process group and every descendant (each service leads its
/// group, but Postgres' backends leave it). After SIGKILL the pid file goes, as after `stop`.
fn signal_service(native: &Native, signal: &str) -> anyhow::Result<()> {
    let name = native.service;
    let pid = pid::running(native).with_context(|| format!("{name} is not running"))?;
    pid::signal_tree(pid, signal)?;
    if signal == "KILL" {
        pid::remove(native);
    }
    eprintln!("{name}: SIG{signal} to pid {pid} and all its processes");
    Ok(())
}

/// Fails unless every service `service` needs is healthy, naming the first that is not.
fn check_needs(service: Service) -> anyhow::Result<()> {
    for &needed in service.needs() {
        needed.native()?.health().with_context(|| {
            format!(
                "{service} needs {needed} healthy first (`cargo xtask stack up` starts everything \
                 in order)"
            )
        })?;
    }
    Ok(())
}

fn status_line(native: &Native) -> String {
    match pid::running(native) {
        Some(pid) => match native.health() {
            Ok(()) => format!("running (pid {pid}, healthy)"),
            Err(e) => format!("running (pid {pid}, NOT healthy: {e:#})"),
        },
        None => "stopped".to_string(),
    }
}

/// The last `lines` lines a service wrote since it was last started, or why they cannot be read.
fn tail(path: &std::path::Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let since_start = text.rfind(service::START_MARKER).map_or(&text[..], |i| &text[i..]);
            let all: Vec<&str> = since_start.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}
