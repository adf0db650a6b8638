//! `cargo xtask e2e`: the live proof that the dashboards and rules fit the pipeline.
//!
//! It runs the whole native stack (Postgres, Redis, Jaeger, the collector, Alertmanager, Prometheus
//! with the repo's rules, the API, the worker) in a fresh state directory on the compose ports,
//! drives it with the load generator (every endpoint and job kind, bad requests included), and
//! checks: Prometheus' counters equal the load generator's own counts; 10,000 hostile requests and
//! a burst over the rate limit are refused with 4xx, add almost no series and page no one
//! ([`abuse`]); every rule loaded with health `ok`; no alert fires under healthy load; the fault
//! matrix ([`matrix`]: Postgres hung, tables locked, the worker and the API killed, a crash loop, a
//! queue backed up to its cap, Alertmanager and its receiver unreachable, the collector refusing
//! and stopped, Prometheus' rules and config broken, Postgres' connection slots filled, Redis
//! evicting and stopped) fires the alerts that name them, to their receivers or held back by
//! inhibition, and they resolve; every query of every dashboard panel and every recording rule
//! parses and returns data, except the ones named in [`exempt`] with the reason they may be empty;
//! and traces ([`traces`]) go whole from a client's `traceparent` through the API, the queue and
//! the worker into Jaeger, under load, across retries and a collector outage, and every dashboard's
//! trace link finds them.
//! It ends with one `N passed, M failed` line.

mod abuse;
mod checks;
mod faults;
mod ha;
mod jaeger;
mod matrix;
mod platform_faults;
mod prom;
mod record;
mod sink;
mod traces;

use checks::Checks;
use load::{Options, Stop};
use std::process::Command;
use std::time::{Duration, Instant};
use xtask::dashboards;

/// Every API request Prometheus counted (health checks aside).
const COUNT_API_REQUESTS: &str = "sum(http_server_request_duration_seconds_count{job=\"orgraph/api\",http_route!~\"/health/.*\"})";

/// A request slower than this, while the collector is away, counts as slowed down by it.
const SLOW_MS: f64 = 1_000.0;

/// How much the API's resident memory may grow while the collector is away.
const RSS_BOUND_KIB: u64 = 50 * 1024;

/// Which topology the live proof runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// The single-node stack on the compose ports (`cargo xtask stack`).
    #[default]
    Single,
    /// The HA topology of docs/SCALING.md on free ports ([`ha`]).
    Ha,
}

pub fn command(profile: Profile) -> anyhow::Result<()> {
    match profile {
        Profile::Single => single(),
        Profile::Ha => ha::command(),
    }
}

fn single() -> anyhow::Result<()> {
    let started = Instant::now();
    crate::stack::ensure_ports_free("the live proof")?;
    let sink = sink::Sink::start()?;
    let stack = Stack::up()?;
    stack.run(&["status"])?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut checks = Checks::default();
    let result = prove(&mut checks, &stack, &sink, &runtime);
    drop(stack);
    checks.summary(started.elapsed());
    result?;
    anyhow::ensure!(checks.failed() == 0, "{} live-proof checks failed", checks.failed());
    Ok(())
}

/// The live proof's eight steps, in order, with the traces' checks after steps 2, 5 and 8; each
/// check goes to `checks`, and only what stops the proof from going on (the stack cannot be
/// driven) is an error.
fn prove(
    checks: &mut Checks,
    stack: &Stack,
    sink: &sink::Sink,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let proof_started = traces::now_us();
    let report = healthy_load(checks, stack)?;
    let load_ended = traces::now_us();
    nothing_lost(checks, &report);
    traces::export_followed(checks)?;
    let requests = report["total"].as_u64().unwrap_or(0);
    traces::load_complete(checks, (proof_started, load_ended), requests);
    traces::retried_job(checks, &stack.dir.join("exports"))?;
    counted_before_going_on(requests + traces::REQUESTS_SENT);
    abuse::hostile_flood(checks, runtime)?;
    let rules = rules_healthy(checks)?;
    let during = collector_stopped(checks, stack, runtime)?;
    redis_stopped(checks, stack, runtime)?;
    // Step 7, the fault matrix: each fault fires the alert that names it, which reaches its receiver
    // (or is held back by the alert that explains it) and resolves after the fault.
    let accepted_in_faults = matrix::run(checks, stack, sink, runtime)?;
    let accepted = report["by_status"]["202"].as_u64().unwrap_or(0)
        + during.by_status.get("202").copied().unwrap_or(0)
        + accepted_in_faults
        + traces::REQUESTS_SENT;
    every_query_returns_data(checks, runtime, &rules, accepted)?;
    traces::grafana_links_answer(checks, (proof_started, traces::now_us()));
    Ok(())
}

/// Step 1: Healthy load: every endpoint and job kind, bad requests included. Returns the load
/// generator's JSON report.
fn healthy_load(checks: &mut Checks, stack: &Stack) -> anyhow::Result<serde_json::Value> {
    step("healthy load: cargo xtask load --seed-graph 2000 --duration 60s (the README's command)");
    let json = testkit::repo_root().join("target").join("e2e").join("load.json");
    // As a user runs it: the token found in the stack's directory, none in the environment.
    let status = Command::new(&stack.exe)
        .env(crate::stack::STACK_DIR_ENV, &stack.dir)
        .env_remove("API_TOKEN")
        .args(["load", "--seed-graph", "2000", "--duration", "60s", "--rate", "40"])
        .args(["--concurrency", "8", "--seed", "7", "--json"])
        .arg(&json)
        .status()?;
    checks.check(
        "the healthy load exited 0: no 5xx, no transport error, every bad request refused",
        status.success(),
        || format!("cargo xtask load exited {status}"),
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    let bad: u64 = report["bad_by_status"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
    checks.check(
        "bad requests were sent and all refused with a 4xx",
        bad > 0 && report["bad_not_refused"].as_object().is_none_or(|m| m.is_empty()),
        || {
            format!(
                "bad by status {}, not refused {}",
                report["bad_by_status"], report["bad_not_refused"]
            )
        },
    );
    Ok(report)
}

/// Step 2: Nothing lost: Prometheus counts exactly what the client received (the healthy load's
/// `report`), and every job the load accepted finishes.
fn nothing_lost(checks: &mut Checks, report: &serde_json::Value) {
    step("Prometheus' request count equals the load generator's");
    let count = |key: &str| report[key].as_u64().unwrap_or(0);
    let expected = count("total") as f64;
    let counted = wait_for_value(COUNT_API_REQUESTS, |v| v >= expected, Duration::from_secs(90));
    checks.check(
        &format!("requests counted in Prometheus == responses the client received ({expected})"),
        counted == Some(expected),
        || {
            format!(
                "Prometheus {counted:?}, client {expected} (setup included: {})",
                count("setup_requests")
            )
        },
    );
    let idle = wait_for_value(
        "sum(orgraph_queue_jobs{job_state=~\"pending|running\"})",
        |v| v == 0.0,
        Duration::from_secs(180),
    );
    checks.check("the worker drained every queue", idle == Some(0.0), || {
        format!("pending+running: {idle:?}")
    });
    // Let every recording rule see two evaluations over the fresh data.
    std::thread::sleep(Duration::from_secs(35));
}

/// Step 4: Rules load and nothing fires under healthy load. Returns the rules, whose queries step 8
/// runs.
fn rules_healthy(checks: &mut Checks) -> anyhow::Result<Vec<prom::Rule>> {
    step("rules are healthy; no alert fires under healthy load");
    let rules = prom::rules()?;
    let unhealthy: Vec<String> = rules
        .iter()
        .filter(|r| r.health != "ok")
        .map(|r| format!("{} ({}): {} {}", r.name, r.group, r.health, r.error))
        .collect();
    checks.check(
        &format!("all {} rules loaded with health ok", rules.len()),
        !rules.is_empty() && unhealthy.is_empty(),
        || unhealthy.join("\n"),
    );
    let firing: Vec<String> = prom::alerts()?
        .into_iter()
        .filter(|(name, state, labels)| {
            state == "firing" && name != "Watchdog" && !about_this_machine(labels)
        })
        .map(|(n, _, l)| format!("{n} {l}"))
        .collect();
    checks.check("no alert but the Watchdog fires under healthy load", firing.is_empty(), || {
        firing.join("\n")
    });
    Ok(rules)
}

/// Step 5: The collector stopped for 30 s under load: requests keep succeeding at full speed, the
/// API's memory stays bounded, and afterwards Prometheus has counted every request (cumulative
/// temporality: the first export after the restart carries all of them). Returns the report of
/// the load that ran meanwhile.
fn collector_stopped(
    checks: &mut Checks,
    stack: &Stack,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<load::Report> {
    step("fault: the collector stopped for 30 s under load");
    let before = prom::value(COUNT_API_REQUESTS)?.unwrap_or(0.0);
    let rss_before = stack.rss_kib("api");
    let worker_rss_before = stack.rss_kib("worker");
    let lost_before = traces::spans_lost();
    let background = runtime.spawn(load::run(Options {
        stop: Stop::After(Duration::from_secs(60)),
        rate: Some(40.0),
        concurrency: 8,
        seed: 11,
        ..load_options()?
    }));
    std::thread::sleep(Duration::from_secs(10));
    stack.run(&["stop", "collector"])?;
    std::thread::sleep(Duration::from_secs(30));
    let rss_during = stack.rss_kib("api");
    let worker_rss_during = stack.rss_kib("worker");
    stack.run(&["start", "collector"])?;
    let during = runtime.block_on(background)??;
    let p99 = during.latency_ms.p99;
    checks.check(
        &format!(
            "with the collector away, no request failed ({} answered) and p99 ({p99:.0} ms) stayed under {SLOW_MS} ms",
            during.total
        ),
        during.problems(false).is_empty() && p99 < SLOW_MS,
        || format!("p99 {p99} ms; {:?}", during.problems(false)),
    );
    checks.check(
        &format!(
            "the API's memory stayed bounded while the collector was away: {rss_before:?} -> {rss_during:?} KiB (bound +{RSS_BOUND_KIB})"
        ),
        matches!((rss_before, rss_during), (Some(a), Some(b)) if b < a + RSS_BOUND_KIB),
        || format!("RSS before {rss_before:?} KiB, during {rss_during:?} KiB"),
    );
    checks.check(
        &format!(
            "the worker's memory stayed bounded while the collector was away: {worker_rss_before:?} -> {worker_rss_during:?} KiB (bound +{RSS_BOUND_KIB})"
        ),
        matches!((worker_rss_before, worker_rss_during), (Some(a), Some(b)) if b < a + RSS_BOUND_KIB),
        || format!("RSS before {worker_rss_before:?} KiB, during {worker_rss_during:?} KiB"),
    );
    let expected = before + during.total as f64;
    let counted = wait_for_value(COUNT_API_REQUESTS, |v| v >= expected, Duration::from_secs(90));
    checks.check(
        "after the collector's restart Prometheus counts every request (nothing lost)",
        counted == Some(expected),
        || {
            format!(
                "Prometheus {counted:?}, expected {expected} ({before} before + {} during)",
                during.total
            )
        },
    );
    let lost = wait_for_value(traces::LOST_SPANS, |v| v > lost_before, Duration::from_secs(60));
    checks.check(
        &format!(
            "the spans made while the collector was away were dropped and counted ({lost_before} -> {lost:?})"
        ),
        lost.is_some_and(|v| v > lost_before),
        || format!("{} stayed {lost:?}", traces::LOST_SPANS),
    );
    traces::traces_resume(checks)?;
    counted_before_going_on(expected as u64 + 1);
    Ok(during)
}

/// Waits (at most 90 s) until Prometheus counts the `requests` the proof sent so far: the steps
/// after this one count from Prometheus' value when they start.
fn counted_before_going_on(requests: u64) {
    let _ = wait_for_value(COUNT_API_REQUESTS, |v| v >= requests as f64, Duration::from_secs(90));
}

/// Step 6: Redis stopped: reads degrade to L1 and Postgres, no 5xx.
fn redis_stopped(
    checks: &mut Checks,
    stack: &Stack,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    step("fault: Redis stopped under load");
    stack.run(&["stop", "redis"])?;
    let without_redis = runtime.block_on(load::run(Options {
        stop: Stop::After(Duration::from_secs(20)),
        rate: Some(40.0),
        concurrency: 8,
        seed: 12,
        mix: load::Mix::parse("reads=70,updates=30").map_err(anyhow::Error::msg)?,
        ..load_options()?
    }))?;
    checks.check(
        "with Redis down no request got a 5xx",
        without_redis.problems(false).is_empty(),
        || format!("{:?}", without_redis.problems(false)),
    );
    stack.run(&["start", "redis"])
}

/// Step 8: After recovery, every dashboard query and every rule returns data (after the faults, error
/// and failure series exist too), except the named exemptions; and every job accepted (the
/// `accepted` 202s of the runs before, and the recovery's own) finished.
fn every_query_returns_data(
    checks: &mut Checks,
    runtime: &tokio::runtime::Runtime,
    rules: &[prom::Rule],
    accepted: u64,
) -> anyhow::Result<()> {
    step("every dashboard and rule query parses and returns data");
    let recovery = runtime.block_on(load::run(Options {
        stop: Stop::After(Duration::from_secs(30)),
        rate: Some(40.0),
        concurrency: 8,
        seed: 9,
        ..load_options()?
    }))?;
    checks.check("after recovery the load saw no 5xx", recovery.problems(false).is_empty(), || {
        format!("{:?}", recovery.problems(false))
    });
    every_job_finished(checks, accepted + recovery.by_status.get("202").copied().unwrap_or(0));
    // Every recording rule evaluated over the recovery's data: the SLO groups run every minute,
    // and their 5-minute ratios are NaN ("no data") until requests of the last 5 minutes are in.
    std::thread::sleep(Duration::from_secs(35));
    let slo = wait_for_value(
        "job:slo_latency_slow:ratio_rate5m >= 0",
        |_| true,
        Duration::from_secs(150),
    );
    checks.check("the SLO rules recorded the recovery's requests", slo.is_some(), || {
        "job:slo_latency_slow:ratio_rate5m stayed NaN or absent for 150 s".to_string()
    });
    run_every_query(checks, rules);
    infrastructure_series(checks);
    Ok(())
}

/// The series the collector's infrastructure receivers add, per job and per family, as Prometheus
/// holds them now (after every fault): each job within the budget the catalogue documents.
fn infrastructure_series(checks: &mut Checks) {
    for job in otel::catalogue::infrastructure::JOBS {
        // What the receivers serve: not the recording rules' series (`:` in their names) nor the
        // alerts', which carry the job too.
        let selector = format!("{{job=\"{}\", __name__!~\".*:.*|ALERTS.*\"}}", job.job);
        let count = prom::value(&format!("count({selector})"));
        let families = prom::query(&format!("count by (__name__) ({selector})"))
            .unwrap_or_default()
            .iter()
            .map(|s| {
                let name = s["metric"]["__name__"].as_str().unwrap_or_default();
                format!("{name} {}", s["value"][1].as_str().unwrap_or_default())
            })
            .collect::<Vec<_>>();
        println!("    {}: {}", job.job, families.join(", "));
        checks.check(
            &format!(
                "{} adds {count:?} series, within its budget of {}",
                job.job, job.series_budget
            ),
            matches!(count, Ok(Some(n)) if n >= 1.0 && n <= job.series_budget as f64),
            || format!("{count:?}"),
        );
    }
}

/// Every job that got a 202 (`accepted` of them, in every run) is recorded and finished: none was
/// lost to the faults.
fn every_job_finished(checks: &mut Checks, accepted: u64) {
    let finished = wait_until(Duration::from_secs(180), || {
        sql("SELECT count(*) FROM jobs WHERE status NOT IN ('done', 'failed')")
            .is_ok_and(|n| n == "0")
    });
    let recorded = sql("SELECT count(*) FROM jobs");
    checks.check(
        &format!("every accepted job (202 ×{accepted}) is recorded and finished: none lost"),
        finished && recorded.as_deref().ok() == Some(accepted.to_string().as_str()),
        || format!("jobs recorded {recorded:?}, all finished: {finished}"),
    );
}

/// Runs every dashboard panel query and every rule's query: each must run, and return data
/// unless [`exempt`] says why it may not.
fn run_every_query(checks: &mut Checks, rules: &[prom::Rule]) {
    let mut queries: Vec<(String, String)> = dashboards::queries()
        .into_iter()
        .map(|(dashboard, panel, expr)| (format!("dashboard {dashboard} / {panel}"), expr))
        .collect();
    queries.extend(rules.iter().map(|r| (format!("{} rule {}", r.kind, r.name), r.query.clone())));
    let (mut with_data, mut exempted) = (0, 0);
    for (what, expr) in &queries {
        match prom::query(expr) {
            Err(e) => checks.fail(&format!("{what}: does not run"), &format!("{e:#}\n{expr}")),
            Ok(result) if !result.is_empty() => with_data += 1,
            Ok(_) => match exempt(what, expr) {
                Some(reason) => {
                    exempted += 1;
                    println!("    empty, as expected: {what}: {reason}");
                }
                None => checks.fail(&format!("{what}: returns no data"), expr),
            },
        }
    }
    // A summary, not a check: each query that failed is a check of its own above.
    println!(
        "    {} queries run: {with_data} with data, {exempted} empty by design",
        queries.len()
    );
}

/// Queries that may return nothing after the run above, with the reason.
fn exempt(what: &str, expr: &str) -> Option<&'static str> {
    if what.starts_with("alerting rule") {
        return Some("an alert condition; those that must hold under faults are checked above");
    }
    if expr.contains("ALERTS") {
        return Some("lists alerts firing now; the faults are over and nothing fires");
    }
    if what.ends_with("job_instance:process_uptime_seconds:frozen2m") {
        return Some(
            "lists the instances stopped in the last 5 minutes (the collector still serving their \
             last values); the proof's last stop is older (promtool proves it: \
             prometheus/tests/replicas_alerts_test.yaml)",
        );
    }
    None
}

/// Whether an alert is about the host the proof runs on (`service="host"`: its disk), which is the
/// machine's state, not the platform's doing: on a CI machine whose disk is 90% full, the builds
/// before the proof make HostDiskFillingUp's trend point to full, and it is pending (its 30
/// minutes of `for` keep it from firing). The checks that nothing pages leave those out.
fn about_this_machine(labels: &serde_json::Value) -> bool {
    labels["service"].as_str() == Some("host")
}

/// Copies the repo's `prometheus.yml` and the files of its subdirectories `subdirs` into `dir`,
/// for a proof to run (and change) its own copy; returns the copy of `prometheus.yml`.
fn copy_prometheus(dir: &std::path::Path, subdirs: &[&str]) -> anyhow::Result<std::path::PathBuf> {
    let repo = testkit::repo_root().join("prometheus");
    for sub in subdirs {
        std::fs::create_dir_all(dir.join(sub))?;
        for entry in std::fs::read_dir(repo.join(sub))? {
            let path = entry?.path();
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, dir.join(sub).join(name))?;
            }
        }
    }
    let config = dir.join("prometheus.yml");
    std::fs::copy(repo.join("prometheus.yml"), &config)?;
    Ok(config)
}

/// The native stack's Postgres port (compose's).
const POSTGRES_PORT: u16 = 5432;

/// One value from the stack's database (`psql -tA`), as text.
fn sql(query: &str) -> anyhow::Result<String> {
    sql_on(POSTGRES_PORT, query)
}

/// One value from the platform's database on 127.0.0.1:`port` (`psql -tA`), as text.
fn sql_on(port: u16, query: &str) -> anyhow::Result<String> {
    let mut command = psql_on(port, &["-tAc", query])?;
    Ok(testkit::process::output("psql", &mut command, Duration::from_secs(30))?.trim().to_string())
}

/// `psql` connected to the stack's database (the compose port, the superuser), then `args`.
fn psql(args: &[&str]) -> anyhow::Result<Command> {
    psql_on(POSTGRES_PORT, args)
}

/// `psql` connected to the platform's database on 127.0.0.1:`port` as the superuser, then `args`.
fn psql_on(port: u16, args: &[&str]) -> anyhow::Result<Command> {
    let mut command = Command::new(testkit::tools::postgres_bin_dir()?.join("psql"));
    let port = port.to_string();
    command.args(["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-d", "orgraph"]).args(args);
    Ok(command)
}

fn step(text: &str) {
    println!("\n==> live proof: {text}");
}

/// Polls an instant query until `done` holds for its value; returns the last value seen.
fn wait_for_value(expr: &str, done: impl Fn(f64) -> bool, deadline: Duration) -> Option<f64> {
    wait_for_value_on(prom::PROMETHEUS, expr, done, deadline)
}

/// [`wait_for_value`] on the Prometheus-API server at `base`.
fn wait_for_value_on(
    base: &str,
    expr: &str,
    done: impl Fn(f64) -> bool,
    deadline: Duration,
) -> Option<f64> {
    let last = std::cell::Cell::new(None);
    let _ = testkit::wait_for(expr, deadline, || {
        last.set(prom::value_on(base, expr, &[])?);
        Ok(last.get().filter(|v| done(*v)))
    });
    last.get()
}

/// Waits until the API answers its readiness probe with a 200 (its dependencies reachable, its
/// breakers not open).
fn api_ready(deadline: Duration) -> anyhow::Result<()> {
    let url = format!("{}/health/ready", load::DEFAULT_URL);
    testkit::wait_for(&format!("the API to be ready ({url})"), deadline, || {
        Ok(testkit::http_get(&url).is_ok_and(|(status, _)| status == 200).then_some(()))
    })
}

/// Whether `done` holds within `deadline`.
fn wait_until(deadline: Duration, done: impl Fn() -> bool) -> bool {
    testkit::wait_for("a condition", deadline, || Ok(done().then_some(()))).is_ok()
}

/// Settings of the live proof's stack beyond the native defaults: the export threshold and
/// timeout small enough that an export held up by a lock outlives them within the fault matrix
/// (the worker's real configuration, through its variables; the alert rule is the repo's own).
/// Healthy exports of the 2,000-employee graph take tens of milliseconds. And the API's abuse
/// limits where the proof reaches them: its one token's rate limit above the hostile flood's
/// 200/s (the default is 100/s) but below what a burst sends ([`abuse`]); and a job queue of at
/// most 130 pending jobs per kind, which the 115 analyses backed up in the fault matrix and the 30
/// sent after them overflow.
const STACK_ENV: &[(&str, &str)] = &[
    ("EXPORT_SLOW_MS", "1000"),
    ("TIMEOUT_EXPORT_MS", "2000"),
    ("API_RATE_LIMIT_PER_S", "250"),
    ("API_RATE_LIMIT_BURST", "250"),
    ("API_MAX_QUEUED_JOBS", "130"),
];

/// The live proof's stack state (`stack up` makes its API token there).
fn stack_dir() -> std::path::PathBuf {
    testkit::repo_root().join("target").join("e2e").join("stack")
}

/// The load generator's options with the stack's API token; the rest as [`Options::default`].
fn load_options() -> anyhow::Result<Options> {
    let file = stack_dir().join(crate::stack::tokens::ADMIN_TOKEN_FILE);
    let token = std::fs::read_to_string(&file)
        .map_err(|e| anyhow::anyhow!("reading the stack's API token {}: {e}", file.display()))?;
    Ok(Options { token: Some(token.trim().to_string()), ..Options::default() })
}

/// The native stack in `target/e2e/stack`, brought up by this very binary's `stack up` and taken
/// down on drop.
struct Stack {
    dir: std::path::PathBuf,
    /// A copy of this binary: `cargo test` may have replaced `target/debug/xtask` meanwhile.
    exe: std::path::PathBuf,
    /// The `prometheus.yml` Prometheus runs: in a copy of the repo's `prometheus/` (config, rules,
    /// targets), which the fault matrix may break and restore.
    prometheus_config: std::path::PathBuf,
}

impl Stack {
    fn up() -> anyhow::Result<Stack> {
        let e2e = testkit::repo_root().join("target").join("e2e");
        let dir = stack_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        let exe = crate::stack::own_copy(&e2e)?;
        let prometheus_dir = e2e.join("prometheus");
        if prometheus_dir.exists() {
            std::fs::remove_dir_all(&prometheus_dir)?;
        }
        let prometheus_config = copy_prometheus(&prometheus_dir, &["rules", "targets"])?;
        let stack = Stack { dir, exe, prometheus_config };
        step("cargo xtask stack up (fresh state in target/e2e/stack)");
        stack.run(&["up"])?;
        Ok(stack)
    }

    /// A service's resident memory, from its pid file and `/proc`.
    fn rss_kib(&self, service: &str) -> Option<u64> {
        let pid = std::fs::read_to_string(self.dir.join(format!("{service}.pid"))).ok()?;
        bench::rss_bytes(pid.trim().parse().ok()?).ok().map(|bytes| bytes / 1024)
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        self.run_with(args, &[])
    }

    /// `stack <args>` with `env` on top of [`STACK_ENV`] (the services it starts inherit both).
    fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
        let status = Command::new(&self.exe)
            .arg("stack")
            .args(args)
            .env(crate::stack::STACK_DIR_ENV, &self.dir)
            .env(crate::stack::PROMETHEUS_CONFIG_ENV, &self.prometheus_config)
            .envs(STACK_ENV.iter().chain(env).copied())
            .status()?;
        anyhow::ensure!(status.success(), "cargo xtask stack {} failed", args.join(" "));
        Ok(())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        step("cargo xtask stack down");
        if let Err(e) = self.run(&["down"]) {
            eprintln!("warning: {e:#}");
        }
    }
}
