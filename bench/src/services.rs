//! The servers of the API and worker benchmarks, all on free loopback ports so they never meet a
//! running stack: Postgres, Redis, Jaeger and a real collector from `testkit` (the repo's own
//! `collector-config.yaml` and `jaeger/config.yaml`; the collector's `traces` pipeline exports to
//! that Jaeger), and the platform's release binaries, started one at a time, instrumented
//! (OTLP/gRPC to that collector, exporting every 15 s), traced (the same, and spans too, with the
//! stack's trace settings from `.env`) or with `OTEL_SDK_DISABLED=true`. Each start of a binary
//! has a name of its own (`02-api-traced`): its log file in `<target>/bench/logs` and its
//! `service.instance.id`, so its series in the collector's scrape are told apart from those of
//! every other start. Every process is owned by a guard that stops it when dropped, so an error
//! anywhere leaves nothing running.

use super::{fresh_dir, target_dir};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use testkit::process::{Daemon, Output, run as run_command};
use testkit::{Collector, Jaeger, Postgres, Redis, free_port, wait_for};

/// The services' metric export interval (as in the stack: Prometheus' scrape interval).
pub const EXPORT_INTERVAL_MS: u64 = 15_000;

/// How long a release build may take (a first one compiles every dependency).
const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// How long the API or the worker may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the API or the worker gets after SIGTERM (they drain, then flush telemetry).
const STOP_GRACE: Duration = Duration::from_secs(25);

/// How the platform's binary reports its telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Telemetry {
    /// OTLP/gRPC to the benchmark's collector, every [`EXPORT_INTERVAL_MS`].
    Instrumented,
    /// `OTEL_SDK_DISABLED=true`: every instrument a no-op, nothing exported.
    Disabled,
    /// [`Telemetry::Instrumented`] and spans too: OTLP to the same collector, with the stack's
    /// trace settings ([`testkit::trace_env`], from `.env`).
    Traced,
}

impl Telemetry {
    /// The order of the comparisons, A B C A B C: each side runs twice, and every traced run
    /// follows a disabled one, as every disabled run follows an instrumented one.
    pub const ALTERNATING: [Telemetry; 6] = [
        Telemetry::Instrumented,
        Telemetry::Disabled,
        Telemetry::Traced,
        Telemetry::Instrumented,
        Telemetry::Disabled,
        Telemetry::Traced,
    ];

    /// `instrumented`, `disabled` or `traced`.
    pub fn name(self) -> &'static str {
        match self {
            Telemetry::Instrumented => "instrumented",
            Telemetry::Disabled => "disabled",
            Telemetry::Traced => "traced",
        }
    }

    /// The telemetry environment of `service` (its `service.instance.id` `instance`) exporting to
    /// the OTLP/gRPC `endpoint`; a traced run adds `trace`, the trace variables.
    fn env(
        self,
        service: &str,
        instance: &str,
        endpoint: String,
        trace: &[(&'static str, String)],
    ) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("OTEL_SERVICE_NAME", service.to_string()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                format!(
                    "service.namespace=orgraph,deployment.environment.name=bench,\
                     service.instance.id={instance}"
                ),
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_string()),
            ("OTEL_METRIC_EXPORT_INTERVAL", EXPORT_INTERVAL_MS.to_string()),
            ("LOG_FORMAT", "json".to_string()),
        ];
        match self {
            Telemetry::Instrumented => {}
            Telemetry::Disabled => env.push(("OTEL_SDK_DISABLED", "true".to_string())),
            Telemetry::Traced => env.extend(trace.iter().cloned()),
        }
        env
    }
}

/// Postgres, Redis, the collector and Jaeger, shared by the API and worker benchmarks; stopped on
/// drop.
#[derive(Debug)]
pub struct Infra {
    /// The platform's database (`orgraph`).
    pub postgres: Postgres,
    /// The API's shared cache.
    pub redis: Redis,
    /// Where the instrumented services send OTLP.
    pub collector: Collector,
    /// The trace store the collector's `traces` pipeline exports to; only held, so that it runs as
    /// long as the collector (declared after it, so it stops after it: fields drop in order).
    _jaeger: Jaeger,
    /// The API's tokens (the benchmarks send the admin's).
    pub tokens: testkit::tokens::ApiTokens,
    /// The trace variables of a traced run, from `.env` ([`testkit::trace_env`]).
    trace: Vec<(&'static str, String)>,
    logs: PathBuf,
    binaries: PathBuf,
}

impl Infra {
    /// Reads the trace settings from `.env`, builds the API and the worker in release, then
    /// starts Postgres, Redis, Jaeger and the collector (its `traces` pipeline to that Jaeger).
    pub fn start() -> anyhow::Result<Infra> {
        let trace = testkit::trace_env()?;
        let cargo = std::env::var_os("CARGO").filter(|c| !c.is_empty()).unwrap_or("cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--release", "-p", "api", "-p", "worker"])
            .current_dir(testkit::repo_root());
        let what = "cargo build --release -p api -p worker";
        eprintln!("[bench] {what}");
        run_command(what, &mut build, Output::Prefixed("build"), BUILD_TIMEOUT)?;
        let binaries = target_dir().join("release");
        for bin in ["api", "worker"] {
            let path = binaries.join(bin);
            anyhow::ensure!(
                path.is_file(),
                "{what} left no {} (is the target directory configured elsewhere? Set \
                 CARGO_TARGET_DIR instead)",
                path.display()
            );
        }
        let logs = fresh_dir("logs")?;
        eprintln!(
            "[bench] starting Postgres, Redis, Jaeger and the collector on free loopback ports"
        );
        let postgres = Postgres::start()?;
        let redis = Redis::start()?;
        let jaeger = Jaeger::start()?;
        let collector =
            Collector::start_with(&[("JAEGER_OTLP_ENDPOINT", &jaeger.otlp_grpc_endpoint())])?;
        eprintln!(
            "[bench] postgres :{}, redis :{}, collector OTLP {} (exporter {}), jaeger {}",
            postgres.port(),
            redis.port(),
            collector.otlp_grpc_endpoint(),
            collector.prometheus_url(),
            jaeger.query_url()
        );
        let tokens = testkit::tokens::ApiTokens::scratch()?;
        Ok(Infra { postgres, redis, collector, _jaeger: jaeger, tokens, trace, logs, binaries })
    }

    /// Starts the release API on a free port and waits until it is ready.
    pub fn start_api(&self, telemetry: Telemetry) -> anyhow::Result<Running> {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let name = start_name("api", telemetry);
        let mut env = telemetry.env("api", &name, self.collector.otlp_grpc_endpoint(), &self.trace);
        env.extend([
            ("API_ADDR", format!("127.0.0.1:{port}")),
            ("DATABASE_URL", self.postgres.url()),
            ("REDIS_URL", self.redis.url()),
            // Authentication and the rate limiter run on every request, as in production; the
            // limit is far above what one machine can send, so it never refuses.
            ("API_TOKENS_FILE", self.tokens.file.display().to_string()),
            ("API_RATE_LIMIT_PER_S", "1000000000".into()),
            ("API_RATE_LIMIT_BURST", "1000000000".into()),
        ]);
        let health = format!("{base}/health/ready");
        let mut running =
            Running::start(&self.binaries.join("api"), "api", name, env, health, &self.logs)?;
        running.base = base;
        Ok(running)
    }

    /// Starts the release worker (its health listener on a free port, exports into
    /// `export_dir`) and waits until it is ready.
    pub fn start_worker(
        &self,
        telemetry: Telemetry,
        concurrency: u32,
        export_dir: &Path,
    ) -> anyhow::Result<Running> {
        let port = free_port();
        let export_dir = export_dir
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("{} is not UTF-8", export_dir.display()))?;
        let name = start_name("worker", telemetry);
        let mut env =
            telemetry.env("worker", &name, self.collector.otlp_grpc_endpoint(), &self.trace);
        env.extend([
            ("WORKER_HEALTH_ADDR", format!("127.0.0.1:{port}")),
            ("DATABASE_URL", self.postgres.url()),
            ("EXPORT_DIR", export_dir.to_string()),
            ("CONCURRENCY_INTERVENTION", concurrency.to_string()),
        ]);
        let health = format!("http://127.0.0.1:{port}/health/ready");
        Running::start(&self.binaries.join("worker"), "worker", name, env, health, &self.logs)
    }

    /// Runs `sql` on the `orgraph` database; the unaligned, tuples-only output.
    pub fn sql(&self, sql: &str) -> anyhow::Result<String> {
        self.postgres.psql(&self.postgres.url(), sql)
    }
}

/// The name of the next start of `service`, `<n>-<service>-<telemetry>` (`02-api-traced`), `n`
/// counting every start of this process: its log file's stem and its `service.instance.id`.
fn start_name(service: &str, telemetry: Telemetry) -> String {
    static STARTS: AtomicU32 = AtomicU32::new(0);
    let n = STARTS.fetch_add(1, Ordering::Relaxed);
    format!("{n:02}-{service}-{}", telemetry.name())
}

/// A running API or worker; SIGTERM (then SIGKILL after the grace) when dropped.
#[derive(Debug)]
pub struct Running {
    daemon: Daemon,
    /// Its start's name ([`start_name`]), also its `service.instance.id`.
    instance: String,
    /// The API's base URL (`http://127.0.0.1:<port>`); empty for the worker.
    pub base: String,
}

/// How a run of the API or the worker ended.
#[derive(Debug)]
pub struct Stopped {
    /// Its `service.instance.id` (the `instance` label of its series).
    pub instance: String,
    /// Its log file (JSON lines, and what it wrote on stderr).
    pub log: PathBuf,
    /// Its exit status; `None` if it was already stopped.
    pub status: Option<ExitStatus>,
    /// When it was seen gone.
    pub at: Instant,
}

impl Running {
    fn start(
        binary: &Path,
        name: &str,
        instance: String,
        env: Vec<(&'static str, String)>,
        health: String,
        logs: &Path,
    ) -> anyhow::Result<Running> {
        let log = logs.join(format!("{instance}.log"));
        let mut command = Command::new(binary);
        command.envs(env).current_dir(logs);
        let mut daemon = Daemon::spawn(name, command, &log)?;
        let ready = wait_for(&format!("{name} ready at {health}"), READY_TIMEOUT, || {
            if let Some(status) = daemon.exited()? {
                anyhow::bail!("{name} exited ({status})");
            }
            match testkit::http_get(&health)? {
                (200, _) => Ok(Some(())),
                (status, body) => anyhow::bail!("{status}: {}", body.trim()),
            }
        });
        if let Err(e) = ready {
            let text = daemon.log();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            anyhow::bail!("{e:#}\nlast lines of {}:\n{tail}", log.display());
        }
        eprintln!("[bench] {instance} ready, pid {}", daemon.pid());
        Ok(Running { daemon, instance, base: String::new() })
    }

    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Stops it: SIGTERM, then SIGKILL after the grace; how it ended.
    pub fn stop(mut self) -> anyhow::Result<Stopped> {
        let status = self.daemon.terminate("TERM", STOP_GRACE)?;
        Ok(Stopped {
            instance: std::mem::take(&mut self.instance),
            log: self.daemon.log_path().to_path_buf(),
            status,
            at: Instant::now(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Idempotent: nothing happens after an explicit `stop`.
        let _ = self.daemon.terminate("TERM", STOP_GRACE);
    }
}

/// A process's resident set size in bytes, from `/proc/<pid>/status` (`VmRSS:  1234 kB`).
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {path}: {e}"))?;
    parse_vm_rss(&status).ok_or_else(|| anyhow::anyhow!("no VmRSS line in {path}"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next()? {
        "kB" => value.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tapi\nVmPeak:\t  900 kB\nVmRSS:\t   20480 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(20480 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert!(rss_bytes(std::process::id()).is_ok_and(|b| b > 0));
    }

    fn trace() -> Vec<(&'static str, String)> {
        vec![
            ("OTEL_TRACES_EXPORTER", "otlp".to_string()),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5".into()),
        ]
    }

    #[test]
    fn disabled_differs_only_by_the_sdk_switch() {
        let endpoint = "http://127.0.0.1:4317".to_string();
        let on = Telemetry::Instrumented.env("api", "i", endpoint.clone(), &trace());
        let mut off = Telemetry::Disabled.env("api", "i", endpoint, &trace());
        assert_eq!(off.pop(), Some(("OTEL_SDK_DISABLED", "true".to_string())));
        assert_eq!(on, off);
        let interval = on.iter().find(|(k, _)| *k == "OTEL_METRIC_EXPORT_INTERVAL");
        assert_eq!(interval.map(|(_, v)| v.as_str()), Some("15000"));
    }

    #[test]
    fn traced_differs_only_by_the_trace_variables() {
        let endpoint = "http://127.0.0.1:4317".to_string();
        let on = Telemetry::Instrumented.env("api", "i", endpoint.clone(), &trace());
        let mut traced = Telemetry::Traced.env("api", "i", endpoint, &trace());
        let added = traced.split_off(on.len());
        assert_eq!(traced, on);
        assert_eq!(added, trace());
        assert!(!on.iter().any(|(k, _)| k.starts_with("OTEL_TRACES_")), "{on:?}");
    }

    #[test]
    fn each_start_is_an_instance_of_its_own() {
        let (a, b) = (start_name("api", Telemetry::Traced), start_name("api", Telemetry::Traced));
        assert_ne!(a, b);
        assert!(a.ends_with("-api-traced"), "{a}");
        let env = Telemetry::Traced.env("api", &a, "http://127.0.0.1:4317".into(), &trace());
        let resource = env.iter().find(|(k, _)| *k == "OTEL_RESOURCE_ATTRIBUTES");
        assert_eq!(
            resource.map(|(_, v)| v.as_str()),
            Some(format!(
                "service.namespace=orgraph,deployment.environment.name=bench,\
                 service.instance.id={a}"
            ))
            .as_deref()
        );
    }

    #[test]
    fn each_side_runs_twice_and_every_traced_run_follows_a_disabled_one() {
        let runs = Telemetry::ALTERNATING;
        for side in [Telemetry::Instrumented, Telemetry::Disabled, Telemetry::Traced] {
            assert_eq!(runs.iter().filter(|&&t| t == side).count(), 2, "{side:?}");
        }
        for i in (0..runs.len()).filter(|&i| runs[i] == Telemetry::Traced) {
            assert_eq!(i.checked_sub(1).map(|p| runs[p]), Some(Telemetry::Disabled), "run {i}");
        }
    }
}
