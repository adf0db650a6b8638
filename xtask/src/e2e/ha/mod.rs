//! `cargo xtask e2e --profile ha`: the live proof of the HA topology (docs/SCALING.md), natively
//! ([`stack`]): 2 APIs and 2 workers under the load generator while one Prometheus replica is
//! killed for 2 minutes and one gateway collector is killed and comes back. It checks that the
//! request count through Thanos Query (deduplicated) equals the load generator's exactly, with no
//! gap and no step back over the whole run; that the gateway's series moved to the other within
//! the bound docs/SCALING.md gives; that no panel double-counts the queue depth two workers both
//! report (against SQL); that every dashboard and rule query answers through Thanos Query as it
//! does on one Prometheus; that a replica's history, its TSDB deleted, is answered from the
//! bucket by the Store Gateway; and that an alert firing on both replicas (ApiInstanceLost, an
//! API replica killed; the Watchdog) reaches the receiver once through the Alertmanager cluster.
//! It prints the capacity figures docs/SCALING.md is built on. It ends with one `N passed, M
//! failed` line.

mod capacity;
mod membership;
mod stack;

use super::checks::Checks;
use super::{prom, sink::Sink, wait_for_value_on as wait_for};
use load::{Options, Stop};
use stack::{APIS, GATEWAYS, HaStack, PROMETHEUS, SIDECARS, say};
use std::time::{Duration, Instant};

/// The bound docs/SCALING.md gives for a dead gateway's series to be served by another: the
/// membership check (1 s), the agent's reload, then the next export of every service (15 s, the
/// export interval) and the next scrape of the infrastructure receivers (15 s).
pub const HANDOFF_BOUND: Duration = Duration::from_secs(40);

/// How long the load runs; the faults happen inside it.
const LOAD: Duration = Duration::from_secs(180);

/// Requests per second on each API.
const RATE: f64 = 10.0;

/// Every API request counted (health checks aside), as the single-node proof counts them.
const COUNT: &str = super::COUNT_API_REQUESTS;

pub fn command() -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = testkit::repo_root().join("target").join("e2e-ha");
    step("the HA topology up (fresh state in target/e2e-ha)");
    let mut stack = HaStack::up(&dir)?;
    let sink = Sink::start_on(&format!("127.0.0.1:{}", stack.ports.sink))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut checks = Checks::default();
    let result = prove(&mut checks, &mut stack, &sink, &runtime);
    drop(stack);
    checks.summary(started.elapsed());
    result?;
    anyhow::ensure!(checks.failed() == 0, "{} HA proof checks failed", checks.failed());
    Ok(())
}

fn prove(
    checks: &mut Checks,
    stack: &mut HaStack,
    sink: &Sink,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let (expected, from, to) = load_through_faults(checks, stack, runtime)?;
    nothing_lost(checks, stack, expected, (from, to));
    queue_depth_against_sql(checks, stack)?;
    every_query_answers(checks, stack);
    history_from_the_bucket(checks, stack)?;
    one_notification(checks, stack, sink)?;
    capacity::report(stack);
    Ok(())
}

/// The load on both APIs, and the faults inside it: Prometheus b killed for 2 minutes, the
/// gateway serving more resources killed, then started again. Returns the responses the clients
/// received and the load's time range (Unix seconds).
fn load_through_faults(
    checks: &mut Checks,
    stack: &mut HaStack,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<(u64, f64, f64)> {
    step("load on both APIs; Prometheus b killed for 2 minutes; a gateway killed and back");
    let token = Some(stack.tokens.admin.clone());
    let options = |i: usize, seed: u64| Options {
        url: stack.api_url(i),
        token: token.clone(),
        stop: Stop::After(LOAD),
        rate: Some(RATE),
        concurrency: 4,
        seed,
        ..Options::default()
    };
    let seeded = runtime.block_on(load::run(Options {
        seed_graph: 500,
        stop: Stop::Requests(10),
        ..options(0, 1)
    }))?;
    let from = unix_now();
    let loads = [0, 1].map(|i| runtime.spawn(load::run(options(i, 20 + i as u64))));
    let load_started = Instant::now();
    let at = |offset: u64| {
        let until = load_started + Duration::from_secs(offset);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    };

    at(20);
    stack.kill(PROMETHEUS[1])?;
    let prometheus_down = Instant::now();

    at(40);
    let served = [0, 1].map(|i| served_resources(&stack.gateway_metrics_url(i)));
    let gone = usize::from(served[1].len() > served[0].len());
    let all: std::collections::BTreeSet<String> = served.iter().flatten().cloned().collect();
    say(&format!(
        "before the kill: gateway-1 serves {} resources, gateway-2 {}",
        served[0].len(),
        served[1].len()
    ));
    // How many land on each gateway is the hash's doing (7 resources: sometimes all on one);
    // that each is served by exactly one is the design's.
    checks.check(
        "every resource (4 service instances, Postgres, Redis, the host) served by exactly one gateway",
        all.len() == 7 && served[0].is_disjoint(&served[1]),
        || format!("gateway-1 {:?}, gateway-2 {:?}", served[0], served[1]),
    );
    let killed = Instant::now();
    stack.kill(GATEWAYS[gone])?;
    let other = stack.gateway_metrics_url(1 - gone);
    let moved = testkit::wait_for(
        &format!("every resource ({}) served by {}", all.len(), GATEWAYS[1 - gone]),
        HANDOFF_BOUND + Duration::from_secs(20),
        || Ok(served_resources(&other).is_superset(&all).then(Instant::now)),
    );
    let dropped = stack.membership().dropped_since(killed, gone);
    let took = moved.as_ref().map(|at| at.duration_since(killed));
    checks.check(
        &format!(
            "{}'s {} resources served by {} within {HANDOFF_BOUND:?} of the kill",
            GATEWAYS[gone],
            served[gone].len(),
            GATEWAYS[1 - gone]
        ),
        took.as_ref().is_ok_and(|t| *t <= HANDOFF_BOUND),
        || format!("{took:?}"),
    );
    if let (Ok(took), Some(dropped)) = (&took, dropped) {
        say(&format!(
            "handoff: the gateway left the ring {:.1} s after the kill; all its resources served \
             elsewhere {:.1} s after it",
            dropped.duration_since(killed).as_secs_f64(),
            took.as_secs_f64()
        ));
    }

    at(100);
    stack.start(GATEWAYS[gone])?;
    let back = Instant::now();

    at(140);
    stack.start(PROMETHEUS[1])?;
    let outage = prometheus_down.elapsed();
    say(&format!("Prometheus b was down {:.0} s", outage.as_secs_f64()));
    let joined = stack.membership().joined_since(back, gone);
    checks.check(
        &format!("{} rejoined the ring after its restart", GATEWAYS[gone]),
        joined.is_some(),
        || "the membership never listed it again".to_string(),
    );

    let mut total = seeded.total;
    for (i, load) in loads.into_iter().enumerate() {
        let report = runtime.block_on(load)??;
        checks.check(
            &format!("the load on {} saw no 5xx and no transport error", APIS[i]),
            report.problems(false).is_empty(),
            || format!("{:?}", report.problems(false)),
        );
        total += report.total;
    }
    Ok((total, from, unix_now()))
}

/// The resources (`instance` of `target_info`) a gateway serves now; none if it does not answer.
fn served_resources(metrics_url: &str) -> std::collections::BTreeSet<String> {
    let Ok((200, body)) = testkit::http_get(metrics_url) else { return Default::default() };
    body.lines()
        .filter(|line| line.starts_with("target_info{"))
        .filter_map(|line| line.split("instance=\"").nth(1)?.split('"').next().map(str::to_string))
        .collect()
}

/// The count through Thanos Query equals the clients' exactly, as on each replica; over the whole
/// run it has a value at every step and never steps back (no gap, no reset, no double count),
/// while replica b alone shows its 2-minute hole.
fn nothing_lost(checks: &mut Checks, stack: &HaStack, expected: u64, (from, to): (f64, f64)) {
    step("Thanos Query counts exactly what the clients received, with no gap");
    let expected = expected as f64;
    let query = stack.query_url();
    let counted = wait_for(&query, COUNT, |v| v >= expected, Duration::from_secs(90));
    checks.check(
        &format!(
            "requests counted through Thanos Query == responses the clients received ({expected})"
        ),
        counted == Some(expected),
        || format!("Thanos Query {counted:?}"),
    );
    for (i, name) in PROMETHEUS.iter().enumerate() {
        // Each scrapes on its own schedule: up to an interval behind Query's first answer.
        let on =
            wait_for(&stack.prometheus_url(i), COUNT, |v| v >= expected, Duration::from_secs(60));
        checks.check(&format!("{name} counts the same ({expected})"), on == Some(expected), || {
            format!("{on:?}")
        });
    }
    let instances = prom::value_on(
        &query,
        "count(count by (instance) (http_server_request_duration_seconds_count{job=\"orgraph/api\"}))",
        &[],
    );
    checks.check(
        "Thanos Query sees each API instance once (2), not once per replica",
        matches!(instances, Ok(Some(n)) if n == 2.0),
        || format!("{instances:?}"),
    );
    let from = from + 60.0;
    let steps = |base: &str, expr: &str| {
        prom::query_range_on(base, expr, from, to, 15)
            .ok()
            .and_then(|r| r.into_iter().next())
            .map(|(_, values)| values)
    };
    let counts = steps(&query, COUNT);
    let back = counts.as_ref().map(|v| {
        let values: Vec<f64> = v.iter().flatten().copied().collect();
        values.windows(2).filter(|w| w[1] < w[0]).count()
    });
    // Samples, not the last value (which a query sees for 5 minutes after it was scraped):
    // a step without a sample of the minute before it is a hole in the data.
    let samples =
        "sum(count_over_time(http_server_request_duration_seconds_count{job=\"orgraph/api\"}[1m]))";
    let holes = |base: &str, expr: &str| {
        steps(base, expr).map(|v| v.iter().filter(|x| x.is_none()).count())
    };
    let through_query = holes(&query, samples);
    // b's own scrapes of the Prometheus servers (`up` of job prometheus). Not the services'
    // series: after b's restart the copies a gateway still served from before a handoff (older
    // samples, in order for b) refill part of its hole; nor any `up`: the agent's receivers
    // export one of their own through the gateways.
    let on_b = holes(&stack.prometheus_url(1), "sum(count_over_time(up{job=\"prometheus\"}[1m]))");
    checks.check(
        "through Thanos Query the count never steps back and every 15 s step of the run has samples",
        back == Some(0) && through_query == Some(0),
        || format!("steps back {back:?}, steps without samples {through_query:?}"),
    );
    checks.check(
        "Prometheus b alone has the hole of its outage (which Thanos Query filled from a)",
        on_b.is_some_and(|n| n >= 3),
        || format!("steps without samples on b: {on_b:?}"),
    );
}

/// With the jobs' table locked, export jobs wait: both workers report the same depth from
/// Postgres, and the dashboards' and the alert's queries give SQL's number, not twice it.
fn queue_depth_against_sql(checks: &mut Checks, stack: &HaStack) -> anyhow::Result<()> {
    step("queue depth (reported by both workers) against SQL");
    let port = stack.postgres.port();
    let lock = super::faults::TableLock::take_on(port, "employees")?;
    let bearer = testkit::tokens::ApiTokens::bearer(&stack.tokens.admin);
    let mut accepted = 0;
    for i in 0..12 {
        let body = r#"{"kind": "employee_metrics", "format": "csv"}"#;
        let url = format!("{}/api/exports", stack.api_url(i % 2));
        if let Ok((202, _)) = testkit::http_request(&url, &[("authorization", &bearer)], Some(body))
        {
            accepted += 1;
        }
    }
    let waiting = "SELECT count(*) FROM apalis.jobs WHERE job_type = 'export' \
                   AND status IN ('Pending', 'Queued')";
    // Stable once the workers took what they can run (blocked on the lock).
    std::thread::sleep(Duration::from_secs(5));
    let sql = super::sql_on(port, waiting).ok().and_then(|n| n.parse::<f64>().ok());
    let panel = "sum(max by (messaging_destination_name) (orgraph_queue_jobs{job_state=\"pending\", messaging_destination_name=\"export\"}))";
    let seen = sql.and_then(|n| {
        wait_for(&stack.query_url(), panel, |v| v == n, Duration::from_secs(60)).filter(|v| *v == n)
    });
    let summed = prom::value_on(
        &stack.query_url(),
        "sum(orgraph_queue_jobs{job_state=\"pending\", messaging_destination_name=\"export\"})",
        &[],
    );
    let released = lock.release();
    checks.check(
        &format!(
            "the overview's pending-jobs query through Thanos Query == SQL ({sql:?} of {accepted} \
             exports waiting), while a plain sum over the two workers would say {summed:?}"
        ),
        sql.is_some_and(|n| n > 0.0) && seen == sql && released.is_ok(),
        || format!("query {seen:?}, SQL {sql:?}, lock released: {released:?}"),
    );
    let drained = wait_for(
        &stack.query_url(),
        "sum(max by (messaging_destination_name, job_state) (orgraph_queue_jobs{job_state=~\"pending|running\"}))",
        |v| v == 0.0,
        Duration::from_secs(120),
    );
    checks.check("the workers drained the queue after the lock", drained == Some(0.0), || {
        format!("{drained:?}")
    });
    Ok(())
}

/// Every dashboard query and every rule's query (recording and alerting) answers through Thanos
/// Query as on Prometheus a: it parses, and where a has data, Thanos Query has the same series
/// (a `sum` of replicas would double them; a missing replica label would split them).
fn every_query_answers(checks: &mut Checks, stack: &HaStack) {
    step("every dashboard and rule query through Thanos Query, against Prometheus a");
    let mut queries: Vec<(String, String)> = xtask::dashboards::queries()
        .into_iter()
        .map(|(dashboard, panel, expr)| (format!("{dashboard} / {panel}"), expr))
        .collect();
    queries.extend(
        xtask::dashboards::rule_exprs()
            .into_iter()
            .map(|(file, name, expr)| (format!("rule {name} ({file})"), expr)),
    );
    let (mut same, mut empty, mut differ) = (0, 0, Vec::new());
    let now = format!("{:.3}", unix_now());
    for (what, expr) in &queries {
        let at = [("time", now.as_str())];
        let on_a = prom::query_on(&stack.prometheus_url(0), expr, &at);
        let through = prom::query_on(&stack.query_url(), expr, &at);
        let labels = |r: &Vec<serde_json::Value>| {
            let mut l: Vec<String> = r.iter().map(|s| s["metric"].to_string()).collect();
            l.sort();
            l
        };
        match (on_a, through) {
            (Ok(a), Ok(q)) if a.is_empty() && q.is_empty() => empty += 1,
            (Ok(a), Ok(q)) if labels(&a) == labels(&q) => same += 1,
            (a, q) => differ.push(format!(
                "{what}: `{expr}`\n      Prometheus a: {}\n      Thanos Query: {}",
                summary(&a),
                summary(&q)
            )),
        }
    }
    println!("    {same} queries answer the same series, {empty} are empty on both");
    checks.check(
        &format!(
            "all {} dashboard and rule queries answer through Thanos Query with the series \
             Prometheus a has",
            queries.len()
        ),
        differ.is_empty() && same > queries.len() / 2,
        || differ.join("\n"),
    );
}

fn summary(result: &anyhow::Result<Vec<serde_json::Value>>) -> String {
    match result {
        Ok(series) => format!(
            "{} series: {:?}",
            series.len(),
            series.iter().take(3).map(|s| s["metric"].to_string()).collect::<Vec<_>>()
        ),
        Err(e) => format!("error: {e:#}"),
    }
}

/// Replica b's TSDB deleted after its blocks were uploaded: the history of b is still answered,
/// from the bucket, by the Store Gateway.
fn history_from_the_bucket(checks: &mut Checks, stack: &mut HaStack) -> anyhow::Result<()> {
    step("Prometheus b's TSDB deleted: its history answered by the Store Gateway");
    // b cuts a block every 2 minutes of data, and its sidecar uploads it within 30 s. (What b
    // scraped in its last seconds before the kill is lost with the unflushed end of its WAL:
    // SIGKILL leaves no time to write it. Replica a has those samples.)
    let uploaded =
        testkit::wait_for("a block of replica b in the bucket", Duration::from_secs(240), || {
            Ok(capacity::blocks(&stack.bucket_dir(), "b").into_iter().max_by_key(|b| b.samples))
        });
    let Ok(block) = uploaded else {
        checks.fail("a block of replica b was uploaded", &format!("{uploaded:?}"));
        return Ok(());
    };
    stack.stop(SIDECARS[1])?;
    stack.stop(PROMETHEUS[1])?;
    let tsdb = stack.tsdb_dir(1);
    std::fs::remove_dir_all(&tsdb)?;
    say(&format!("deleted {}", tsdb.display()));
    stack.start(PROMETHEUS[1])?;
    stack.start(SIDECARS[1])?;
    let middle = format!("{:.3}", (block.min_time + block.max_time) as f64 / 2_000.0);
    // Every target b scraped has an `up` series from its first scrape on.
    let expr = "count(up{replica=\"b\"})";
    let params = [("time", middle.as_str()), ("dedup", "false")];
    let answered = testkit::wait_for(
        "replica b's history through Thanos Query",
        Duration::from_secs(60),
        || Ok(prom::value_on(&stack.query_url(), expr, &params)?.filter(|n| *n > 0.0)),
    );
    let local = prom::value_on(&stack.prometheus_url(1), "count(up)", &[("time", middle.as_str())]);
    checks.check(
        "replica b's history (a block it uploaded) answered through Thanos Query after its TSDB was deleted",
        answered.is_ok() && matches!(local, Ok(None)),
        || format!("through Thanos Query {answered:?}; Prometheus b itself {local:?}"),
    );
    Ok(())
}

/// An API replica killed: ApiInstanceLost fires on both Prometheus replicas, and the receiver
/// gets it once (the alerts carry no `replica`, and the Alertmanager cluster shares its
/// notification log); the Watchdog, firing on both all along, arrives once per repeat (a minute).
fn one_notification(checks: &mut Checks, stack: &mut HaStack, sink: &Sink) -> anyhow::Result<()> {
    step("api-2 killed: ApiInstanceLost, firing on both replicas, reaches its receiver once");
    let started = Instant::now();
    stack.kill(APIS[1])?;
    let firing = |i: usize, alert: &str| {
        let expr = format!("count(ALERTS{{alertname=\"{alert}\",alertstate=\"firing\"}})");
        prom::value_on(&stack.prometheus_url(i), &expr, &[])
    };
    let notified = |path: &str, alert: &str| -> Vec<Instant> {
        sink.notified(Some(path), "firing")
            .into_iter()
            .filter(|n| n.name == alert && n.at >= started)
            .map(|n| n.at)
            .collect()
    };
    // ApiInstanceLost: a minute without an answer, then its `for` of a minute.
    let both = testkit::wait_for(
        "ApiInstanceLost firing on both Prometheus replicas",
        Duration::from_secs(240),
        || {
            Ok((firing(0, "ApiInstanceLost")?.is_some() && firing(1, "ApiInstanceLost")?.is_some())
                .then_some(()))
        },
    );
    let arrived =
        testkit::wait_for("ApiInstanceLost at the receiver", Duration::from_secs(60), || {
            Ok((!notified("/alerts", "ApiInstanceLost").is_empty()).then_some(()))
        });
    // Long enough for the second Alertmanager's own attempt (15 s after the first's) and for
    // the other replica's copy, were either to make a second notification.
    std::thread::sleep(Duration::from_secs(40));
    let lost = notified("/alerts", "ApiInstanceLost");
    checks.check(
        "ApiInstanceLost fired on both Prometheus replicas and reached the receiver once",
        both.is_ok() && arrived.is_ok() && lost.len() == 1,
        || format!("firing on both: {both:?}; notifications: {}", lost.len()),
    );
    let watchdog = notified("/watchdog", "Watchdog");
    let gaps: Vec<f64> =
        watchdog.windows(2).map(|w| w[1].duration_since(w[0]).as_secs_f64()).collect();
    let on_both = firing(0, "Watchdog").ok().flatten().is_some()
        && firing(1, "Watchdog").ok().flatten().is_some();
    checks.check(
        "the Watchdog, firing on both replicas, reached its receiver once per repeat (a minute)",
        on_both && !watchdog.is_empty() && gaps.iter().all(|g| *g >= 45.0),
        || format!("firing on both: {on_both}; notifications: {}, gaps {gaps:?} s", watchdog.len()),
    );
    Ok(())
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn step(text: &str) {
    println!("\n==> HA proof: {text}");
}
