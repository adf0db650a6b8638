//! The alert-log binary (see the library's documentation for why it exists): `--health-check`
//! probes the running one and exits (the container's health check), otherwise it serves on
//! `ALERT_LOG_ADDR` (default `127.0.0.1:9099`) until SIGTERM or Ctrl-C. The alerts go to stdout,
//! one JSON line each; what it says about itself goes to stderr. A bad address exits 2.

use std::process::ExitCode;
use std::time::Duration;

/// The bound on `--health-check`: connecting, sending, reading the status line.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let value = std::env::var(alert_log::ADDR_VAR).ok();
    let addr = match alert_log::listen_addr(value.as_deref()) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("alert-log: {e}");
            return ExitCode::from(2);
        }
    };
    if std::env::args_os().nth(1).is_some_and(|arg| arg == "--health-check") {
        return match alert_log::probe(addr, HEALTH_CHECK_TIMEOUT) {
            Ok(url) => {
                println!("alert-log: healthy ({url} answered 200)");
                ExitCode::SUCCESS
            }
            Err(reason) => {
                eprintln!("alert-log: unhealthy: {reason}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("alert-log: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("alert-log: cannot listen on {addr} ({}): {e}", alert_log::ADDR_VAR);
                return ExitCode::FAILURE;
            }
        };
        eprintln!(
            "alert-log: listening on {addr}: POST {} (Alertmanager's webhooks), GET {}",
            alert_log::RECEIVERS.join(", "),
            alert_log::HEALTH_PATH
        );
        match alert_log::serve(listener, alert_log::Output::stdout(), shutdown()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("alert-log: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// SIGTERM (`docker compose stop`) or Ctrl-C. As PID 1 of its container the process gets no
/// default handling of SIGTERM, so without this it would wait for the SIGKILL.
async fn shutdown() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    eprintln!("alert-log: stopping");
}
