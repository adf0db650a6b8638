//! Chaos: while the three job kinds flow through the API's HTTP endpoints, Postgres is SIGKILLed
//! and SIGSTOPped, the worker is SIGKILLed mid-job and the API's pool is saturated, at moments
//! drawn from a seed. Afterwards, with no fault left, the invariants must hold: every accepted job
//! ends `done` or `failed` (with a reason), every done export has exactly its one file, every
//! intervention changed the graph exactly once (and a rollback undid it), the reporting lines have
//! no loop, the worker's `orgraph_task_completed_total` read from a real Prometheus equals the jobs
//! table, and the API answered 503 problems during the faults, never a 500 and never a hang.
//!
//! The other tests prove each mechanism alone; this one exists because the failures that matter
//! happen where they meet: a connection lost while a job records its outcome, a job handed out
//! again after its worker died, callers queueing for a pool whose connections wait on a lock, an
//! OTLP export that dies with the process.
//!
//! The seed comes from `CHAOS_SEED` (default 1) and decides the fault schedule and the requests;
//! a failing run prints it. Replay one with
//! `CHAOS_SEED=N cargo test -p worker --test chaos -- --nocapture`.

mod support;

use otel::FromEnv;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Employees of the seeded graph.
const EMPLOYEES: u32 = 2000;
/// The API's settings: a small pool, so a locked table saturates it.
const PG_POOL_MAX: &str = "4";
const PG_POOL_TIMEOUT_MS: u64 = 1000;
const REQUEST_TIMEOUT_MS: u64 = 5000;
/// A request unanswered this long hangs (the API's own timeout plus a margin).
const CLIENT_TIMEOUT: Duration = Duration::from_millis(REQUEST_TIMEOUT_MS + 3000);
/// The worker's metric export interval; Prometheus scrapes the collector as often.
const EXPORT_INTERVAL_MS: u64 = 1000;
/// How long before a SIGKILL of the worker no job may have finished: increments recorded since
/// the last export die with the process.
const QUIET_BEFORE_KILL: Duration = Duration::from_millis(EXPORT_INTERVAL_MS * 5 / 2);
/// The worker's heartbeat: a killed worker's job runs again after 5 missed beats (5 s), longer
/// than any SIGSTOP of Postgres here, so a merely paused worker never loses its jobs.
const HEARTBEAT_MS: &str = "1000";
const MISSED_HEARTBEATS: &str = "5";
/// How long the load runs with faults.
const CHAOS_FOR: Duration = Duration::from_secs(130);
/// Bounds of the waits after the chaos.
const SETTLE_DEADLINE: Duration = Duration::from_secs(90);
const METRICS_DEADLINE: Duration = Duration::from_secs(60);
/// The root of the generated graph (the CEO): reporting to them can never close a loop.
const ROOT: i64 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_database_chaos() {
    let seed: u64 = match std::env::var("CHAOS_SEED") {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().unwrap_or_else(|_| panic!("CHAOS_SEED={v:?} is not a number"))
        }
        _ => 1,
    };
    println!("chaos: CHAOS_SEED={seed}");
    let started = Instant::now();
    let mut rng = Rng::new(seed);

    // Real dependencies on free ports.
    let (pg, redis, collector) = tokio::task::spawn_blocking(|| {
        let pg = testkit::Postgres::start().expect("postgres starts");
        let redis = testkit::Redis::start().expect("redis starts");
        let collector = testkit::Collector::start().expect(
            "the collector starts (missing? build the pinned tools with `cargo xtask tools`)",
        );
        (pg, redis, collector)
    })
    .await
    .expect("dependencies start");
    let pg_url = pg.url();
    // testkit's throwaway cluster commits asynchronously (`synchronous_commit=off`): a commit is
    // acknowledged before its WAL is written, so a SIGKILL of the server can lose transactions the
    // API already answered 202 for. Real servers commit synchronously; so does this database.
    pg.psql(&pg.admin_url(), "ALTER DATABASE orgraph SET synchronous_commit = on")
        .expect("synchronous commits for the orgraph database");
    let pg = Arc::new(Mutex::new(pg));
    let stopped = StoppedProcesses::default();
    let scratch = support::scratch_dir("chaos");
    let export_dir = scratch.join("exports");
    std::fs::create_dir_all(&export_dir).expect("export dir");
    let worker_log = scratch.join("worker.log");
    let _context = OnFailure { seed, worker_log: worker_log.clone(), pg: pg.clone() };
    let prometheus = Prometheus::start(&scratch, &collector.prometheus_url())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));

    let api = InProcessApi::start(&pg_url, &redis.url()).unwrap_or_else(|e| panic!("{e:#}"));
    let faults = Arc::new(FaultClock::default());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let client = Api {
        client: reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .no_proxy()
            .build()
            .expect("http client"),
        base: api.base.clone(),
        tally: tally.clone(),
        faults: faults.clone(),
    };
    eventually("the API to be ready", Duration::from_secs(30), async || {
        client.call(Method::GET, "/health/ready", None).await.filter(|(s, _)| *s == 200)
    })
    .await;
    let seeded = client
        .call(
            Method::POST,
            "/api/graph/seed",
            Some(json!({"employees": EMPLOYEES, "avg_reports": 5, "seed": seed})),
        )
        .await;
    assert!(matches!(seeded, Some((201, _))), "seeding the graph: {seeded:?}");
    let db = PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(3))
        .connect(&pg_url)
        .await
        .expect("the test's own pool connects");
    let initial = managers(&db).await.expect("reading the reporting lines");
    assert_eq!(initial.len(), EMPLOYEES as usize - 1, "everyone but the root has a manager");

    let mut worker = WorkerProcess {
        child: None,
        log: worker_log.clone(),
        env: vec![
            ("DATABASE_URL".into(), pg_url.clone()),
            ("EXPORT_DIR".into(), export_dir.display().to_string()),
            ("HEARTBEAT_MS".into(), HEARTBEAT_MS.into()),
            ("MISSED_HEARTBEATS".into(), MISSED_HEARTBEATS.into()),
            ("OTEL_SDK_DISABLED".into(), "false".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), collector.otlp_grpc_endpoint()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "grpc".into()),
            ("OTEL_METRIC_EXPORT_INTERVAL".into(), EXPORT_INTERVAL_MS.to_string()),
            ("OTEL_RESOURCE_ATTRIBUTES".into(), "service.namespace=orgraph".into()),
            ("OTEL_TRACES_EXPORTER".into(), "none".into()),
            ("RUST_LOG".into(), "info".into()),
            ("LOG_FORMAT".into(), "json".into()),
        ],
        health: String::new(),
        starts: 0,
    };
    worker.start(&client.client).await.unwrap_or_else(|e| panic!("{e:#}"));
    println!("chaos: set up in {:.1}s", started.elapsed().as_secs_f64());

    // The load: all three job kinds through the API, until told to stop.
    let control = Arc::new(Control::default());
    let mut candidates: Vec<i64> =
        initial.iter().filter(|(_, m)| **m != ROOT).map(|(e, _)| *e).collect();
    candidates.sort_unstable();
    rng.shuffle(&mut candidates);
    let load = tokio::spawn(drive_load(
        client.clone(),
        Rng::new(rng.next()),
        control.clone(),
        candidates,
        initial.clone(),
        seed,
    ));

    let rig = Rig {
        db: db.clone(),
        pg: pg.clone(),
        stopped,
        api: client.clone(),
        pg_url: pg_url.clone(),
    };

    // The faults, at seeded moments: each kind at least once, some more at random.
    let mut plan =
        vec![FaultKind::PgKill, FaultKind::PgStop, FaultKind::WorkerKill, FaultKind::Saturate];
    for _ in 0..rng.between(1, 3) {
        let extra =
            [FaultKind::PgKill, FaultKind::PgStop, FaultKind::Saturate, FaultKind::WorkerKill];
        plan.push(extra[rng.below(extra.len() as u64) as usize]);
    }
    rng.shuffle(&mut plan);
    println!("chaos: fault plan {plan:?}");
    let chaos_started = Instant::now();
    let mut reports: Vec<FaultReport> = Vec::new();
    let mut extra_accepted: Vec<(Uuid, String)> = Vec::new();
    let gap_budget = CHAOS_FOR.as_millis() as u64 / (plan.len() as u64 + 1);
    for kind in plan {
        let gap = rng.millis(gap_budget / 3, gap_budget);
        tokio::time::sleep(gap).await;
        let at = chaos_started.elapsed();
        let mut report =
            FaultReport { kind, at, detail: String::new(), ready_503: 0, unavailable: 0 };
        match kind {
            FaultKind::PgKill => {
                let fault = PgFault::Kill(rng.millis(200, 1000), rng.millis(1500, 3000));
                pg_fault(&rig, &mut report, fault, rng.between(2, 8), &mut extra_accepted)
                    .await
                    .unwrap_or_else(|e| panic!("SIGKILL of postgres: {e:#}"));
            }
            FaultKind::PgStop => {
                let fault = PgFault::Stop(rng.millis(3000, 5000));
                pg_fault(&rig, &mut report, fault, rng.between(2, 8), &mut extra_accepted)
                    .await
                    .unwrap_or_else(|e| panic!("SIGSTOP of postgres: {e:#}"));
            }
            FaultKind::Saturate => {
                saturate(&rig, &mut report, rng.millis(2000, 4000))
                    .await
                    .unwrap_or_else(|e| panic!("saturating the API's pool: {e:#}"));
            }
            FaultKind::WorkerKill => {
                let delay = rng.millis(0, 300);
                let accepted = kill_worker_mid_job(&rig, &mut worker, &control, &mut report, delay)
                    .await
                    .unwrap_or_else(|e| panic!("SIGKILL of the worker mid-job: {e:#}"));
                extra_accepted.extend(accepted.into_iter().map(|id| (id, "analysis".to_string())));
            }
        }
        println!(
            "chaos: +{:.1}s {:?} done after {:.1}s: {}",
            at.as_secs_f64(),
            kind,
            chaos_started.elapsed().as_secs_f64() - at.as_secs_f64(),
            report.detail
        );
        reports.push(report);
        assert!(
            worker.exited().is_none(),
            "the worker exited by itself during the chaos (replay with CHAOS_SEED={seed})"
        );
    }
    if let Some(rest) = CHAOS_FOR.checked_sub(chaos_started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    control.stop.store(true, Ordering::SeqCst);
    let mut load = tokio::time::timeout(Duration::from_secs(60), load)
        .await
        .expect("the load stops within 60 s")
        .expect("the load task does not panic");
    load.accepted.extend(extra_accepted);
    println!(
        "chaos: load ran {:.1}s; settling (no fault left)",
        chaos_started.elapsed().as_secs_f64()
    );

    // Every job ends, within a bound.
    let settle_started = Instant::now();
    let jobs = loop {
        let jobs = match all_jobs(&db).await {
            Ok(jobs) => jobs,
            Err(e) => panic!("reading the jobs table: {e:#}"),
        };
        let open: Vec<&JobRecord> =
            jobs.iter().filter(|j| j.status == "pending" || j.status == "running").collect();
        if open.is_empty() {
            break jobs;
        }
        if settle_started.elapsed() > SETTLE_DEADLINE {
            let listed: Vec<String> = open
                .iter()
                .map(|j| {
                    format!(
                        "{} {} {} attempts {} error {:?}",
                        j.id, j.kind, j.status, j.attempts, j.error
                    )
                })
                .collect();
            let postmaster = lock(&pg).pid();
            let state = stuck(&db, &worker, postmaster).await;
            panic!(
                "timed out after {SETTLE_DEADLINE:?} waiting for every job to be done or failed; \
                 {} still open:\n{}\n{state}",
                open.len(),
                listed.join("\n"),
            );
        }
        assert!(worker.exited().is_none(), "the worker exited while jobs were settling");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!(
        "chaos: every job finished {:.1}s after the load",
        settle_started.elapsed().as_secs_f64()
    );

    let mut violations: Vec<String> = Vec::new();
    check_jobs(&jobs, &load.accepted, &mut violations);
    check_exports(&jobs, &export_dir, &mut violations);
    check_interventions(&db, &jobs, &load.interventions, &initial, &mut violations).await;
    let metrics = check_metrics(&prometheus, &jobs, &mut violations).await;
    check_api(&tally.lock().expect("tally"), &reports, &mut violations);

    let redelivered = redeliveries(&db).await;
    print_summary(seed, started, &load, &jobs, &reports, &tally.lock().expect("tally"), &metrics);
    println!("jobs apalis handed out more than once: {}", redelivered.len());
    for line in &redelivered {
        println!("  {line}");
    }
    assert!(
        violations.is_empty(),
        "{} invariant(s) broken:\n- {}\nreplay with CHAOS_SEED={seed}",
        violations.len(),
        violations.join("\n- ")
    );
    drop(worker);
    api.stop();
    drop(prometheus);
    std::fs::remove_dir_all(&scratch).ok();
}

// ---------------------------------------------------------------------------------------------
// The load

/// Pauses and stops the load.
#[derive(Default)]
struct Control {
    paused: AtomicBool,
    /// Set by the load while it is paused (no request of it in flight).
    parked: AtomicBool,
    stop: AtomicBool,
}

impl Control {
    async fn pause(&self) -> anyhow::Result<()> {
        self.paused.store(true, Ordering::SeqCst);
        let until = Instant::now() + Duration::from_secs(30);
        while !self.parked.load(Ordering::SeqCst) {
            anyhow::ensure!(Instant::now() < until, "the load did not pause within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    fn resume(&self) {
        self.parked.store(false, Ordering::SeqCst);
        self.paused.store(false, Ordering::SeqCst);
    }
}

/// What the load did.
#[derive(Default)]
struct Load {
    /// Every job the API accepted (202), with its kind.
    accepted: Vec<(Uuid, String)>,
    /// Every intervention the API created (201).
    interventions: Vec<Planned>,
    /// Requests by what they asked for.
    submitted: BTreeMap<&'static str, u64>,
}

/// One proposed intervention and what became of its jobs.
#[derive(Debug, Clone)]
struct Planned {
    id: Uuid,
    employee: i64,
    /// The manager before the proposal.
    before: i64,
    want_rollback: bool,
    execute: Option<Uuid>,
    execute_tries: u32,
    rollback: Option<Uuid>,
    rollback_tries: u32,
    /// Looks at the execution's job while waiting to roll it back.
    polls: u32,
}

async fn drive_load(
    api: Api,
    mut rng: Rng,
    control: Arc<Control>,
    mut candidates: Vec<i64>,
    initial: HashMap<i64, i64>,
    seed: u64,
) -> Load {
    let mut load = Load::default();
    let mut proposals = 0u64;
    while !control.stop.load(Ordering::SeqCst) {
        if control.paused.load(Ordering::SeqCst) {
            control.parked.store(true, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        control.parked.store(false, Ordering::SeqCst);
        match rng.below(10) {
            0..=1 => {
                *load.submitted.entry("analysis").or_default() += 1;
                let body = json!({"iterations": rng.between(5, 40), "samples": rng.between(8, 64)});
                if let Some(id) =
                    accepted(api.call(Method::POST, "/api/analysis", Some(body)).await)
                {
                    load.accepted.push((id, "analysis".into()));
                }
            }
            2..=4 => {
                *load.submitted.entry("export").or_default() += 1;
                let format = if rng.chance(50) { "csv" } else { "jsonl" };
                let body = json!({"kind": "employee_metrics", "format": format});
                if let Some(id) = accepted(api.call(Method::POST, "/api/exports", Some(body)).await)
                {
                    load.accepted.push((id, "export".into()));
                }
            }
            _ => {
                if let Some(employee) = candidates.pop() {
                    *load.submitted.entry("intervention").or_default() += 1;
                    proposals += 1;
                    let body = json!({
                        "kind": "reassign",
                        "employee_id": employee,
                        "new_manager_id": ROOT,
                        "reason": format!("chaos seed {seed}, proposal {proposals}"),
                    });
                    let reply = api.call(Method::POST, "/api/interventions", Some(body)).await;
                    if let Some((201, body)) = reply {
                        let id = body["id"].as_str().and_then(|s| s.parse().ok());
                        if let Some(id) = id {
                            load.interventions.push(Planned {
                                id,
                                employee,
                                before: initial[&employee],
                                want_rollback: rng.chance(40),
                                execute: None,
                                execute_tries: 0,
                                rollback: None,
                                rollback_tries: 0,
                                polls: 0,
                            });
                            let planned = load.interventions.last_mut().expect("just pushed");
                            execute(&api, planned, &mut load.accepted).await;
                        }
                    }
                }
            }
        }
        // Move one earlier intervention on: an execute the API refused during a fault, or a
        // rollback of an executed one.
        let waiting: Vec<usize> = (0..load.interventions.len())
            .filter(|&i| {
                let p = &load.interventions[i];
                (p.execute.is_none() && p.execute_tries < 5)
                    || (p.want_rollback
                        && p.execute.is_some()
                        && p.rollback.is_none()
                        && p.rollback_tries < 5
                        && p.polls < 40)
            })
            .collect();
        if !waiting.is_empty() && rng.chance(60) {
            let i = waiting[rng.below(waiting.len() as u64) as usize];
            let planned = &mut load.interventions[i];
            if planned.execute.is_none() {
                execute(&api, planned, &mut load.accepted).await;
            } else if let Some(job) = planned.execute {
                planned.polls += 1;
                let reply = api.call(Method::GET, &format!("/api/jobs/{job}"), None).await;
                match reply {
                    Some((200, body)) if body["status"] == "done" => {
                        planned.rollback_tries += 1;
                        let path = format!("/api/interventions/{}/rollback", planned.id);
                        if let Some(id) = accepted(api.call(Method::POST, &path, None).await) {
                            planned.rollback = Some(id);
                            load.accepted.push((id, "intervention_rollback".into()));
                        }
                    }
                    // Failed for good: nothing to roll back.
                    Some((200, body)) if body["status"] == "failed" => planned.rollback_tries = 99,
                    _ => {}
                }
            }
        }
        tokio::time::sleep(rng.millis(100, 450)).await;
    }
    load
}

/// Queues the execution of `planned`.
async fn execute(api: &Api, planned: &mut Planned, accepted_jobs: &mut Vec<(Uuid, String)>) {
    planned.execute_tries += 1;
    let path = format!("/api/interventions/{}/execute", planned.id);
    let reply = api.call(Method::POST, &path, None).await;
    match reply {
        Some((202, _)) => {
            if let Some(id) = accepted(reply) {
                planned.execute = Some(id);
                accepted_jobs.push((id, "intervention_execute".into()));
            }
        }
        // A 503 that came after the commit: the job exists but its id never reached us. The
        // checks read the intervention's jobs from the table, so stop asking.
        Some((409, _)) => planned.execute_tries = 99,
        _ => {}
    }
}

/// The job id of a 202.
fn accepted(reply: Option<(u16, Value)>) -> Option<Uuid> {
    match reply {
        Some((202, body)) => body["id"].as_str().and_then(|s| s.parse().ok()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The API, in process, and every answer it gave

/// The API on its own runtime (as in its own process), so the test's work never delays it.
struct InProcessApi {
    base: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl InProcessApi {
    fn start(pg_url: &str, redis_url: &str) -> anyhow::Result<InProcessApi> {
        let vars: Vec<(&str, String)> = vec![
            ("DATABASE_URL", pg_url.to_string()),
            ("REDIS_URL", redis_url.to_string()),
            ("PG_POOL_MAX", PG_POOL_MAX.to_string()),
            ("PG_POOL_TIMEOUT_MS", PG_POOL_TIMEOUT_MS.to_string()),
            ("BREAKER_OPEN_MS", "1000".to_string()),
            ("BREAKER_FAILURES", "3".to_string()),
            ("REQUEST_TIMEOUT_MS", REQUEST_TIMEOUT_MS.to_string()),
            ("REDIS_POOL_TIMEOUT_MS", "300".to_string()),
            ("GRAPH_METRICS_INTERVAL_MS", "1000".to_string()),
        ];
        let config = api::Config::from_lookup(|k| {
            vars.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone())
        })?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let base = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("chaos-api".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                api::run(config, listener, async {
                    let _ = rx.await;
                })
                .await
            })
        })?;
        Ok(InProcessApi { base, shutdown: Some(tx), thread: Some(thread) })
    }

    /// Stops the API and waits (at most 10 s) for it.
    fn stop(mut self) {
        self.stop_in_place();
    }

    fn stop_in_place(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let until = Instant::now() + Duration::from_secs(10);
            while !thread.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if thread.is_finished() {
                match thread.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("chaos: the API stopped with an error: {e:#}"),
                    Err(_) => eprintln!("chaos: the API thread panicked"),
                }
            }
        }
    }
}

impl Drop for InProcessApi {
    fn drop(&mut self) {
        self.stop_in_place();
    }
}

/// Whether a fault is on (or just ended: the breaker and the pool recover within a few seconds).
#[derive(Default)]
struct FaultClock {
    active: Mutex<Option<FaultKind>>,
    ended: Mutex<Option<(FaultKind, Instant)>>,
}

impl FaultClock {
    fn begin(&self, kind: FaultKind) {
        *lock(&self.active) = Some(kind);
    }

    fn end(&self) {
        if let Some(kind) = lock(&self.active).take() {
            *lock(&self.ended) = Some((kind, Instant::now()));
        }
    }

    /// The fault on now, or one that ended less than 5 s ago.
    fn current(&self) -> Option<String> {
        if let Some(kind) = *lock(&self.active) {
            return Some(format!("{kind:?}"));
        }
        let ended = *lock(&self.ended);
        ended
            .filter(|(_, at)| at.elapsed() < Duration::from_secs(5))
            .map(|(kind, at)| format!("{:.1}s after {kind:?}", at.elapsed().as_secs_f64()))
    }
}

/// Every answer of the API, by status, and what must not happen.
#[derive(Default)]
struct Tally {
    by_status: BTreeMap<u16, u64>,
    by_route: BTreeMap<(String, u16), u64>,
    unavailable_in_faults: u64,
    unavailable_outside: Vec<String>,
    server_errors: Vec<String>,
    not_problems: Vec<String>,
    hangs: Vec<String>,
    transport: Vec<String>,
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    tally: Arc<Mutex<Tally>>,
    faults: Arc<FaultClock>,
}

impl Api {
    /// One request, recorded. `None` if no answer came (a hang or a transport error).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Option<(u16, Value)> {
        let fault = self.faults.current();
        let started = Instant::now();
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let what = format!("{method} {path}");
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let problem = response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/problem+json"));
                response.text().await.map(|text| (status, problem, text))
            }
            Err(e) => Err(e),
        };
        let fault = fault.or_else(|| self.faults.current());
        let mut tally = lock(&self.tally);
        let (status, problem, text) = match answer {
            Ok(answer) => answer,
            Err(e) if e.is_timeout() => {
                tally.hangs.push(format!(
                    "{what} unanswered after {:.1}s (fault: {fault:?})",
                    started.elapsed().as_secs_f64()
                ));
                return None;
            }
            Err(e) => {
                tally.transport.push(format!("{what}: {e:#} (fault: {fault:?})"));
                return None;
            }
        };
        *tally.by_status.entry(status).or_default() += 1;
        *tally.by_route.entry((route_of(&method, path), status)).or_default() += 1;
        let short: String = text.chars().take(300).collect();
        if status >= 500 && status != 503 {
            tally.server_errors.push(format!("{what} -> {status} (fault: {fault:?}): {short}"));
        }
        if status >= 400 && !problem {
            tally.not_problems.push(format!("{what} -> {status} without a problem: {short}"));
        }
        if status == 503 && problem {
            if fault.is_some() {
                tally.unavailable_in_faults += 1;
            } else {
                tally.unavailable_outside.push(format!("{what}: {short}"));
            }
        }
        drop(tally);
        Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// The route template of a path, for the tally (ids replaced).
fn route_of(method: &Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path
        .split('/')
        .map(|p| if p.parse::<Uuid>().is_ok() || p.parse::<i64>().is_ok() { "{id}" } else { p })
        .collect();
    format!("{method} {}", parts.join("/"))
}

// ---------------------------------------------------------------------------------------------
// The faults

/// What the faults act on.
struct Rig {
    db: PgPool,
    pg: Arc<Mutex<testkit::Postgres>>,
    stopped: StoppedProcesses,
    api: Api,
    pg_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FaultKind {
    /// Postgres (postmaster and every child) SIGKILLed, then started again.
    PgKill,
    /// Postgres (postmaster and every child) SIGSTOPped past the pool timeout, then SIGCONT.
    PgStop,
    /// The worker SIGKILLed while a job runs, then started again.
    WorkerKill,
    /// `employees` locked while readers hit the API: callers wait past the pool timeout.
    Saturate,
}

struct FaultReport {
    kind: FaultKind,
    at: Duration,
    detail: String,
    /// `/health/ready` answers 503 naming postgres (Postgres faults).
    ready_503: u64,
    /// 503 problems the fault's own readers got (saturation).
    unavailable: u64,
}

enum PgFault {
    /// Frozen for the first duration, then killed, down for the second.
    Kill(Duration, Duration),
    Stop(Duration),
}

/// SIGKILLs or SIGSTOPs Postgres with every child process, preferably while a job runs, polling
/// readiness throughout.
async fn pg_fault(
    rig: &Rig,
    report: &mut FaultReport,
    fault: PgFault,
    burst: u64,
    accepted_jobs: &mut Vec<(Uuid, String)>,
) -> anyhow::Result<()> {
    let Rig { db, pg, stopped, api, .. } = rig;
    let faults = &api.faults;
    // A burst of exports first, so that several jobs are in flight when the fault hits.
    for i in 0..burst {
        let format = if i % 2 == 0 { "csv" } else { "jsonl" };
        let body = json!({"kind": "employee_metrics", "format": format});
        if let Some(id) = accepted(api.call(Method::POST, "/api/exports", Some(body)).await) {
            accepted_jobs.push((id, "export".into()));
        }
    }
    let in_flight = running_jobs(db, 2, Duration::from_secs(3)).await;
    let in_flight = if in_flight.is_empty() { "none".to_string() } else { in_flight.join(", ") };
    let postmaster = lock(pg).pid().ok_or_else(|| anyhow::anyhow!("postgres is not running"))?;
    faults.begin(report.kind);
    let polling = Arc::new(AtomicBool::new(true));
    let poller = tokio::spawn(poll_ready(api.clone(), polling.clone()));
    // The postmaster first: once stopped (not merely signalled: a fork in progress completes), it
    // can fork no new backend, so its children can be listed completely.
    stopped.add(&[postmaster]);
    signal(&[postmaster], "STOP").await?;
    wait_stopped(&[postmaster], Duration::from_secs(5)).await?;
    let children = children_of(postmaster);
    let mut all = vec![postmaster];
    all.extend(&children);
    let result = async {
        match fault {
            PgFault::Kill(frozen, down) => {
                // Frozen a moment first, so that the work in flight piles up on the server, and
                // so that no backend outlives the postmaster even for an instant (one would
                // notice and exit by itself instead of being killed).
                stopped.add(&children);
                signal(&children, "STOP").await?;
                tokio::time::sleep(frozen).await;
                signal(&all, "KILL").await?;
                wait_gone(&all, Duration::from_secs(10)).await?;
                tokio::time::sleep(down).await;
                let pg = pg.clone();
                tokio::task::spawn_blocking(move || lock(&pg).start_again()).await??;
                report.detail = format!(
                    "froze {} processes {:.1}s, killed them (jobs running: {in_flight}), down \
                     {:.1}s",
                    all.len(),
                    frozen.as_secs_f64(),
                    down.as_secs_f64()
                );
            }
            PgFault::Stop(hold) => {
                stopped.add(&all);
                signal(&children, "STOP").await?;
                wait_stopped(&all, Duration::from_secs(5)).await?;
                let late: Vec<u32> =
                    children_of(postmaster).into_iter().filter(|c| !all.contains(c)).collect();
                anyhow::ensure!(
                    late.is_empty(),
                    "the stopped postmaster has new children {late:?}"
                );
                tokio::time::sleep(hold).await;
                signal(&all, "CONT").await?;
                wait_continued(&all, Duration::from_secs(5)).await?;
                report.detail = format!(
                    "stopped {} processes {:.1}s (jobs running: {in_flight})",
                    all.len(),
                    hold.as_secs_f64()
                );
            }
        }
        anyhow::Ok(())
    }
    .await;
    if result.is_ok() {
        stopped.clear();
    }
    faults.end();
    // Readiness is polled until it says ready again, or 30 s.
    let recovered = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = api.call(Method::GET, "/health/ready", None).await;
        if matches!(ready, Some((200, _))) || Instant::now() > recovered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    polling.store(false, Ordering::SeqCst);
    let answers = poller.await?;
    report.ready_503 = answers.get("503 naming postgres").copied().unwrap_or(0);
    report.detail = format!("{}; readiness during it: {answers:?}", report.detail);
    result
}

/// Polls `/health/ready` while `on`; returns its answers, by kind.
async fn poll_ready(api: Api, on: Arc<AtomicBool>) -> BTreeMap<String, u64> {
    let mut answers = BTreeMap::new();
    while on.load(Ordering::SeqCst) {
        let answer = match api.call(Method::GET, "/health/ready", None).await {
            Some((503, body))
                if body["detail"].as_str().is_some_and(|d| d.contains("postgres")) =>
            {
                "503 naming postgres".to_string()
            }
            Some((status, body)) if status != 200 => format!("{status} {}", body["detail"]),
            Some((status, _)) => status.to_string(),
            None => "no answer".to_string(),
        };
        *answers.entry(answer).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    answers
}

/// The jobs running right now (kind and id), waiting up to `wait` for at least `least` of them
/// (then taking what runs).
async fn running_jobs(db: &PgPool, least: usize, wait: Duration) -> Vec<String> {
    let until = Instant::now() + wait;
    loop {
        let rows = sqlx::query("SELECT id, kind FROM jobs WHERE status = 'running'")
            .fetch_all(db)
            .await
            .unwrap_or_default();
        if rows.len() >= least || Instant::now() >= until {
            return rows
                .iter()
                .map(|r| format!("{} {}", r.get::<String, _>("kind"), r.get::<Uuid, _>("id")))
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Locks `employees` for `hold` while readers hit `/api/graph/nodes`: the API's few pooled
/// connections wait on the lock, and callers behind them wait past the pool timeout.
async fn saturate(rig: &Rig, report: &mut FaultReport, hold: Duration) -> anyhow::Result<()> {
    use sqlx::Connection;
    let (api, faults) = (&rig.api, &rig.api.faults);
    let mut conn = sqlx::PgConnection::connect(&rig.pg_url).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '10s'").execute(&mut *tx).await?;
    sqlx::query("LOCK TABLE employees IN ACCESS EXCLUSIVE MODE").execute(&mut *tx).await?;
    faults.begin(report.kind);
    let reading = Arc::new(AtomicBool::new(true));
    let readers: Vec<_> = (0..10)
        .map(|i| {
            let (api, reading) = (api.clone(), reading.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while reading.load(Ordering::SeqCst) {
                    let path = format!("/api/graph/nodes?limit=20&after={}", i * 100);
                    statuses.push(api.call(Method::GET, &path, None).await.map(|(s, _)| s));
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(hold).await;
    tx.commit().await?;
    reading.store(false, Ordering::SeqCst);
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for reader in readers {
        for status in reader.await? {
            let key = status.map_or_else(|| "no answer".to_string(), |s| s.to_string());
            *statuses.entry(key).or_default() += 1;
        }
    }
    faults.end();
    conn.close().await?;
    report.unavailable = statuses.get("503").copied().unwrap_or(0);
    report.detail =
        format!("locked employees {:.1}s; readers got {statuses:?}", hold.as_secs_f64());
    Ok(())
}

/// SIGKILLs the worker while a long analysis runs and nothing else does, at a moment when every
/// count it recorded has been exported: no job finished in the last 2.5 export intervals (checked
/// with the worker SIGSTOPped, so nothing can change between the check and the kill). Returns the
/// analyses it had accepted.
async fn kill_worker_mid_job(
    rig: &Rig,
    worker: &mut WorkerProcess,
    control: &Control,
    report: &mut FaultReport,
    delay: Duration,
) -> anyhow::Result<Vec<Uuid>> {
    let (db, api, faults) = (&rig.db, &rig.api, &rig.api.faults);
    control.pause().await?;
    let mut analyses = Vec::new();
    let mut refused = Vec::new();
    let until = Instant::now() + Duration::from_secs(150);
    let killed = loop {
        anyhow::ensure!(
            Instant::now() < until,
            "no moment to kill the worker within 150 s; tries: {refused:?}"
        );
        // Drained: nothing pending or running, and long enough ago that it was exported.
        let drained = Instant::now() + Duration::from_secs(60);
        loop {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')",
            )
            .fetch_one(db)
            .await
            .unwrap_or(-1);
            if open == 0 {
                break;
            }
            if Instant::now() > drained {
                let postmaster = lock(&rig.pg).pid();
                let state = stuck(db, worker, postmaster).await;
                anyhow::bail!(
                    "the queues did not drain within 60 s before killing the worker ({open} \
                     open)\n{state}"
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(QUIET_BEFORE_KILL).await;
        let job = loop {
            let body = json!({"iterations": 200, "samples": 2000});
            if let Some(id) = accepted(api.call(Method::POST, "/api/analysis", Some(body)).await) {
                break id;
            }
            anyhow::ensure!(Instant::now() < until, "the API accepted no analysis");
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        analyses.push(job);
        let caught = Instant::now() + Duration::from_secs(30);
        let status = loop {
            let status: String = sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
                .bind(job)
                .fetch_one(db)
                .await?;
            if status != "pending" || Instant::now() > caught {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        if status != "running" {
            refused.push(format!("analysis {job} was {status} when looked at"));
            continue;
        }
        tokio::time::sleep(delay).await;
        let pid = worker.pid().ok_or_else(|| anyhow::anyhow!("the worker is not running"))?;
        signal(&[pid], "STOP").await?;
        wait_stopped(&[pid], Duration::from_secs(5)).await?;
        let row = sqlx::query(
            "SELECT (SELECT status FROM jobs WHERE id = $1) AS status, \
                    (SELECT count(*) FROM influence_scores WHERE job_id = $1) AS scores, \
                    (SELECT count(*) FROM jobs WHERE status = 'running' AND id <> $1) AS others, \
                    (SELECT COALESCE(EXTRACT(EPOCH FROM now() - max(finished_at))::float8, 1e9) \
                     FROM jobs WHERE id <> $1) AS quiet",
        )
        .bind(job)
        .fetch_one(db)
        .await;
        let verdict = match &row {
            Ok(row) => {
                let (status, scores, others, quiet): (String, i64, i64, f64) =
                    (row.get("status"), row.get("scores"), row.get("others"), row.get("quiet"));
                if status == "running"
                    && scores == 0
                    && others == 0
                    && quiet >= QUIET_BEFORE_KILL.as_secs_f64()
                {
                    Ok(())
                } else {
                    Err(format!(
                        "analysis {job}: {status}, {scores} scores, {others} other jobs running, \
                         last finish {quiet:.1}s ago"
                    ))
                }
            }
            Err(e) => Err(format!("checking before the kill: {e}")),
        };
        match verdict {
            Ok(()) => {
                faults.begin(report.kind);
                worker.kill();
                break job;
            }
            Err(why) => {
                signal(&[pid], "CONT").await?;
                refused.push(why);
            }
        }
    };
    worker.start(&api.client).await?;
    faults.end();
    control.resume();
    report.detail = format!(
        "killed while analysis {killed} ran (worker start #{}); declined moments: {refused:?}",
        worker.starts
    );
    Ok(analyses)
}

/// Process ids whose parent is `pid`, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return children };
    for entry in entries.flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((_, parent)) = proc_stat(child)
            && parent == pid
        {
            children.push(child);
        }
    }
    children.sort_unstable();
    children
}

/// State letter and parent pid of `pid`, `None` once it is gone.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// Sends SIG`name` to every pid (those already gone are skipped).
async fn signal(pids: &[u32], name: &str) -> anyhow::Result<()> {
    if pids.is_empty() {
        return Ok(());
    }
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new("kill")
            .arg(format!("-{name}"))
            .args(pids.iter().map(u32::to_string))
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("kill -{name} {pids:?} took over 10 s"))??;
    if !output.status.success() {
        // A process that exited meanwhile is fine; any other refusal is not.
        let alive: Vec<u32> = pids.iter().copied().filter(|p| is_alive(*p)).collect();
        anyhow::ensure!(
            alive.is_empty() || name == "CONT",
            "kill -{name} {pids:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// Waits until every pid is gone (or a zombie).
async fn wait_gone(pids: &[u32], wait: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + wait;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|p| is_alive(*p)).collect();
        if alive.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < until,
            "processes {alive:?} survived SIGKILL for {wait:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every pid still alive is stopped (state `T`).
async fn wait_stopped(pids: &[u32], wait: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + wait;
    loop {
        let running: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| proc_stat(*p).is_some_and(|(s, _)| s != 'T' && s != 't' && s != 'Z'))
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < until,
            "processes {running:?} did not stop within {wait:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until no pid is stopped any more.
async fn wait_continued(pids: &[u32], wait: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + wait;
    loop {
        let stopped: Vec<u32> =
            pids.iter().copied().filter(|p| proc_stat(*p).is_some_and(|(s, _)| s == 'T')).collect();
        if stopped.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < until,
            "processes {stopped:?} still stopped after {wait:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Processes this test SIGSTOPped: continued on drop, so a failing test leaves nothing frozen.
#[derive(Default)]
struct StoppedProcesses(Arc<Mutex<Vec<u32>>>);

impl StoppedProcesses {
    fn add(&self, pids: &[u32]) {
        lock(&self.0).extend(pids);
    }

    fn clear(&self) {
        lock(&self.0).clear();
    }
}

impl Drop for StoppedProcesses {
    fn drop(&mut self) {
        let pids: Vec<u32> = std::mem::take(&mut *lock(&self.0));
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .args(pids.iter().map(u32::to_string))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The worker, as its own process

struct WorkerProcess {
    child: Option<Child>,
    log: PathBuf,
    env: Vec<(String, String)>,
    health: String,
    starts: u32,
}

impl WorkerProcess {
    /// Starts the worker binary and waits until its health endpoint answers.
    async fn start(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        use std::io::Write;
        self.starts += 1;
        let addr = format!("127.0.0.1:{}", testkit::free_port());
        self.health = format!("http://{addr}/health/live");
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        writeln!(log, "==== chaos: worker start #{} ====", self.starts)?;
        let child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("WORKER_HEALTH_ADDR", &addr)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.exited() {
                anyhow::bail!("the worker exited at start ({status}):\n{}", tail(&self.log, 40));
            }
            if let Ok(r) = client.get(&self.health).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < until,
                "the worker did not answer {} within 30 s:\n{}",
                self.health,
                tail(&self.log, 40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The running process' instance id (apalis worker names end in it), from its log.
    fn instance(&self) -> Option<String> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        let marker = format!("==== chaos: worker start #{} ====", self.starts);
        let since = &log[log.rfind(&marker)?..];
        let line = since.lines().find(|l| l.contains("\"worker running\""))?;
        let value: Value = serde_json::from_str(line).ok()?;
        value["fields"]["instance"].as_str().map(str::to_string)
    }

    /// What `/health/ready` of the running process answers.
    async fn readiness(&self) -> String {
        let url = self.health.replace("/health/live", "/health/ready");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build();
        let Ok(client) = client else { return "<no client>".into() };
        match client.get(&url).send().await {
            Ok(r) => format!("{} {}", r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => format!("<{e}>"),
        }
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL, then reaped.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus

/// A real Prometheus scraping the collector's exporter every second.
struct Prometheus {
    base: String,
    client: reqwest::Client,
    _daemon: testkit::process::Daemon,
}

impl Prometheus {
    async fn start(scratch: &Path, exporter_url: &str) -> anyhow::Result<Prometheus> {
        let binary = testkit::tools::require(&testkit::tools::prometheus_path()?, "prometheus")?;
        let dir = scratch.join("prometheus");
        std::fs::create_dir_all(dir.join("data"))?;
        let target = exporter_url
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .ok_or_else(|| anyhow::anyhow!("unexpected exporter URL {exporter_url}"))?;
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: otel-collector-exporter\n    honor_labels: true\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )?;
        let port = testkit::free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let log = dir.join("prometheus.log");
        let mut daemon = testkit::process::Daemon::spawn("prometheus", command, &log)?;
        let base = format!("http://127.0.0.1:{port}");
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build()?;
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = daemon.exited()? {
                anyhow::bail!("prometheus exited at start ({status}):\n{}", daemon.log());
            }
            if let Ok(r) = client.get(format!("{base}/-/ready")).send().await
                && r.status().is_success()
            {
                return Ok(Prometheus { base, client, _daemon: daemon });
            }
            anyhow::ensure!(
                Instant::now() < until,
                "prometheus was not ready within 30 s:\n{}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// An instant query: each series' labels and value.
    async fn query(&self, promql: &str) -> anyhow::Result<Vec<(BTreeMap<String, String>, f64)>> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.base),
            &[("query", promql)],
        )?;
        let body: Value = self.client.get(url).send().await?.json().await?;
        anyhow::ensure!(body["status"] == "success", "query {promql} failed: {body}");
        let series = body["data"]["result"]
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("no result in {body}"))?;
        series
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .ok_or_else(|| anyhow::anyhow!("no value in {s}"))?;
                Ok((labels, value))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The invariants

#[derive(Debug, Clone)]
struct JobRecord {
    id: Uuid,
    kind: String,
    status: String,
    error: Option<String>,
    params: Value,
    result: Option<Value>,
    attempts: i32,
}

async fn all_jobs(db: &PgPool) -> anyhow::Result<Vec<JobRecord>> {
    let rows = sqlx::query(
        "SELECT id, kind, status, error, params, result, attempts FROM jobs ORDER BY created_at",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| JobRecord {
            id: r.get("id"),
            kind: r.get("kind"),
            status: r.get("status"),
            error: r.get("error"),
            params: r.get("params"),
            result: r.get("result"),
            attempts: r.get("attempts"),
        })
        .collect())
}

/// The jobs apalis delivered more than once (a worker lost, or its heartbeat missed), with what
/// the jobs table says of them.
async fn redeliveries(db: &PgPool) -> Vec<String> {
    let rows = sqlx::query(
        "SELECT j.id::text AS id, j.kind, j.status, j.attempts, q.attempts AS deliveries, \
                q.last_result::text AS last_result \
         FROM apalis.jobs q \
         JOIN jobs j ON j.id::text = convert_from(q.job, 'UTF8')::jsonb->>'job_id' \
         WHERE q.attempts > 1 ORDER BY j.created_at",
    )
    .fetch_all(db)
    .await;
    match rows {
        Ok(rows) => rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}: {} attempts, {} deliveries, last result {}",
                    r.get::<String, _>("kind"),
                    r.get::<String, _>("id"),
                    r.get::<String, _>("status"),
                    r.get::<i32, _>("attempts"),
                    r.get::<i32, _>("deliveries"),
                    r.get::<Option<String>, _>("last_result").unwrap_or_default()
                )
            })
            .collect(),
        Err(e) => vec![format!("<cannot read apalis.jobs: {e}>")],
    }
}

/// What the queue and the server look like when jobs do not move: the open jobs, apalis' view of
/// them and of its workers, and every session of the database.
async fn stuck(db: &PgPool, worker: &WorkerProcess, postmaster: Option<u32>) -> String {
    let queries = [
        (
            "open jobs",
            "SELECT j.kind || ' ' || j.id || ' ' || j.status || ' attempts ' || j.attempts \
                    || ' started ' || coalesce(j.started_at::text, '-') \
             FROM jobs j WHERE j.status IN ('pending', 'running') ORDER BY j.created_at LIMIT 30",
        ),
        (
            "apalis jobs not done",
            "SELECT job_type || ' ' || id || ' ' || status || ' attempts ' || attempts \
                    || ' lock_by ' || coalesce(lock_by, '-') || ' lock_at ' \
                    || coalesce(lock_at::text, '-') \
             FROM apalis.jobs WHERE status NOT IN ('Done') ORDER BY run_at LIMIT 30",
        ),
        (
            "apalis workers",
            "SELECT id || ' last seen ' || last_seen::text || ' (' \
                    || round(EXTRACT(EPOCH FROM now() - last_seen)::numeric, 1) || ' s ago)' \
             FROM apalis.workers ORDER BY last_seen",
        ),
        (
            "sessions",
            "SELECT pid || ' ' || coalesce(application_name, '') || ' ' || coalesce(state, '') \
                    || ' xact ' || coalesce(xact_start::text, '-') || ' wait ' \
                    || coalesce(wait_event_type || ':' || wait_event, '-') || ' ' \
                    || left(regexp_replace(query, '\\s+', ' ', 'g'), 160) \
             FROM pg_stat_activity WHERE datname = 'orgraph' AND pid <> pg_backend_pid()",
        ),
        (
            "locks not granted",
            "SELECT pid || ' ' || locktype || ' ' || mode || ' ' \
                    || coalesce(relation::regclass::text, '') FROM pg_locks WHERE NOT granted",
        ),
    ];
    let mut out = String::new();
    // Each queue of the running worker process: when did any of its apalis workers last beat?
    // (A queue worker that lost the database restarts under a new name after at most 30 s.)
    if let Some(instance) = worker.instance() {
        let beats: Result<Vec<(String, f64)>, _> = sqlx::query_as(
            "SELECT worker_type, EXTRACT(EPOCH FROM now() - max(last_seen))::float8 \
             FROM apalis.workers WHERE id LIKE '%' || $1 || '%' GROUP BY worker_type",
        )
        .bind(&instance)
        .fetch_all(db)
        .await;
        out.push_str(&format!(
            "-- queues of worker instance {instance} (pid {:?}):\n",
            worker.pid()
        ));
        match beats {
            Ok(beats) => {
                for (queue, age) in beats {
                    let verdict = if age > 45.0 { "  <- WEDGED: no heartbeat" } else { "" };
                    out.push_str(&format!("   {queue}: last heartbeat {age:.1} s ago{verdict}\n"));
                }
            }
            Err(e) => out.push_str(&format!("   <{e}>\n")),
        }
    }
    out.push_str(&format!("-- worker readiness: {}\n", worker.readiness().await));
    if let Some(pid) = postmaster {
        let mut states: BTreeMap<char, Vec<u32>> = BTreeMap::new();
        for child in children_of(pid) {
            if let Some((state, _)) = proc_stat(child) {
                states.entry(state).or_default().push(child);
            }
        }
        out.push_str(&format!("-- postgres processes by state (postmaster {pid}): {states:?}\n"));
    }
    for (what, sql) in queries {
        out.push_str(&format!("-- {what}:\n"));
        match sqlx::query_scalar::<_, String>(sql).fetch_all(db).await {
            Ok(lines) => {
                for line in lines {
                    out.push_str(&format!("   {line}\n"));
                }
            }
            Err(e) => out.push_str(&format!("   <{e}>\n")),
        }
    }
    out
}

/// Every employee's manager.
async fn managers(db: &PgPool) -> anyhow::Result<HashMap<i64, i64>> {
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT source_id, target_id FROM relations WHERE kind = 'reports_to'")
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Every accepted job ended `done`, or `failed` with a reason.
fn check_jobs(jobs: &[JobRecord], accepted: &[(Uuid, String)], violations: &mut Vec<String>) {
    let by_id: HashMap<Uuid, &JobRecord> = jobs.iter().map(|j| (j.id, j)).collect();
    for (id, kind) in accepted {
        match by_id.get(id) {
            None => violations.push(format!("accepted {kind} job {id} has no row")),
            Some(job) if job.kind != *kind => {
                violations.push(format!("accepted {kind} job {id} is a {} job", job.kind));
            }
            Some(job) => match job.status.as_str() {
                "done" => {}
                "failed" if job.error.as_deref().is_some_and(|e| !e.trim().is_empty()) => {}
                "failed" => violations.push(format!("{kind} job {id} failed without a reason")),
                other => violations.push(format!("{kind} job {id} ended {other}")),
            },
        }
    }
}

/// One file per done export, none for anything else, no temporaries.
fn check_exports(jobs: &[JobRecord], dir: &Path, violations: &mut Vec<String>) {
    let mut files: BTreeMap<String, u64> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| {
                let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                (e.file_name().to_string_lossy().into_owned(), size)
            })
            .collect(),
        Err(e) => {
            violations.push(format!("cannot list {}: {e}", dir.display()));
            return;
        }
    };
    for job in jobs.iter().filter(|j| j.kind == "export" && j.status == "done") {
        let ext = job.params["format"].as_str().unwrap_or("?");
        let name = format!("{}.{ext}", job.id);
        match files.remove(&name) {
            None => violations.push(format!("done export {} has no file {name}", job.id)),
            Some(size) => {
                let reported = job.result.as_ref().and_then(|r| r["bytes"].as_u64());
                if reported != Some(size) {
                    violations.push(format!(
                        "export file {name} has {size} bytes, its job says {reported:?}"
                    ));
                }
            }
        }
    }
    for (name, _) in files {
        violations.push(format!("{name} in the export directory belongs to no done export"));
    }
}

/// Each intervention changed the graph exactly as its finished jobs say, nothing else changed,
/// and the reporting lines have no loop.
async fn check_interventions(
    db: &PgPool,
    jobs: &[JobRecord],
    planned: &[Planned],
    initial: &HashMap<i64, i64>,
    violations: &mut Vec<String>,
) {
    let now = match managers(db).await {
        Ok(m) => m,
        Err(e) => {
            violations.push(format!("reading the reporting lines: {e:#}"));
            return;
        }
    };
    let states: HashMap<Uuid, String> =
        match sqlx::query_as::<_, (Uuid, String)>("SELECT id, state FROM interventions")
            .fetch_all(db)
            .await
        {
            Ok(rows) => rows.into_iter().collect(),
            Err(e) => {
                violations.push(format!("reading the interventions: {e}"));
                return;
            }
        };
    let mut expected = initial.clone();
    let mut touched = 0;
    for p in planned {
        // The intervention's jobs, in the order they were accepted (the API queues one at a time).
        let mine: Vec<&JobRecord> = jobs
            .iter()
            .filter(|j| j.params["intervention_id"].as_str() == Some(&p.id.to_string()))
            .collect();
        let mut manager = p.before;
        let mut state = "proposed";
        for job in &mine {
            match (job.kind.as_str(), job.status.as_str()) {
                ("intervention_execute", "done") => (manager, state) = (ROOT, "executed"),
                ("intervention_rollback", "done") => (manager, state) = (p.before, "rolled_back"),
                _ => {}
            }
        }
        if initial.get(&p.employee) != Some(&p.before) {
            violations
                .push(format!("intervention {}: employee {} had moved before", p.id, p.employee));
        }
        expected.insert(p.employee, manager);
        if !mine.is_empty() {
            touched += 1;
        }
        if states.get(&p.id).map(String::as_str) != Some(state) {
            violations.push(format!(
                "intervention {} is {:?}, its jobs ({}) say {state}",
                p.id,
                states.get(&p.id),
                mine.iter()
                    .map(|j| format!("{} {}", j.kind, j.status))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let mut wrong = 0;
    for (employee, manager) in &expected {
        if now.get(employee) != Some(manager) {
            wrong += 1;
            if wrong <= 20 {
                violations.push(format!(
                    "employee {employee} reports to {:?}, expected {manager}",
                    now.get(employee)
                ));
            }
        }
    }
    if now.len() != expected.len() {
        violations.push(format!(
            "{} employees have a manager, expected {}",
            now.len(),
            expected.len()
        ));
    }
    println!("chaos: {touched} interventions had jobs; {} reporting lines checked", expected.len());
    let loops: Result<i64, _> = sqlx::query_scalar(
        "WITH RECURSIVE walk(start, id, depth) AS ( \
           SELECT source_id, target_id, 1 FROM relations WHERE kind = 'reports_to' \
           UNION ALL \
           SELECT w.start, r.target_id, w.depth + 1 FROM walk w \
           JOIN relations r ON r.source_id = w.id AND r.kind = 'reports_to' \
           WHERE w.id <> w.start AND w.depth <= (SELECT count(*) FROM employees)) \
         SELECT count(*) FROM walk WHERE id = start",
    )
    .fetch_one(db)
    .await;
    match loops {
        Ok(0) => {}
        Ok(n) => violations.push(format!("the reporting lines have {n} loop(s)")),
        Err(e) => violations.push(format!("checking the reporting lines for loops: {e}")),
    }
}

/// `orgraph_task_completed_total` in Prometheus equals the jobs table; returns the last reading.
async fn check_metrics(
    prometheus: &Prometheus,
    jobs: &[JobRecord],
    violations: &mut Vec<String>,
) -> BTreeMap<(String, String), f64> {
    // What the table says: success is `done`; failure, timeout and panic are `failed`.
    let mut want: BTreeMap<(String, String), f64> = BTreeMap::new();
    for job in jobs {
        let status = if job.status == "done" { "done" } else { "failed" };
        *want.entry((job.kind.clone(), status.to_string())).or_default() += 1.0;
    }
    // A killed worker's series keeps its last value in Prometheus; `last_over_time` adds it in
    // even after the collector stops serving it.
    let promql = "sum by (task_type, task_status) \
                  (last_over_time(orgraph_task_completed_total{job=\"orgraph/worker\"}[15m]))";
    let until = Instant::now() + METRICS_DEADLINE;
    let mut last = BTreeMap::new();
    loop {
        let last_error;
        match prometheus.query(promql).await {
            Ok(series) => {
                last = series
                    .into_iter()
                    .map(|(labels, v)| {
                        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
                        ((get("task_type"), get("task_status")), v)
                    })
                    .collect();
                let mut got: BTreeMap<(String, String), f64> = BTreeMap::new();
                for ((kind, status), v) in &last {
                    let table = match status.as_str() {
                        "success" => "done",
                        "failure" | "timeout" | "panic" => "failed",
                        _ => continue,
                    };
                    *got.entry((kind.clone(), table.to_string())).or_default() += v;
                }
                got.retain(|_, v| *v != 0.0);
                if got == want {
                    return last;
                }
                last_error = format!("Prometheus says {got:?}\nthe jobs table says {want:?}");
            }
            Err(e) => last_error = format!("{e:#}"),
        }
        if Instant::now() > until {
            violations.push(format!(
                "orgraph_task_completed_total never matched the jobs table within \
                 {METRICS_DEADLINE:?}: {last_error}\n(every series: {last:?})"
            ));
            return last;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// No 500, no hang, a 503 problem during the faults, readiness naming postgres in each
/// Postgres fault.
fn check_api(tally: &Tally, reports: &[FaultReport], violations: &mut Vec<String>) {
    for e in tally.server_errors.iter().take(20) {
        violations.push(format!("server error: {e}"));
    }
    for e in tally.hangs.iter().take(20) {
        violations.push(format!("hang: {e}"));
    }
    for e in tally.transport.iter().take(20) {
        violations.push(format!("no answer: {e}"));
    }
    for e in tally.not_problems.iter().take(20) {
        violations.push(format!("not a problem document: {e}"));
    }
    if tally.unavailable_in_faults == 0 {
        violations.push("the API answered no 503 problem during the faults".into());
    }
    for r in reports {
        match r.kind {
            FaultKind::PgKill | FaultKind::PgStop if r.ready_503 == 0 => violations.push(format!(
                "/health/ready never answered 503 naming postgres during {:?} at +{:.1}s",
                r.kind,
                r.at.as_secs_f64()
            )),
            _ => {}
        }
    }
}

fn print_summary(
    seed: u64,
    started: Instant,
    load: &Load,
    jobs: &[JobRecord],
    reports: &[FaultReport],
    tally: &Tally,
    metrics: &BTreeMap<(String, String), f64>,
) {
    let mut accepted: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, kind) in &load.accepted {
        *accepted.entry(kind.as_str()).or_default() += 1;
    }
    let mut table: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for job in jobs {
        *table.entry((job.kind.as_str(), job.status.as_str())).or_default() += 1;
        if job.status == "failed" {
            let reason = job.error.as_deref().map(generalise).unwrap_or_default();
            *reasons.entry(format!("{}: {reason}", job.kind)).or_default() += 1;
        }
    }
    let mut by_kind: BTreeMap<FaultKind, u64> = BTreeMap::new();
    for r in reports {
        *by_kind.entry(r.kind).or_default() += 1;
    }
    println!(
        "==== chaos summary (CHAOS_SEED={seed}, {:.1}s) ====",
        started.elapsed().as_secs_f64()
    );
    println!("requests made by the load: {:?}", load.submitted);
    println!("accepted (202) by kind: {accepted:?}");
    println!("interventions proposed (201): {}", load.interventions.len());
    println!("jobs by kind and status: {table:?}");
    println!("failed by reason:");
    for (reason, n) in &reasons {
        println!("  {n:>4} × {reason}");
    }
    println!("faults by kind: {by_kind:?}");
    for r in reports {
        println!(
            "  +{:>6.1}s {:?}: {} (ready 503s naming postgres: {}, readers' 503s: {})",
            r.at.as_secs_f64(),
            r.kind,
            r.detail,
            r.ready_503,
            r.unavailable
        );
    }
    println!("API responses by status: {:?}", tally.by_status);
    for ((route, status), n) in &tally.by_route {
        println!("  {n:>5} × {status} {route}");
    }
    println!(
        "503 problems during faults: {}; outside faults: {}; hangs: {}; 5xx other than 503: {}",
        tally.unavailable_in_faults,
        tally.unavailable_outside.len(),
        tally.hangs.len(),
        tally.server_errors.len()
    );
    for e in tally.unavailable_outside.iter().take(10) {
        println!("  503 outside faults: {e}");
    }
    println!("orgraph_task_completed_total by (task_type, task_status): {metrics:?}");
}

/// An error text with ids and numbers blanked, so like errors group together.
fn generalise(text: &str) -> String {
    let mut out = String::new();
    for word in text.split(' ') {
        if !out.is_empty() {
            out.push(' ');
        }
        let trimmed = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
        if trimmed.parse::<Uuid>().is_ok() {
            out.push_str(&word.replace(trimmed, "<id>"));
        } else {
            out.push_str(
                &word.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect::<String>(),
            );
        }
    }
    out.chars().take(200).collect()
}

// ---------------------------------------------------------------------------------------------
// Small things

/// A tiny deterministic PRNG (splitmix64): the same seed, the same schedule and requests.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 0 to `n` − 1.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// `lo` to `hi`, both included.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.between(lo, hi))
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// On a failing run: the logs' tails and how to replay it.
struct OnFailure {
    seed: u64,
    worker_log: PathBuf,
    pg: Arc<Mutex<testkit::Postgres>>,
}

impl Drop for OnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- worker log (last 80 lines of {}) ----", self.worker_log.display());
            eprintln!("{}", tail(&self.worker_log, 80));
            let pg_log = lock(&self.pg).log();
            let lines: Vec<&str> = pg_log.lines().collect();
            eprintln!("---- postgres log (last 40 lines) ----");
            eprintln!("{}", lines[lines.len().saturating_sub(40)..].join("\n"));
            eprintln!("chaos: FAILED; replay with CHAOS_SEED={}", self.seed);
        }
    }
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// A mutex's guard, even if a panicking thread poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Polls `check` until it returns `Some`, for at most `deadline`, naming `what` on failure.
async fn eventually<T>(
    what: &str,
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < until, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
