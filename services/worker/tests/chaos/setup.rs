//! Everything the test runs on, started in order and stopped in order: Postgres, Redis and the
//! collector on free ports, a real Prometheus, the API in process with the graph seeded, and the
//! worker binary as its own process.

use crate::api::{Api, FaultClock, InProcessApi, Tally};
use crate::faults::Rig;
use crate::faults::signals::StoppedProcesses;
use crate::invariants::managers;
use crate::prometheus::Prometheus;
use crate::report::OnFailure;
use crate::util::eventually;
use crate::worker_process::WorkerProcess;
use crate::{
    CLIENT_TIMEOUT, EMPLOYEES, EXPORT_INTERVAL_MS, HEARTBEAT_MS, MISSED_HEARTBEATS, support,
};
use reqwest::Method;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the test started. Fields drop in the order declared, which is the order that matters on
/// a failure: whatever the faults left stopped is continued first (the rig), the worker is
/// killed, the API and Prometheus stop, then the failure report prints the logs while Postgres
/// is still up; Postgres (its last holder is the failure report), the collector and Redis go
/// last.
pub struct Setup {
    /// What the faults act on.
    pub rig: Rig,
    pub worker: WorkerProcess,
    /// Every employee's manager before the chaos.
    pub initial: HashMap<i64, i64>,
    pub export_dir: PathBuf,
    api: InProcessApi,
    pub prometheus: Prometheus,
    _failure: OnFailure,
    scratch: PathBuf,
    _collector: testkit::Collector,
    _redis: testkit::Redis,
}

impl Setup {
    /// Starts everything, seeds the graph and starts the worker.
    pub async fn start(seed: u64) -> Setup {
        let (pg, redis, collector) = start_dependencies().await;
        let pg_url = pg.url();
        let pg = Arc::new(Mutex::new(pg));
        let stopped = StoppedProcesses::default();
        let scratch = support::scratch_dir("chaos");
        let export_dir = scratch.join("exports");
        std::fs::create_dir_all(&export_dir).expect("export dir");
        let worker_log = scratch.join("worker.log");
        let failure = OnFailure { seed, worker_log: worker_log.clone(), pg: pg.clone() };
        let prometheus = Prometheus::start(&scratch, &collector.prometheus_url())
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));

        let (api, client) = start_api(&pg_url, &redis.url()).await;
        seed_graph(&client, seed).await;
        let db = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&pg_url)
            .await
            .expect("the test's own pool connects");
        let initial = managers(&db).await.expect("reading the reporting lines");
        assert_eq!(initial.len(), EMPLOYEES as usize - 1, "everyone but the root has a manager");

        let mut worker = worker_process(&pg_url, &export_dir, worker_log, &collector);
        worker.start(&client.client).await.unwrap_or_else(|e| panic!("{e:#}"));
        let rig = Rig { db, pg, stopped, api: client, pg_url };
        Setup {
            rig,
            worker,
            initial,
            export_dir,
            api,
            prometheus,
            _failure: failure,
            scratch,
            _collector: collector,
            _redis: redis,
        }
    }

    /// Stops the worker, the API and Prometheus, and removes the scratch directory; the rest
    /// stops as it drops.
    pub fn stop(self) {
        let Setup { worker, api, prometheus, scratch, .. } = self;
        drop(worker);
        api.stop();
        drop(prometheus);
        std::fs::remove_dir_all(&scratch).ok();
    }
}

/// Real dependencies on free ports.
async fn start_dependencies() -> (testkit::Postgres, testkit::Redis, testkit::Collector) {
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
    // testkit's throwaway cluster commits asynchronously (`synchronous_commit=off`): a commit is
    // acknowledged before its WAL is written, so a SIGKILL of the server can lose transactions the
    // API already answered 202 for. Real servers commit synchronously; so does this database.
    pg.psql(&pg.admin_url(), "ALTER DATABASE orgraph SET synchronous_commit = on")
        .expect("synchronous commits for the orgraph database");
    (pg, redis, collector)
}

/// The API in process, ready, and the client every request of the test goes through.
async fn start_api(pg_url: &str, redis_url: &str) -> (InProcessApi, Api) {
    let api = InProcessApi::start(pg_url, redis_url).unwrap_or_else(|e| panic!("{e:#}"));
    let faults = Arc::new(FaultClock::default());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let client = Api {
        client: reqwest::Client::builder()
            .timeout(CLIENT_TIMEOUT)
            .no_proxy()
            .default_headers(support::admin_headers(&api.tokens))
            .build()
            .expect("http client"),
        base: api.base.clone(),
        tally,
        faults,
    };
    eventually("the API to be ready", Duration::from_secs(30), async || {
        client.call(Method::GET, "/health/ready", None).await.filter(|(s, _)| *s == 200)
    })
    .await;
    (api, client)
}

/// The generated graph of [`EMPLOYEES`], from the seed.
async fn seed_graph(client: &Api, seed: u64) {
    let seeded = client
        .call(
            Method::POST,
            "/api/graph/seed",
            Some(json!({"employees": EMPLOYEES, "avg_reports": 5, "seed": seed})),
        )
        .await;
    assert!(matches!(seeded, Some((201, _))), "seeding the graph: {seeded:?}");
}

/// The worker binary with the test's settings, not started yet.
fn worker_process(
    pg_url: &str,
    export_dir: &Path,
    log: PathBuf,
    collector: &testkit::Collector,
) -> WorkerProcess {
    let env = vec![
        ("DATABASE_URL".into(), pg_url.to_string()),
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
    ];
    WorkerProcess::new(log, env)
}
