//! The life of a service binary, the same for the API and the worker. Its settings come from the
//! environment; its command line has `--help`, which lists every variable the service reads (its
//! own and telemetry's, with their defaults), and `--health-check`, which answers the container's
//! probe and exits. Otherwise telemetry starts first (so every meter is real), then the service
//! reads its settings and runs until it returns (on SIGTERM or Ctrl-C), then telemetry is flushed.
//! A bad setting or a failure exits non-zero with a one-line reason.

use crate::settings::{FromEnv, ServiceConfig, Variable};
use clap::{CommandFactory, FromArgMatches, Parser};
use std::fmt::Write;
use std::future::Future;
use std::process::ExitCode;

/// A service of the org-graph platform, configured by environment variables.
#[derive(Debug, Parser)]
struct Cli {
    /// Probe the running service's `/health/live` where it listens, and exit: 0 if it answers
    /// 200, else 1 with the reason (the container's health check).
    #[arg(long)]
    health_check: bool,
}

/// The command line of service `info`, whose settings are `C`.
pub fn command<C: ServiceConfig>(info: &otel::ServiceInfo) -> clap::Command {
    let variables = otel::Config::variables().into_iter().chain(C::variables());
    Cli::command().name(info.name).version(info.version).after_help(environment(variables))
}

fn environment(variables: impl IntoIterator<Item = Variable>) -> String {
    let mut text = String::from("Environment variables (unset or blank means the default):\n");
    for v in variables {
        let _ = match v.default {
            Some(default) => writeln!(text, "  {:<28} [default: {default}]", v.name),
            None => writeln!(text, "  {}", v.name),
        };
    }
    text
}

/// Runs the binary of service `info.name`, configured by `C`; `serve` is the service itself.
pub fn main<C: ServiceConfig, F: Future<Output = anyhow::Result<()>>>(
    info: otel::ServiceInfo,
    serve: impl FnOnce(C) -> F,
) -> ExitCode {
    let name = info.name;
    let matches = command::<C>(&info).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if cli.health_check {
        // Before telemetry and the runtime: the health check is a short-lived probe.
        let listen = C::from_env().map(|c| c.health_addr()).map_err(|e| e.to_string());
        return crate::health_check::run(name, listen);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let telemetry = match otel::init(info) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::from(2);
            }
        };
        let run = async { serve(C::from_env()?).await };
        let code = match run.await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "{name} stopped");
                eprintln!("{name}: {e:#}");
                ExitCode::FAILURE
            }
        };
        if let Err(e) = telemetry.shutdown_async().await {
            eprintln!("{name}: {e}");
        }
        code
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Postgres, SettingError, Settings};
    use std::net::SocketAddr;

    struct Config;

    impl FromEnv for Config {
        fn read(s: &Settings<'_>) -> Result<Config, SettingError> {
            Postgres::read(s).map(|_| Config)
        }
    }

    impl ServiceConfig for Config {
        fn health_addr(&self) -> SocketAddr {
            SocketAddr::from(([127, 0, 0, 1], 1))
        }
    }

    const INFO: otel::ServiceInfo = otel::ServiceInfo { name: "svc", version: "1.0.0" };

    #[test]
    fn help_lists_every_variable_with_its_default() {
        let help = command::<Config>(&INFO).render_long_help().to_string();
        assert!(help.contains("--health-check"), "{help}");
        let listed = |name: &str, default: &str| {
            help.lines().any(|l| l.trim_start().starts_with(name) && l.ends_with(default))
        };
        assert!(
            listed("OTEL_EXPORTER_OTLP_ENDPOINT", "[default: http://localhost:4317]"),
            "{help}"
        );
        assert!(listed("OTEL_METRIC_EXPORT_INTERVAL", "[default: 60000]"), "{help}");
        assert!(listed("OTEL_SERVICE_NAME", "OTEL_SERVICE_NAME"), "{help}");
        assert!(listed("PG_POOL_MAX", "[default: 10]"), "{help}");
        assert!(listed("DATABASE_URL", "/orgraph]"), "{help}");
    }

    #[test]
    fn health_check_is_a_flag_and_other_arguments_are_refused() {
        let parse = |args: &[&str]| {
            command::<Config>(&INFO)
                .try_get_matches_from(args)
                .and_then(|m| Cli::from_arg_matches(&m))
                .map(|cli| cli.health_check)
        };
        assert!(parse(&["svc", "--health-check"]).unwrap());
        assert!(!parse(&["svc"]).unwrap());
        assert!(parse(&["svc", "--health"]).is_err());
        assert!(parse(&["svc", "serve"]).is_err());
    }
}
