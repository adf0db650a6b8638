//! The live proof of traces: a request with a known `traceparent` followed through the API, the
//! queue and the worker into Jaeger; every trace of a minute of load whole; a retried job's
//! attempts in its trace; traces resuming after the collector was away; and the Grafana links'
//! Jaeger queries answered.

use super::checks::Checks;
use super::jaeger::{Jaeger, Trace};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use xtask::trace_links::jaeger_search;

/// How long a finished span may take to be searchable in Jaeger: the SDK's batch (5 s), the
/// collector's batch, Jaeger's own.
const ARRIVAL: Duration = Duration::from_secs(60);

/// The share of traces that must be whole, and of requests that must have one.
const COMPLETE: f64 = 0.99;

/// The API requests [`export_followed`] and [`retried_job`] send: one export each, accepted (a
/// job each).
pub const REQUESTS_SENT: u64 = 2;

/// Jaeger's query service of the native stack.
pub fn jaeger() -> Jaeger {
    Jaeger { base: crate::stack::jaeger_query_url() }
}

/// Now, in microseconds since the epoch (Jaeger's unit).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// A W3C `traceparent` for a sampled trace of our own: (header, trace id, parent span id).
pub fn traceparent() -> (String, String, String) {
    use std::hash::{BuildHasher, RandomState};
    let random = || RandomState::new().hash_one(now_us());
    let trace = format!("{:016x}{:016x}", random(), random());
    let parent = format!("{:016x}", random());
    (format!("00-{trace}-{parent}-01"), trace, parent)
}

/// A request to the stack's API with `traceparent` and the stack's token (a POST of `body`, or a
/// GET without); returns the status and the body.
fn request(path: &str, traceparent: &str, body: Option<&str>) -> anyhow::Result<(u16, String)> {
    let token = super::load_options()?.token.unwrap_or_default();
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str()), ("traceparent", traceparent)];
    testkit::http_request(&format!("{}{path}", load::DEFAULT_URL), &headers, body)
}

/// Waits until Jaeger holds trace `id` and `whole` says it has all it should.
fn wait_trace(id: &str, whole: impl Fn(&Trace) -> bool) -> Option<Trace> {
    let jaeger = jaeger();
    let last = std::cell::RefCell::new(None);
    let _ = testkit::wait_for(&format!("trace {id} in Jaeger"), ARRIVAL, || {
        let t = jaeger.trace(id)?;
        let done = t.as_ref().is_some_and(&whole);
        *last.borrow_mut() = t;
        Ok(done.then_some(()))
    });
    last.into_inner()
}

/// An export requested with a known `traceparent` is one trace in Jaeger: the API's server span
/// (a child of the client's span), its Postgres spans, the enqueue's `send` span, and the worker's
/// `process` span (a child of `send`) with its own Postgres spans.
pub fn export_followed(checks: &mut Checks) -> anyhow::Result<()> {
    super::step(
        "traces: an export with a known traceparent, from the API through the queue to the worker",
    );
    let (header, trace_id, client_span) = traceparent();
    let body = r#"{"kind":"employee_metrics","format":"csv"}"#;
    let (status, answer) = request("/api/exports", &header, Some(body))?;
    anyhow::ensure!(status == 202, "POST /api/exports: {status} {answer}");
    let trace = wait_trace(&trace_id, |t| {
        t.spans.iter().any(|s| s.service == "worker" && s.kind == "consumer")
            && t.spans.iter().any(|s| s.service == "worker" && s.name.starts_with("attempt"))
    });
    let Some(trace) = trace else {
        checks.fail(
            &format!(
                "trace {trace_id} of POST /api/exports reached Jaeger with the worker's spans"
            ),
            "not found within 60 s (or without a worker consumer span)",
        );
        return Ok(());
    };
    let summary = summarise(&trace);
    println!("    trace {trace_id}:\n{summary}");
    let server = trace.named("api", "POST /api/exports").find(|s| s.kind == "server");
    checks.check(
        "the API's server span `POST /api/exports` continues the client's traceparent",
        server.is_some_and(|s| s.parent.as_deref() == Some(client_span.as_str())),
        || format!("client span {client_span}; trace:\n{summary}"),
    );
    let server_id = server.map(|s| s.id.clone()).unwrap_or_default();
    let under = |service: &str, ancestor: &str, pick: &dyn Fn(&super::jaeger::Span) -> bool| {
        trace
            .spans
            .iter()
            .filter(|s| s.service == service && pick(s) && trace.descends(s, ancestor))
            .count()
    };
    let postgres = |s: &super::jaeger::Span| {
        s.kind == "client" && s.tag("db.system.name").as_deref() == Some("postgresql")
    };
    let api_queries = under("api", &server_id, &postgres);
    checks.check(
        &format!("the API's Postgres queries are client spans under it ({api_queries})"),
        api_queries >= 2,
        || summary.clone(),
    );
    let send = trace.spans.iter().find(|s| s.service == "api" && s.kind == "producer");
    checks.check(
        "the enqueue is a `send` producer span under the server span",
        send.is_some_and(|s| s.name.starts_with("send") && trace.descends(s, &server_id)),
        || summary.clone(),
    );
    let send_id = send.map(|s| s.id.clone()).unwrap_or_default();
    let process = trace.spans.iter().find(|s| s.service == "worker" && s.kind == "consumer");
    checks.check(
        "the worker's `process` consumer span continues the `send` span (service.name worker)",
        process.is_some_and(|s| {
            s.name.starts_with("process")
                && (s.parent.as_deref() == Some(send_id.as_str()) || s.links.contains(&send_id))
        }),
        || summary.clone(),
    );
    let process_id = process.map(|s| s.id.clone()).unwrap_or_default();
    let worker_queries = under("worker", &process_id, &postgres);
    checks.check(
        &format!("the worker's Postgres queries are client spans under it ({worker_queries})"),
        worker_queries >= 2,
        || summary.clone(),
    );
    checks.check(
        "the trace is whole: one root, every parent present",
        trace.incomplete(Some(&client_span)).is_none(),
        || trace.incomplete(Some(&client_span)).unwrap_or_default(),
    );
    Ok(())
}

/// The traces of the requests made between `start` and `end` (µs): at least [`COMPLETE`] of
/// the `requests` the client made have one, and as many of those are whole. Searched in 10 s
/// windows (Jaeger answers a window's traces at once).
pub fn load_complete(checks: &mut Checks, (start, end): (u64, u64), requests: u64) {
    super::step("traces: every trace of the healthy load is whole");
    let jaeger = jaeger();
    let mut traces = std::collections::HashMap::new();
    let window = 10_000_000;
    let mut from = start;
    while from < end {
        let to = (from + window).min(end);
        let search = jaeger_search("api", None, (None, None), (from.into(), to.into()), 20_000);
        match jaeger.traces_at(&search) {
            Ok(found) => traces.extend(found.into_iter().map(|t| (t.id.clone(), t))),
            Err(e) => {
                checks.fail("Jaeger answers the load's trace searches", &format!("{e:#}"));
                return;
            }
        }
        from = to;
    }
    // The probes of the stack and of Prometheus are traced too; they are not the load's requests.
    traces.retain(|_, t| !t.roots().iter().any(|r| r.name.contains(" /health/")));
    let incomplete: Vec<String> = traces.values().filter_map(|t| t.incomplete(None)).collect();
    let found = traces.len() as f64;
    let whole = found - incomplete.len() as f64;
    let spans: usize = traces.values().map(|t| t.spans.len()).sum();
    println!(
        "    {} traces ({spans} spans) for {requests} requests, health probes aside; {} whole",
        traces.len(),
        whole
    );
    checks.check(
        &format!(
            "traces of the healthy load: {whole} of {found} whole ({:.2}%, at least {}%)",
            100.0 * whole / found.max(1.0),
            100.0 * COMPLETE
        ),
        found > 0.0 && whole / found >= COMPLETE,
        || incomplete.iter().take(5).cloned().collect::<Vec<_>>().join("\n"),
    );
    checks.check(
        &format!(
            "a trace for {found} of the load's {requests} requests ({:.2}%, at least {}%)",
            100.0 * found / requests.max(1) as f64,
            100.0 * COMPLETE
        ),
        found >= COMPLETE * requests as f64,
        || "requests without a trace: spans dropped or never sent".to_string(),
    );
}

/// An export whose first attempts fail transiently (the export directory replaced by a file, so
/// creating the file fails), restored once a retry began: its trace shows every attempt, each a
/// span under the job's `process` span, the failed ones with their error.
pub fn retried_job(checks: &mut Checks, exports: &std::path::Path) -> anyhow::Result<()> {
    super::step("traces: an export retried after a transient error shows each attempt");
    let aside = exports.with_extension("aside");
    std::fs::create_dir_all(exports)?;
    std::fs::rename(exports, &aside)?;
    std::fs::write(exports, "not a directory: the live proof's transient fault\n")?;
    let restore = || -> anyhow::Result<()> {
        if exports.is_file() {
            std::fs::remove_file(exports)?;
        }
        if aside.exists() {
            std::fs::rename(&aside, exports)?;
        }
        Ok(())
    };
    let (header, trace_id, client_span) = traceparent();
    let body = r#"{"kind":"employee_metrics","format":"jsonl"}"#;
    let sent = request("/api/exports", &header, Some(body));
    let job = sent.as_ref().ok().and_then(|(status, answer)| {
        let id =
            serde_json::from_str::<serde_json::Value>(answer).ok()?["id"].as_str()?.to_string();
        (*status == 202).then_some(id)
    });
    let Some(job) = job else {
        restore()?;
        anyhow::bail!("POST /api/exports for the retried job: {sent:?}");
    };
    // The first attempt fails at once; the retry waits RETRY_BASE_MS (500 ms), the next twice
    // that: restore while the second attempt is on.
    let retried = super::wait_until(Duration::from_secs(30), || {
        super::sql(&format!("SELECT attempts FROM jobs WHERE id = '{job}'"))
            .is_ok_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 2))
    });
    restore()?;
    let finished = super::wait_until(Duration::from_secs(60), || {
        super::sql(&format!("SELECT status FROM jobs WHERE id = '{job}'"))
            .is_ok_and(|s| s == "done" || s == "failed")
    });
    let row = super::sql(&format!("SELECT status || ' ' || attempts FROM jobs WHERE id = '{job}'"))
        .unwrap_or_default();
    println!("    job {job}: {row} (retried: {retried}, finished: {finished})");
    let attempts: usize = row.split(' ').nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    let trace = wait_trace(&trace_id, |t| {
        t.spans.iter().filter(|s| s.service == "worker" && s.name.starts_with("attempt")).count()
            >= attempts.max(2)
    });
    let Some(trace) = trace else {
        checks.fail("the retried export's trace reached Jaeger", "not within 60 s");
        return Ok(());
    };
    let summary = summarise(&trace);
    println!("    trace {trace_id}:\n{summary}");
    let mut spans: Vec<_> = trace
        .spans
        .iter()
        .filter(|s| s.service == "worker" && s.name.starts_with("attempt"))
        .collect();
    spans.sort_by_key(|s| s.start);
    let failed_first = spans.split_last().is_some_and(|(_, before)| {
        !before.is_empty()
            && before.iter().all(|s| s.error && s.tag("error.type").as_deref() == Some("transient"))
    });
    checks.check(
        &format!("the retried export's trace holds each of its {attempts} attempts as a span"),
        retried && attempts >= 2 && spans.len() == attempts,
        || format!("job {row}, attempt spans {}; trace:\n{summary}", spans.len()),
    );
    checks.check(
        "every attempt but the last failed transiently (error.type transient, status error)",
        failed_first,
        || summary.clone(),
    );
    checks.check(
        "the retried export's trace is whole",
        trace.incomplete(Some(&client_span)).is_none(),
        || trace.incomplete(Some(&client_span)).unwrap_or_default(),
    );
    Ok(())
}

/// A traced read, sent now: its trace reaches Jaeger (after the collector came back: traces
/// resume).
pub fn traces_resume(checks: &mut Checks) -> anyhow::Result<()> {
    let (header, trace_id, _) = traceparent();
    let (status, body) = request("/api/graph/stats", &header, None)?;
    anyhow::ensure!(status == 200, "GET /api/graph/stats: {status} {body}");
    let found = wait_trace(&trace_id, |t| t.spans.iter().any(|s| s.kind == "server"));
    checks.check(
        "after the collector's restart traces resume: a new request's trace is in Jaeger",
        found.is_some(),
        || format!("trace {trace_id} not in Jaeger within {ARRIVAL:?}"),
    );
    Ok(())
}

/// The spans lost so far (counted by the services, as Prometheus holds it).
pub fn spans_lost() -> f64 {
    super::prom::value(LOST_SPANS).ok().flatten().unwrap_or(0.0)
}

/// The services' count of spans that never reached the collector: exports that failed, and
/// spans refused by a full queue.
pub const LOST_SPANS: &str = "sum(otel_sdk_exporter_span_exported_total{error_type!=\"\"}) \
    + sum(otel_sdk_processor_span_processed_total{error_type=\"queue_full\"})";

/// Every Grafana link to traces, as the Jaeger search it makes over the proof's time range, runs
/// and finds traces; a link that also filters (errors only, a minimum duration) may find none when
/// nothing of its operation failed or was that slow in the proof (the export panel's 5 minutes),
/// but then the same search without the filter must find its operation's traces: the service and
/// operation the link names are real.
pub fn grafana_links_answer(checks: &mut Checks, (start, end): (u64, u64)) {
    super::step("traces: the Jaeger searches of the dashboards' trace links return traces");
    let links = match xtask::dashboards::trace_links() {
        Ok(links) => links,
        Err(e) => {
            return checks.fail("the dashboards' trace links are readable", &format!("{e:#}"));
        }
    };
    let jaeger = jaeger();
    let range = (u128::from(start), u128::from(end));
    let (mut found, mut unmatched) = (0, 0);
    for link in links {
        let search = link.jaeger_search(range.0, range.1, 20);
        let what = format!("{} / {}: {search}", link.dashboard, link.panel);
        match jaeger.traces_at(&search) {
            Err(e) => checks.fail(&format!("{what} runs"), &format!("{e:#}")),
            Ok(traces) if !traces.is_empty() => found += 1,
            Ok(_) if link.tags.is_none() && link.min_duration.is_none() => {
                checks.fail(&format!("{what} finds traces"), "none in the proof's time range")
            }
            Ok(_) => {
                let unfiltered = xtask::trace_links::TraceLink {
                    tags: None,
                    min_duration: None,
                    ..link.clone()
                };
                let search = unfiltered.jaeger_search(range.0, range.1, 20);
                let traces = jaeger.traces_at(&search);
                let filter = link.tags.as_deref().or(link.min_duration.as_deref()).unwrap_or("");
                checks.check(
                    &format!(
                        "{what}: no trace matched `{filter}` in the proof, and without that filter \
                         the link finds its operation's traces"
                    ),
                    traces.as_ref().is_ok_and(|t| !t.is_empty()),
                    || format!("{search}: {traces:?}"),
                );
                unmatched += 1;
            }
        }
    }
    println!("    {found} trace links found traces; {unmatched} filtered ones matched none");
}

/// One line per span: service, kind, name, and its depth.
fn summarise(trace: &Trace) -> String {
    let mut spans: Vec<_> = trace.spans.iter().collect();
    spans.sort_by_key(|s| s.start);
    spans
        .iter()
        .map(|s| {
            let depth = trace.spans.iter().filter(|a| trace.descends(s, &a.id)).count();
            format!(
                "      {}{} [{} {}]{}",
                "  ".repeat(depth),
                s.name,
                s.service,
                s.kind,
                if s.error { " ERROR" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
