//! `cargo xtask load`: drives a configurable mix of requests against the API (it replaces the
//! original platform's locust file), and reports what the client saw, so that a test can compare
//! it with what the metrics pipeline shows.
//!
//! * [`run`] is the engine, callable from Rust (the end-to-end tests use it without a
//!   subprocess): an optional setup (seed the graph, read the first page of employees), then the
//!   mix, for a duration or a number of requests, paced at a rate (open loop: request *i* is due
//!   at *i / rate* seconds, whatever the latency, with at most `concurrency` in flight) or as fast
//!   as `concurrency` connections allow.
//! * [`mix`]: the kinds of request and their weights; [`scenario`] and [`bad`]: what each kind
//!   sends; [`client`]: sending with a 10 s deadline ([`announced`]: the oversized body);
//!   [`stats`]: counting and latency histograms; [`report`]: the result, its JSON and its
//!   verdict; [`target`]: loopback only unless allowed; [`cli`]: the subcommand.
//!
//! Bounded by design: the run stops at its duration or count (in-flight requests then get at
//! most their 10 s), memory does not grow with its length, and it refuses a non-loopback API
//! unless told otherwise.
//!
//! Why not goose (the Locust-like Rust framework): its users are a closed loop (a user sends its
//! next request when the previous one answered, and `--throttle-requests` only caps the rate by
//! blocking them), while the fault tests need an open loop: requests keep arriving at the set rate
//! while the API stalls, so a stall shows as 503s and latency, as it does to real clients. And the
//! live proof compares exact counts by route template and status with Prometheus', which this
//! crate's report gives directly.

mod announced;
mod bad;
mod cli;
mod client;
mod mix;
mod report;
mod scenario;
mod stats;
mod target;

pub use cli::{Args, command};
pub use mix::Mix;
pub use report::Report;

use anyhow::Context;
use client::Sender;
use rand::SeedableRng;
use reqwest::Method;
use scenario::{Body, Planned, Scenario, Then};
use serde_json::json;
use stats::Recorder;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use target::Target;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The API's address in the native stack and compose.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8000";

/// Most requests in flight.
pub const MAX_CONCURRENCY: u32 = 1024;

/// Highest `--rate`.
pub const MAX_RATE: f64 = 100_000.0;

/// Longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Most employees the API seeds (its own limit).
pub const MAX_SEED_EMPLOYEES: u32 = 20_000;

/// Employees asked for in the first page (to learn existing ids).
const FIRST_PAGE: u32 = 1000;

/// When the mix stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this long (requests in flight then finish).
    After(Duration),
    /// After this many requests (all answered or failed).
    Requests(u64),
}

/// One run of the load generator: where, for how long, how fast and which requests (what
/// `cargo xtask load`'s flags set, for callers of [`run`]).
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the API listens, as [`DEFAULT_URL`].
    pub url: String,
    /// Allow a URL whose host is not loopback.
    pub allow_remote: bool,
    /// The bearer token every request carries (the API refuses `/api/*` without one); required.
    pub token: Option<String>,
    /// After how long, or how many requests, the mix ends.
    pub stop: Stop,
    /// Also stop once this is set (by whoever ends the fault a load runs through), whichever of
    /// it and `stop` comes first.
    pub stop_when: Option<Arc<AtomicBool>>,
    /// Requests per second (open loop); `None`: as fast as `concurrency` allows.
    pub rate: Option<f64>,
    /// Requests in flight at most.
    pub concurrency: u32,
    /// The kinds of request and their weights.
    pub mix: Mix,
    /// Seed the graph with this many employees first (`POST /api/graph/seed`); 0: don't.
    pub seed_graph: u32,
    /// The random seed of the mix (and of the seeded graph): the same seed plans the same
    /// requests against the same answers.
    pub seed: u64,
    /// A progress line on stderr every second.
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            url: DEFAULT_URL.to_string(),
            allow_remote: false,
            token: None,
            stop: Stop::After(Duration::from_secs(30)),
            stop_when: None,
            rate: None,
            concurrency: 16,
            mix: Mix::default(),
            seed_graph: 0,
            seed: 0,
            progress: false,
        }
    }
}

impl Options {
    fn check(&self) -> anyhow::Result<(Target, &str)> {
        let token = self.token.as_deref().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            anyhow::anyhow!(
                "no API token: every /api/* request needs one (--token, or API_TOKEN; \
                 `cargo xtask load` finds the native stack's in target/stack/api-token)"
            )
        })?;
        anyhow::ensure!(
            (1..=MAX_CONCURRENCY).contains(&self.concurrency),
            "concurrency must be 1 to {MAX_CONCURRENCY}, not {}",
            self.concurrency
        );
        if let Some(rate) = self.rate {
            anyhow::ensure!(
                rate.is_finite() && rate > 0.0 && rate <= MAX_RATE,
                "rate must be above 0 and at most {MAX_RATE} requests/s, not {rate}"
            );
        }
        match self.stop {
            Stop::After(d) => anyhow::ensure!(
                !d.is_zero() && d <= MAX_DURATION,
                "duration must be above 0 and at most {} h, not {d:?}",
                MAX_DURATION.as_secs() / 3600
            ),
            Stop::Requests(n) => anyhow::ensure!(n > 0, "requests must be at least 1"),
        }
        anyhow::ensure!(
            self.seed_graph <= MAX_SEED_EMPLOYEES,
            "seed-graph must be 0 to {MAX_SEED_EMPLOYEES} employees, not {}",
            self.seed_graph
        );
        Ok((Target::parse(&self.url, self.allow_remote)?, token.trim()))
    }
}

/// Runs the load described by `options` and reports what the client saw. `Err` only when it
/// could not run (bad options, the API unreachable or refusing the setup); 5xx answers and
/// transport errors during the mix are in the report ([`Report::problems`]).
pub async fn run(options: Options) -> anyhow::Result<Report> {
    let (target, token) = options.check()?;
    let recorder = Arc::new(Recorder::default());
    let scenario = Arc::new(Scenario::default());
    let sender = Sender::new(
        target.clone(),
        token,
        options.concurrency as usize,
        recorder.clone(),
        scenario.clone(),
    )?;
    setup(&sender, &target, &options).await?;

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed);
    let started = Instant::now();
    let progress = options.progress.then(|| tokio::spawn(progress(recorder.clone(), started)));
    let slots = Arc::new(Semaphore::new(options.concurrency as usize));
    let (deadline, limit) = match options.stop {
        Stop::After(d) => (Some(started + d), None),
        Stop::Requests(n) => (None, Some(n)),
    };
    let mut sent: u64 = 0;
    let stopped = || options.stop_when.as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed));
    loop {
        if limit.is_some_and(|n| sent >= n) || stopped() {
            break;
        }
        if let Some(rate) = options.rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            if deadline.is_some_and(|d| due >= d) {
                break;
            }
            tokio::time::sleep_until(due).await;
        }
        let slot = match deadline {
            Some(deadline) => {
                match tokio::time::timeout_at(deadline, slots.clone().acquire_owned()).await {
                    Ok(slot) => slot,
                    Err(_) => break,
                }
            }
            None => slots.clone().acquire_owned().await,
        }
        .context("the request slots were closed")?;
        if deadline.is_some_and(|d| Instant::now() >= d) || stopped() {
            break;
        }
        let kind = options.mix.pick(&mut rng);
        let planned = scenario.plan(kind, &mut rng);
        let sender = sender.clone();
        tokio::spawn(async move {
            // Transport errors are recorded by `send`; nothing more to do with them here.
            let _ = sender.send(planned).await;
            drop(slot);
        });
        sent += 1;
    }
    // Every slot back: every request answered or failed (each within its timeout).
    let all =
        slots.acquire_many(options.concurrency).await.context("waiting for the last requests")?;
    drop(all);
    let elapsed = started.elapsed();
    if let Some(progress) = progress {
        progress.abort();
    }
    Ok(recorder.report(elapsed, options.rate, options.concurrency))
}

/// Seeds the graph if asked (it must succeed), then reads the first page of employees (the
/// existing ids the mix uses; an error answer is counted, not fatal). Both are counted in the
/// report like any response.
async fn setup(sender: &Sender, target: &Target, options: &Options) -> anyhow::Result<()> {
    let unreachable = |why: String| {
        anyhow::anyhow!(
            "cannot reach the API at {target}: {why} (is it running? `cargo xtask stack up` \
             starts it)"
        )
    };
    if options.seed_graph > 0 {
        let seed = Planned {
            body: Body::Json(json!({
                "employees": options.seed_graph,
                "avg_reports": 5,
                "seed": options.seed,
            })),
            ..Planned::simple(None, Method::POST, "/api/graph/seed".into(), "POST /api/graph/seed")
        };
        let reply = sender.send(seed).await.map_err(unreachable)?;
        anyhow::ensure!(
            reply.status == 201,
            "seeding the graph with {} employees failed: {} {}",
            options.seed_graph,
            reply.status,
            reply.detail
        );
    }
    let first_page = Planned {
        then: Then::Harvest,
        ..Planned::simple(
            None,
            Method::GET,
            format!("/api/graph/nodes?limit={FIRST_PAGE}"),
            "GET /api/graph/nodes",
        )
    };
    let reply = sender.send(first_page).await.map_err(unreachable)?;
    if reply.status != 200 && options.progress {
        // E.g. a fault test started during an outage: the mix learns ids from later pages.
        eprintln!(
            "[load] the first page of employees answered {} {}; starting without known ids",
            reply.status, reply.detail
        );
    }
    Ok(())
}

/// Prints a line on stderr every second until aborted.
async fn progress(recorder: Arc<Recorder>, started: Instant) {
    let mut tick =
        tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    let mut last = (started, 0u64);
    loop {
        let now = tick.tick().await;
        let (sent, received, failures) = recorder.progress();
        let window = now.duration_since(last.0).as_secs_f64().max(1e-3);
        let rate = received.saturating_sub(last.1) as f64 / window;
        eprintln!(
            "[load] {:>6.1}s  sent {sent:>8}  received {received:>8}  {rate:>8.1}/s  \
             errors (5xx, transport) {failures}",
            now.duration_since(started).as_secs_f64()
        );
        last = (now, received);
    }
}
