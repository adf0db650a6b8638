//! The live fault matrix: faults users meet, injected into the running stack, and each alert that
//! names one followed in Prometheus (pending, firing), to Alertmanager's receiver (notified, or
//! held back by an inhibition because another alert already explains it), and to its end
//! (resolved after the fault is gone). Faults that do not disturb each other's signals run at the
//! same time. It ends with a table: alert, fault, time to pending, to firing, notified, resolved.

use super::sink::Sink;
use super::{Stack, prom};
use crate::load::{self, Options, Stop};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How often Prometheus and the sink are polled.
const POLL: Duration = Duration::from_secs(2);

/// How long a firing alert must go without a notification to count as held back: the longest
/// `group_wait` of alertmanager.yml (30 s for warnings) plus an evaluation and a margin.
const INHIBITED_AFTER: Duration = Duration::from_secs(60);

/// What must become of an alert's notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// It reaches the receiver at this path of the sink.
    Notified(&'static str),
    /// It fires in Prometheus but Alertmanager holds it back: a cause already paged.
    Inhibited,
    /// A symptom that may or may not get far: recorded, not checked.
    Observed,
}

/// One alert followed through one fault.
struct Watch {
    alert: &'static str,
    /// Labels the alert must carry (the alert of another service or breaker is another row).
    labels: &'static [(&'static str, &'static str)],
    fault: &'static str,
    expect: Expect,
    /// Whether it must resolve before the matrix ends.
    must_resolve: bool,
    since: Instant,
    pending: Option<Duration>,
    firing: Option<Duration>,
    notified: Option<Duration>,
    resolved: Option<Duration>,
}

impl Watch {
    fn matches(&self, name: &str, labels: &serde_json::Value) -> bool {
        name == self.alert && self.labels.iter().all(|(k, v)| labels[*k] == *v)
    }

    /// Whether what happens to its notification is known.
    fn settled(&self) -> bool {
        match (self.expect, self.firing) {
            (_, None) => false,
            (Expect::Notified(_), Some(_)) => self.notified.is_some(),
            (Expect::Inhibited, Some(firing)) => {
                self.notified.is_some() || self.since.elapsed() > firing + INHIBITED_AFTER
            }
            (Expect::Observed, Some(_)) => true,
        }
    }
}

/// The alerts followed so far, in the order they were added.
#[derive(Default)]
struct Matrix {
    watches: Vec<Watch>,
}

impl Matrix {
    fn watch(
        &mut self,
        alert: &'static str,
        labels: &'static [(&'static str, &'static str)],
        fault: &'static str,
        expect: Expect,
        must_resolve: bool,
    ) {
        self.watches.push(Watch {
            alert,
            labels,
            fault,
            expect,
            must_resolve,
            since: Instant::now(),
            pending: None,
            firing: None,
            notified: None,
            resolved: None,
        });
    }

    /// One look at Prometheus' alerts and the sink's notifications.
    fn poll(&mut self, sink: &Sink) -> anyhow::Result<()> {
        let active = prom::alerts()?;
        for watch in &mut self.watches {
            let state = active
                .iter()
                .filter(|(name, _, labels)| watch.matches(name, labels))
                .map(|(_, state, _)| state.as_str())
                .max_by_key(|state| *state == "firing");
            let now = watch.since.elapsed();
            match state {
                Some("firing") => {
                    watch.pending.get_or_insert(now);
                    watch.firing.get_or_insert(now);
                }
                Some(_) => {
                    watch.pending.get_or_insert(now);
                }
                None if watch.firing.is_some() || watch.pending.is_some() => {
                    watch.resolved.get_or_insert(now);
                }
                None => {}
            }
            let path = match watch.expect {
                Expect::Notified(path) => Some(path),
                Expect::Inhibited | Expect::Observed => None,
            };
            if watch.notified.is_none()
                && let Some((_, _, at)) = sink
                    .notified(path, "firing")
                    .into_iter()
                    .find(|(name, labels, at)| watch.matches(name, labels) && *at >= watch.since)
            {
                watch.notified = Some(at.duration_since(watch.since));
            }
        }
        Ok(())
    }

    /// [`Matrix::poll`]; a failed look (Prometheus busy) is said and the next poll tries again.
    fn poll_or_warn(&mut self, sink: &Sink) {
        if let Err(e) = self.poll(sink) {
            eprintln!("    (poll failed, retrying: {e:#})");
        }
    }

    /// Polls for `how_long`, so the times of what happens meanwhile are known.
    fn observe_for(&mut self, sink: &Sink, how_long: Duration) {
        let started = Instant::now();
        while started.elapsed() < how_long {
            self.poll_or_warn(sink);
            std::thread::sleep(POLL);
        }
    }

    /// Polls until `done` holds for every watch of `fault`, or `deadline` passes.
    fn wait(&mut self, sink: &Sink, fault: &str, deadline: Duration, done: fn(&Watch) -> bool) {
        let started = Instant::now();
        loop {
            self.poll_or_warn(sink);
            let open: Vec<&str> = self
                .watches
                .iter()
                .filter(|w| w.fault == fault && !done(w))
                .map(|w| w.alert)
                .collect();
            if open.is_empty() {
                return;
            }
            if started.elapsed() > deadline {
                println!("    gave up waiting after {deadline:?} on: {}", open.join(", "));
                return;
            }
            std::thread::sleep(POLL);
        }
    }

    /// The checks: every watch that expects something got it.
    fn check(&self, checks: &mut super::Checks) {
        for w in &self.watches {
            let ok = match w.expect {
                Expect::Notified(_) => w.firing.is_some() && w.notified.is_some(),
                Expect::Inhibited => w.firing.is_some() && w.notified.is_none(),
                // Only in the table: nothing is expected of it, so it is no check.
                Expect::Observed => continue,
            } && (!w.must_resolve || w.resolved.is_some());
            let what = format!("{} ({}): {}", w.alert, w.fault, expectation(w.expect));
            checks.check(&what, ok, || {
                format!(
                    "pending {:?}, firing {:?}, notified {:?}, resolved {:?} (must resolve: {})",
                    w.pending, w.firing, w.notified, w.resolved, w.must_resolve
                )
            });
        }
    }

    /// The table of the closing note.
    fn table(&self) -> String {
        let secs =
            |d: Option<Duration>| d.map_or("-".to_string(), |d| format!("{} s", d.as_secs()));
        let mut out = String::from(
            "| alert | fault | pending | firing | notified | resolved |\n|---|---|---|---|---|---|\n",
        );
        for w in &self.watches {
            let notified = match (w.expect, w.notified) {
                (Expect::Inhibited, None) if w.firing.is_some() => "inhibited".to_string(),
                (_, Some(d)) => format!("{} s", d.as_secs()),
                (_, None) => "-".to_string(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {notified} | {} |",
                w.alert,
                w.fault,
                secs(w.pending),
                secs(w.firing),
                secs(w.resolved)
            );
        }
        out
    }
}

fn expectation(expect: Expect) -> &'static str {
    match expect {
        Expect::Notified(_) => "fires, reaches its receiver and resolves",
        Expect::Inhibited => "fires and is held back by the alert that explains it",
        Expect::Observed => "recorded in the table only",
    }
}

/// Runs the matrix and records its checks; returns how many jobs its load got accepted (202), so
/// the caller can check none was lost. Times are from each fault's start.
pub fn run(
    checks: &mut super::Checks,
    stack: &Stack,
    sink: &Sink,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<u64> {
    let mut matrix = Matrix::default();
    postgres_hung_and_worker_killed(&mut matrix, checks, stack, sink, runtime)?;
    api_killed_then_crash_looping(&mut matrix, stack, sink)?;
    let accepted = alertmanager_unreachable_and_a_lock_held(&mut matrix, stack, sink, runtime)?;
    collector_refusing(&mut matrix, stack, sink)?;
    let watchdog = sink.notified(Some("/watchdog"), "firing");
    checks.check(
        "the Watchdog reached its own receiver (/watchdog), and only there",
        watchdog.iter().any(|(name, _, _)| name == "Watchdog")
            && !sink.notified(Some("/alerts"), "firing").iter().any(|(n, _, _)| n == "Watchdog"),
        || format!("at /watchdog: {:?}", watchdog.iter().map(|w| &w.0).collect::<Vec<_>>()),
    );
    matrix.check(checks);
    println!("\nfault matrix:\n{}", matrix.table());
    Ok(accepted)
}

const POSTGRES_HUNG: &str = "Postgres hung (SIGSTOP) under load";
const WORKER_KILLED: &str = "worker killed (SIGKILL)";

/// Postgres hangs (postmaster and backends stopped: open connections hang too) while the API is
/// under load, and at the same time the worker is killed: independent signals (the API's breaker
/// and errors; the worker's probe and uptime).
fn postgres_hung_and_worker_killed(
    matrix: &mut Matrix,
    checks: &mut super::Checks,
    stack: &Stack,
    sink: &Sink,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    super::step("fault matrix 1/4: Postgres hung under load, and the worker killed");
    let recording_from = super::record::now() - super::record::BEFORE.as_secs_f64();
    let load = runtime.spawn(load::run(Options {
        stop: Stop::After(Duration::from_secs(240)),
        rate: Some(30.0),
        concurrency: 8,
        seed: 8,
        mix: load::Mix::parse("reads=80,updates=20").map_err(anyhow::Error::msg)?,
        ..Options::default()
    }));
    stack.run(&["kill", "worker"])?;
    stack.run(&["pause", "postgres"])?;
    const API_POSTGRES: &[(&str, &str)] =
        &[("job", "orgraph/api"), ("circuit_breaker_name", "postgres")];
    matrix.watch("WorkerDown", &[], WORKER_KILLED, Expect::Notified("/alerts"), true);
    matrix.watch("WorkerNotExporting", &[], WORKER_KILLED, Expect::Inhibited, true);
    matrix.watch(
        "CircuitBreakerOpen",
        API_POSTGRES,
        POSTGRES_HUNG,
        Expect::Notified("/alerts"),
        true,
    );
    matrix.watch("ApiHighErrorRate", &[], POSTGRES_HUNG, Expect::Observed, false);
    matrix.watch("ApiAvailabilitySLOFastBurn", &[], POSTGRES_HUNG, Expect::Observed, false);
    matrix.wait(sink, WORKER_KILLED, Duration::from_secs(330), Watch::settled);
    matrix.wait(sink, POSTGRES_HUNG, Duration::from_secs(60), |w| {
        w.expect == Expect::Observed || w.settled()
    });
    stack.run(&["resume", "postgres"])?;
    stack.run(&["start", "worker"])?;
    let faulty = runtime.block_on(load)?;
    checks.check(
        "with Postgres hung the API answered (503s), it did not hang past its timeout or drop connections",
        faulty.as_ref().is_ok_and(|r| r.errors == 0 && r.by_status.contains_key("503")),
        || format!("{faulty:?}"),
    );
    let resolved = |w: &Watch| !w.must_resolve || w.resolved.is_some();
    matrix.wait(sink, WORKER_KILLED, Duration::from_secs(180), resolved);
    matrix.wait(sink, POSTGRES_HUNG, Duration::from_secs(120), resolved);
    match super::record::write("postgres_hung", recording_from) {
        Ok(path) => println!("    recorded the API's request counters to {}", path.display()),
        Err(e) => checks.fail("recording the API's request counters", &format!("{e:#}")),
    }
    Ok(())
}

const API_KILLED: &str = "API killed (SIGKILL)";
const API_CRASH_LOOP: &str = "API crash loop (4 starts, killed after 20 s each)";

/// The API killed: the probe says so within a minute and a scrape. Then a crash loop: it starts,
/// exports for a while and dies, four times.
fn api_killed_then_crash_looping(
    matrix: &mut Matrix,
    stack: &Stack,
    sink: &Sink,
) -> anyhow::Result<()> {
    super::step("fault matrix 2/4: the API killed, then crash-looping");
    stack.run(&["kill", "api"])?;
    matrix.watch("ApiDown", &[], API_KILLED, Expect::Notified("/alerts"), true);
    matrix.wait(sink, API_KILLED, Duration::from_secs(150), Watch::settled);
    // The crash loop is still going when the alert must fire; it stays firing for its 15-minute
    // window after the loop ends, so it is not waited for to resolve.
    const API: &[(&str, &str)] = &[("service", "api")];
    matrix.watch("ServiceCrashLooping", API, API_CRASH_LOOP, Expect::Notified("/alerts"), false);
    for _ in 0..4 {
        stack.run(&["start", "api"])?;
        matrix.observe_for(sink, Duration::from_secs(20));
        stack.run(&["kill", "api"])?;
    }
    matrix.wait(sink, API_CRASH_LOOP, Duration::from_secs(90), Watch::settled);
    stack.run(&["start", "api"])?;
    matrix.wait(sink, API_KILLED, Duration::from_secs(120), |w| w.resolved.is_some());
    Ok(())
}

const ALERTMANAGER_DOWN: &str = "Alertmanager unreachable (stopped)";
const LOCK_HELD: &str = "influence_scores locked by a stuck transaction";

/// How long the stuck transaction holds its lock: past QueueStalled's 3 minutes + 1 for the
/// analysis enqueued after the first (which holds the only analysis slot, waiting to write).
const LOCK_FOR: Duration = Duration::from_secs(330);

/// Two faults at once, whose signals do not cross (Alertmanager only delays notifications):
/// * Alertmanager stopped: Prometheus cannot hand it alerts (the Watchdog is always there to
///   send); the alert about it reaches the Watchdog's receiver once Alertmanager is back.
/// * A transaction holds an exclusive lock on `influence_scores` for minutes, while exports and
///   analyses are requested: every export waits on it until its timeout (slower than
///   EXPORT_SLOW_MS), the running analysis waits to write its scores, and the analyses behind it
///   wait in the queue: the worker answers and exports, but its analysis queue is stuck.
fn alertmanager_unreachable_and_a_lock_held(
    matrix: &mut Matrix,
    stack: &Stack,
    sink: &Sink,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<u64> {
    super::step("fault matrix 3/4: Alertmanager unreachable; a lock held for minutes");
    let mut lock = super::psql_background(&format!(
        "BEGIN; LOCK TABLE influence_scores IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep({}); COMMIT;",
        LOCK_FOR.as_secs()
    ))?;
    // One job every 5 s: exports keep timing out for the whole lock (ExportLatencyHigh needs 5
    // minutes of it), and analyses pile up behind the one waiting to write.
    let jobs = runtime.spawn(load::run(Options {
        stop: Stop::After(LOCK_FOR - Duration::from_secs(30)),
        rate: Some(0.2),
        concurrency: 4,
        seed: 13,
        mix: load::Mix::parse("analysis=1,exports=2").map_err(anyhow::Error::msg)?,
        ..Options::default()
    }));
    stack.run(&["stop", "alertmanager"])?;
    matrix.watch(
        "PrometheusNotificationsFailing",
        &[],
        ALERTMANAGER_DOWN,
        Expect::Notified("/watchdog"),
        false,
    );
    const ANALYSIS: &[(&str, &str)] = &[("messaging_destination_name", "analysis")];
    matrix.watch("QueueStalled", ANALYSIS, LOCK_HELD, Expect::Notified("/alerts"), true);
    matrix.watch("ExportLatencyHigh", &[], LOCK_HELD, Expect::Notified("/alerts"), false);
    matrix.watch("WorkerTaskFailureRateHigh", &[], LOCK_HELD, Expect::Observed, false);
    matrix.wait(sink, ALERTMANAGER_DOWN, Duration::from_secs(180), |w| w.firing.is_some());
    stack.run(&["start", "alertmanager"])?;
    matrix.wait(sink, ALERTMANAGER_DOWN, Duration::from_secs(90), Watch::settled);
    // ExportLatencyHigh: a 5-minute P95 above the threshold for 5 minutes, notified after its
    // group_wait (1 minute for infos).
    matrix.wait(sink, LOCK_HELD, Duration::from_secs(480), |w| {
        w.expect == Expect::Observed || w.settled()
    });
    let status = lock.wait()?;
    anyhow::ensure!(status.success(), "the locking transaction failed: {status}");
    let jobs = runtime.block_on(jobs)??;
    matrix.wait(sink, LOCK_HELD, Duration::from_secs(120), |w| {
        !w.must_resolve || w.resolved.is_some()
    });
    Ok(jobs.by_status.get("202").copied().unwrap_or(0))
}

const COLLECTOR_REFUSING: &str = "collector refusing data (memory limiter at 2 MiB)";

/// The collector restarted with a memory limit it is always over: its memory limiter refuses
/// every export. The services' series stand still; the alert about the collector explains it and
/// holds back the services' "not exporting" alerts.
fn collector_refusing(matrix: &mut Matrix, stack: &Stack, sink: &Sink) -> anyhow::Result<()> {
    super::step("fault matrix 4/4: the collector refusing data");
    stack.run(&["stop", "collector"])?;
    let starved = [("COLLECTOR_MEMORY_LIMIT_MIB", "2"), ("COLLECTOR_MEMORY_SPIKE_LIMIT_MIB", "1")];
    stack.run_with(&["start", "collector"], &starved)?;
    matrix.watch(
        "OtelCollectorRefusingData",
        &[],
        COLLECTOR_REFUSING,
        Expect::Notified("/alerts"),
        true,
    );
    matrix.watch("ApiNotExporting", &[], COLLECTOR_REFUSING, Expect::Inhibited, true);
    matrix.watch("WorkerNotExporting", &[], COLLECTOR_REFUSING, Expect::Inhibited, true);
    matrix.wait(sink, COLLECTOR_REFUSING, Duration::from_secs(300), Watch::settled);
    stack.run(&["stop", "collector"])?;
    stack.run(&["start", "collector"])?;
    matrix.wait(sink, COLLECTOR_REFUSING, Duration::from_secs(150), |w| w.resolved.is_some());
    Ok(())
}
