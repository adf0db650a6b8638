//! The benchmarks behind `cargo xtask bench [--quick]` (xtask parses the arguments and calls
//! [`command`]): what the metrics pipeline costs and how well it behaves, as numbers, measured on
//! this machine. It runs each benchmark in turn, prints progress on stderr,
//! and ends by printing one `name=value` line per figure on stdout (and, on stderr, each figure
//! beside its target). `--quick` gives the same figures from shorter runs.
//!
//! * [`http_layer`]: the criterion benchmark of the HTTP metrics layer (`otel/benches`), read
//!   back from criterion's `estimates.json`: nanoseconds per request without a layer, with ours
//!   (SDK and no-op meter) and with the peer `opentelemetry-instrumentation-tower`.
//! * [`api`]: the release API instrumented (OTLP to a real collector), and traced (spans too),
//!   each against the same API with `OTEL_SDK_DISABLED=true`, hammering the cached
//!   `GET /api/graph/stats` at saturation; and a flood of unique URLs against the instrumented
//!   API: its memory and the collector's series must stay flat.
//! * [`worker`]: the release worker draining no-op jobs, instrumented and traced against
//!   disabled.
//! * [`freshness`]: the native stack on the compose ports (run by xtask's `stack`, which
//!   [`NativeStack`] hands in); seconds from a request to its count being visible in Prometheus.
//!
//! [`services`] starts the servers (Postgres, Redis, Jaeger and the collector from `testkit`, the
//! release API and worker) on free loopback ports, each killed when its guard is dropped, even on
//! error; [`drive`] is the small async HTTP client the API benchmarks use; [`cpu`] says how busy
//! other processes kept the machine during a throughput run; [`traces`] checks that the traced
//! runs, and only they, exported spans, all passed on to Jaeger, and [`lost_spans`] reads how
//! many spans a traced service lost before export, from its own counters.
//!
//! Every run is one sample on a noisy machine: the figures are printed, never asserted. A
//! benchmark that cannot run is reported at the end and makes the command fail, after the others
//! have still run.

mod api;
mod cpu;
mod drive;
mod freshness;
mod http_layer;
mod jobs;
mod lost_spans;
mod services;
mod traces;
mod worker;

/// A process's resident memory, read from `/proc` (the live proofs report it too).
pub use services::rss_bytes;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use testkit::process::human;

/// Measure what the metrics pipeline costs (throughput, per-request overhead) and how it
/// behaves (freshness, memory and series under a URL flood).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Shorter runs (the same figures, noisier).
    #[arg(long)]
    quick: bool,
    /// Run only these benchmarks (repeatable); default: all.
    #[arg(long, value_enum)]
    only: Vec<Section>,
}

/// What the freshness benchmark needs of `cargo xtask stack`, which lives in the xtask binary
/// (a library cannot call into it): xtask hands in its own functions.
#[derive(Debug, Clone, Copy)]
pub struct NativeStack {
    /// Fails, naming the port and what holds it, unless every port of the native stack is free;
    /// the argument says who needs them.
    pub ensure_ports_free: fn(&str) -> anyhow::Result<()>,
    /// Copies the running `cargo xtask` binary into a directory and returns the copy, which runs
    /// `stack up` and, however long the benchmark takes, `stack down` (a rebuild meanwhile may
    /// replace `target/debug/xtask`).
    pub own_copy: fn(&Path) -> anyhow::Result<PathBuf>,
    /// The environment variable that moves the stack's state directory.
    pub dir_env: &'static str,
    /// The file, in the stack's state directory, that holds its API token.
    pub token_file: &'static str,
}

/// One benchmark of the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    /// The criterion benchmark of the HTTP metrics layer.
    HttpLayer,
    /// The criterion benchmark of the API's authentication (token check and rate limit).
    Auth,
    /// API throughput, instrumented and traced vs `OTEL_SDK_DISABLED`.
    Api,
    /// A flood of unique URLs against the instrumented API.
    Flood,
    /// Worker throughput on no-op jobs, instrumented and traced vs disabled.
    Worker,
    /// Request-to-Prometheus freshness through the native stack.
    Freshness,
    /// Job throughput by kind on a 10,000-employee graph.
    Jobs,
}

impl Section {
    const ALL: [Section; 7] = [
        Section::HttpLayer,
        Section::Auth,
        Section::Api,
        Section::Flood,
        Section::Worker,
        Section::Jobs,
        Section::Freshness,
    ];

    fn name(self) -> &'static str {
        match self {
            Section::HttpLayer => "http_layer",
            Section::Auth => "auth",
            Section::Api => "api_throughput",
            Section::Flood => "flood",
            Section::Worker => "worker_throughput",
            Section::Freshness => "freshness",
            Section::Jobs => "jobs_10k",
        }
    }

    /// Whether it needs the release API and worker, Postgres, Redis and a collector.
    fn needs_services(self) -> bool {
        matches!(self, Section::Api | Section::Flood | Section::Worker | Section::Jobs)
    }
}

/// How long each benchmark runs: `--quick` or the full length.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// `--quick`.
    pub quick: bool,
}

impl Plan {
    /// Criterion's arguments (after `--`): quick runs shorten warm-up and measurement; full runs
    /// keep criterion's defaults (3 s warm-up, 5 s measurement per function).
    fn criterion_args(self) -> Vec<&'static str> {
        if self.quick { vec!["--warm-up-time", "1", "--measurement-time", "2"] } else { vec![] }
    }

    /// How long the API is hammered per run, after a 2 s warm-up.
    fn api_measure(self) -> Duration {
        Duration::from_secs(if self.quick { 5 } else { 20 })
    }

    /// Requests of the unique-URL flood.
    fn flood_requests(self) -> u64 {
        if self.quick { 20_000 } else { 100_000 }
    }

    /// No-op jobs the worker drains per run.
    fn worker_jobs(self) -> u64 {
        if self.quick { 500 } else { 3000 }
    }

    /// Freshness measurements (the worst is reported).
    fn freshness_trials(self) -> usize {
        if self.quick { 1 } else { 3 }
    }
}

/// The figures measured so far, in order: `name=value`.
#[derive(Debug, Default)]
pub struct Figures {
    lines: Vec<(String, String)>,
}

impl Figures {
    /// Records a figure, printing it at once on stderr (the final list goes to stdout).
    fn add(&mut self, name: &str, value: String) {
        eprintln!("[bench] {name}={value}");
        self.lines.push((name.to_string(), value));
    }
}

/// Runs the benchmarks `args` select, the freshness one on `stack`; prints the figures.
pub fn command(args: Args, stack: &NativeStack) -> anyhow::Result<()> {
    let started = Instant::now();
    let plan = Plan { quick: args.quick };
    let sections: Vec<Section> = Section::ALL
        .into_iter()
        .filter(|s| args.only.is_empty() || args.only.contains(s))
        .collect();
    eprintln!(
        "[bench] {} run of {} on {} cores; results in {}",
        if plan.quick { "quick" } else { "full" },
        sections.iter().map(|s| s.name()).collect::<Vec<_>>().join(", "),
        std::thread::available_parallelism().map_or(0, usize::from),
        bench_dir().display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the tokio runtime: {e}"))?;
    let mut figures = Figures::default();
    let mut failures = Vec::new();
    let mut fail = |section: Section, e: anyhow::Error| {
        eprintln!("[bench] {} FAILED: {e:#}", section.name());
        failures.push(format!("{}: {e:#}", section.name()));
    };

    if sections.contains(&Section::HttpLayer)
        && let Err(e) = http_layer::run(plan, &mut figures)
    {
        fail(Section::HttpLayer, e);
    }
    if sections.contains(&Section::Auth)
        && let Err(e) = http_layer::auth(plan, &mut figures)
    {
        fail(Section::Auth, e);
    }
    let with_services: Vec<Section> =
        sections.iter().copied().filter(|s| s.needs_services()).collect();
    if !with_services.is_empty() {
        match services::Infra::start() {
            Err(e) => with_services.iter().for_each(|&s| fail(s, anyhow::anyhow!("{e:#}"))),
            Ok(infra) => {
                for section in with_services {
                    let result = match section {
                        Section::Api => api::throughput(plan, &infra, &runtime, &mut figures),
                        Section::Flood => api::flood(plan, &infra, &runtime, &mut figures),
                        Section::Worker => worker::throughput(plan, &infra, &mut figures),
                        Section::Jobs => jobs::per_kind(plan, &infra, &runtime, &mut figures),
                        Section::HttpLayer | Section::Auth | Section::Freshness => continue,
                    };
                    if let Err(e) = result {
                        fail(section, e);
                    }
                }
                eprintln!("[bench] stopping Postgres, Redis, the collector and Jaeger");
                drop(infra);
            }
        }
    }
    if sections.contains(&Section::Freshness)
        && let Err(e) = freshness::run(plan, stack, &runtime, &mut figures)
    {
        fail(Section::Freshness, e);
    }

    eprintln!("\n[bench] done in {}; figures and targets:", human(started.elapsed()));
    for (name, value) in &figures.lines {
        eprintln!("  {name}={value}{}", target_note(name, value));
    }
    for (name, value) in &figures.lines {
        println!("{name}={value}");
    }
    anyhow::ensure!(
        failures.is_empty(),
        "{} benchmark(s) could not run:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    Ok(())
}

/// `   (target ≥ 0.97: met)` for a figure with a target, empty otherwise.
fn target_note(name: &str, value: &str) -> String {
    let Ok(v) = value.parse::<f64>() else { return String::new() };
    let (target, met) = match name {
        "api_throughput_ratio" | "worker_throughput_ratio" => ("≥ 0.97", v >= 0.97),
        "api_throughput_ratio_traced" | "worker_throughput_ratio_traced" => ("≥ 0.95", v >= 0.95),
        "api_spans_dropped_traced" | "worker_spans_dropped_traced" => {
            ("0 (every span exported)", v == 0.0)
        }
        "freshness_s" => ("≤ 32 (export 15 s + scrape 15 s + 2 s)", v <= 32.0),
        "flood_rss_growth_ratio" => ("≈ 1 (flat; ≤ 1.10 counted as flat)", v <= 1.10),
        "flood_series_growth" => ("0", v == 0.0),
        _ => return String::new(),
    };
    format!("   (target {target}: {})", if met { "met" } else { "MISSED" })
}

/// Where cargo puts its builds: `$CARGO_TARGET_DIR` if set (relative to the repo root unless
/// absolute), else `<repo>/target`.
fn target_dir() -> PathBuf {
    let root = testkit::repo_root();
    match std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// `<target>/bench`: the benchmarks' logs and the freshness stack's state.
fn bench_dir() -> PathBuf {
    target_dir().join("bench")
}

/// A fresh, empty `<target>/bench/<name>`.
fn fresh_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = bench_dir().join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| anyhow::anyhow!("removing {}: {e}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

/// The best of the alternating runs of one side (0 if it had none).
fn best_of(runs: &[(services::Telemetry, f64)], side: services::Telemetry) -> f64 {
    runs.iter().filter(|(t, _)| *t == side).map(|(_, v)| *v).fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use services::Telemetry::{Disabled, Instrumented, Traced};

    #[test]
    fn the_best_run_of_each_side_counts() {
        let runs = [
            (Instrumented, 90.0),
            (Disabled, 100.0),
            (Traced, 80.0),
            (Instrumented, 95.0),
            (Disabled, 97.0),
            (Traced, 85.0),
        ];
        assert_eq!(best_of(&runs, Instrumented), 95.0);
        assert_eq!(best_of(&runs, Disabled), 100.0);
        assert_eq!(best_of(&runs, Traced), 85.0);
        assert_eq!(best_of(&runs[..2], Traced), 0.0);
    }

    #[test]
    fn targets_are_judged_and_other_figures_left_alone() {
        assert!(target_note("api_throughput_ratio", "0.98").ends_with("met)"));
        assert!(target_note("worker_throughput_ratio", "0.90").ends_with("MISSED)"));
        assert!(target_note("api_throughput_ratio_traced", "0.96").ends_with("met)"));
        assert!(target_note("worker_throughput_ratio_traced", "0.94").ends_with("MISSED)"));
        assert!(target_note("api_spans_dropped_traced", "0").ends_with("met)"));
        assert!(target_note("worker_spans_dropped_traced", "12").ends_with("MISSED)"));
        assert!(target_note("freshness_s", "31.0").ends_with("met)"));
        assert!(target_note("flood_series_growth", "3").ends_with("MISSED)"));
        assert_eq!(target_note("api_rps_disabled", "1000"), "");
    }

    #[test]
    fn quick_runs_are_shorter() {
        let (quick, full) = (Plan { quick: true }, Plan { quick: false });
        assert!(quick.api_measure() < full.api_measure());
        assert_eq!(quick.flood_requests(), 20_000);
        assert_eq!(full.flood_requests(), 100_000);
        assert_eq!((quick.worker_jobs(), full.worker_jobs()), (500, 3000));
        assert!(full.criterion_args().is_empty());
    }
}
