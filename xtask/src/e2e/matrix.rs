//! The live fault matrix: faults users meet, injected into the running stack, and each alert that
//! names one followed in Prometheus (pending, firing), to Alertmanager's receiver (notified, or
//! held back by an inhibition because another alert already explains it), and to its end
//! (resolved after the fault is gone). Faults that do not disturb each other's signals run at the
//! same time. It ends with a table: alert, fault, time to pending, to firing, notified, resolved.

use super::faults::{LockBursts, PrometheusConfig, TableLock};
use super::platform_faults::{ConnectionHog, RedisFill};
use super::sink::Sink;
use super::{Stack, prom};
use load::{Options, Stop};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often Prometheus and the sink are polled.
const POLL: Duration = Duration::from_secs(2);

/// What must become of an alert's notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// It reaches the receiver at this path of the sink.
    Notified(&'static str),
    /// It fires in Prometheus and Alertmanager holds it back (inhibited, by its API): a cause
    /// already said it; it is never notified while its fault lasts.
    Inhibited,
    /// A symptom that may or may not get far: recorded, not checked.
    Observed,
}

/// One alert followed through one fault.
struct Watch {
    alert: &'static str,
    /// Labels the alert must carry (the alert of another service or breaker is another row); a
    /// value starting with `*` matches the values that end with the rest.
    labels: &'static [(&'static str, &'static str)],
    fault: &'static str,
    expect: Expect,
    /// Whether it must resolve before the matrix ends.
    must_resolve: bool,
    since: Instant,
    /// When its fault was lifted. A held-back alert whose window outlasts its cause's (the cause
    /// resolves first) may still be notified after this: its tail, said in the table.
    ended: Option<Duration>,
    pending: Option<Duration>,
    firing: Option<Duration>,
    notified: Option<Duration>,
    /// When Alertmanager first said it held it back by an inhibition.
    inhibited: Option<Duration>,
    /// The notification group it first arrived in, and its severity.
    group: Option<(String, String)>,
    resolved: Option<Duration>,
}

impl Watch {
    fn matches(&self, name: &str, labels: &serde_json::Value) -> bool {
        name == self.alert
            && self.labels.iter().all(|(k, v)| {
                let value = labels[*k].as_str().unwrap_or_default();
                match v.strip_prefix('*') {
                    Some(suffix) => value.ends_with(suffix),
                    None => value == *v,
                }
            })
    }

    /// Whether it was notified before its fault was lifted.
    fn notified_during_fault(&self) -> bool {
        match (self.notified, self.ended) {
            (None, _) => false,
            (Some(at), Some(ended)) => at <= ended,
            (Some(_), None) => true,
        }
    }

    /// Whether what happens to its notification is known.
    fn settled(&self) -> bool {
        match (self.expect, self.firing) {
            (_, None) => false,
            (Expect::Notified(_), Some(_)) => self.notified.is_some(),
            (Expect::Inhibited, Some(_)) => self.notified.is_some() || self.inhibited.is_some(),
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
            ended: None,
            pending: None,
            firing: None,
            notified: None,
            inhibited: None,
            group: None,
            resolved: None,
        });
    }

    /// One look at Prometheus' alerts and the sink's notifications.
    fn poll(&mut self, sink: &Sink) -> anyhow::Result<()> {
        let active = prom::alerts()?;
        // Only asked while someone waits to see an alert held back (Alertmanager may be down).
        let held_back =
            if self.watches.iter().any(|w| {
                w.expect == Expect::Inhibited && w.firing.is_some() && w.inhibited.is_none()
            }) {
                prom::inhibited().unwrap_or_default()
            } else {
                Vec::new()
            };
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
                // Resolved once it fired: a pending alert that drops back never fired.
                None if watch.firing.is_some() => {
                    watch.resolved.get_or_insert(now);
                }
                None => {}
            }
            if watch.inhibited.is_none()
                && watch.firing.is_some()
                && held_back.iter().any(|labels| {
                    labels["alertname"].as_str().is_some_and(|name| watch.matches(name, labels))
                })
            {
                watch.inhibited = Some(now);
            }
            let path = match watch.expect {
                Expect::Notified(path) => Some(path),
                Expect::Inhibited | Expect::Observed => None,
            };
            if watch.notified.is_none()
                && let Some(n) = sink
                    .notified(path, "firing")
                    .into_iter()
                    .find(|n| watch.matches(&n.name, &n.labels) && n.at >= watch.since)
            {
                watch.notified = Some(n.at.duration_since(watch.since));
                let severity = n.labels["severity"].as_str().unwrap_or_default().to_string();
                watch.group = Some((n.group, severity));
            }
        }
        Ok(())
    }

    /// Marks `fault` lifted, now.
    fn end(&mut self, fault: &str) {
        for w in self.watches.iter_mut().filter(|w| w.fault == fault) {
            w.ended.get_or_insert(w.since.elapsed());
        }
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
        self.wait_for(sink, deadline, |w| w.fault != fault || done(w));
    }

    /// Polls until `done` holds for every watch, or `deadline` passes (then says which did not).
    fn wait_for(&mut self, sink: &Sink, deadline: Duration, done: impl Fn(&Watch) -> bool) {
        let started = Instant::now();
        loop {
            self.poll_or_warn(sink);
            let open: Vec<&str> =
                self.watches.iter().filter(|w| !done(w)).map(|w| w.alert).collect();
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
                Expect::Inhibited => {
                    w.firing.is_some() && w.inhibited.is_some() && !w.notified_during_fault()
                }
                // Only in the table: nothing is expected of it, so it is no check.
                Expect::Observed => continue,
            } && (!w.must_resolve || w.resolved.is_some());
            let what = format!("{} ({}): {}", w.alert, w.fault, expectation(w.expect));
            checks.check(&what, ok, || {
                format!(
                    "pending {:?}, firing {:?}, notified {:?}, inhibited {:?}, resolved {:?} (must resolve: {})",
                    w.pending, w.firing, w.notified, w.inhibited, w.resolved, w.must_resolve
                )
            });
        }
    }

    /// Checks that the pages and warnings notified for one incident (`faults`: one cause, seen
    /// through several faults) arrived in one notification group: one thread, one page, its causes
    /// as updates of it (infos go to their own, daily group). Says how many notifications the
    /// group took.
    fn check_one_group(
        &self,
        checks: &mut super::Checks,
        sink: &Sink,
        incident: &str,
        faults: &[&str],
    ) {
        let of_incident = || self.watches.iter().filter(|w| faults.contains(&w.fault));
        // The incident lasts until its last fault is lifted (a page notified after the hang ended,
        // while the lock it brought lasts, is one of its alerts).
        let ended = of_incident()
            .map(|w| w.ended.map(|d| w.since + d))
            .try_fold(None, |last: Option<Instant>, end| end.map(|e| last.max(Some(e))));
        let notified: Vec<&Watch> = of_incident()
            .filter(|w| match (w.notified, ended) {
                (None, _) => false,
                (Some(at), Some(Some(end))) => w.since + at <= end,
                (Some(_), _) => true,
            })
            .filter(|w| w.group.as_ref().is_some_and(|(_, severity)| severity != "info"))
            .collect();
        let mut groups: Vec<&str> =
            notified.iter().filter_map(|w| w.group.as_ref()).map(|(g, _)| g.as_str()).collect();
        groups.sort_unstable();
        groups.dedup();
        let posts = sink.posts(groups.first().copied().unwrap_or_default());
        let names: Vec<&str> = notified.iter().map(|w| w.alert).collect();
        checks.check(
            &format!("{incident}: one notification group for {}", names.join(", ")),
            notified.len() > 1 && groups.len() == 1,
            || format!("groups: {groups:?}"),
        );
        println!(
            "    {incident}: {} alerts in {} group(s); the first group took {posts} notifications \
             over the whole run (updates as alerts joined or resolved, and repeats)",
            names.len(),
            groups.len()
        );
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
                (Expect::Inhibited, None) if w.inhibited.is_some() => {
                    format!("inhibited at {} s", w.inhibited.map_or(0, |d| d.as_secs()))
                }
                (Expect::Inhibited, Some(d)) if !w.notified_during_fault() => format!(
                    "inhibited; {} s, after the fault ended (its cause resolved first)",
                    d.as_secs()
                ),
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
    let faults = faults(&mut matrix, checks, stack, sink, runtime);
    if faults.is_ok() {
        // Alerts that outlast their fault by a window resolved meanwhile, or do now.
        matrix
            .wait_for(sink, Duration::from_secs(300), |w| !w.must_resolve || w.resolved.is_some());
    }
    let watchdog = sink.notified(Some("/watchdog"), "firing");
    checks.check(
        "the Watchdog reached its own receiver (/watchdog), and only there",
        watchdog.iter().any(|n| n.name == "Watchdog")
            && !sink.notified(Some("/alerts"), "firing").iter().any(|n| n.name == "Watchdog"),
        || format!("at /watchdog: {:?}", watchdog.iter().map(|n| &n.name).collect::<Vec<_>>()),
    );
    // The table also when a fault could not be injected: what happened until then.
    matrix.check(checks);
    matrix.check_one_group(
        checks,
        sink,
        "the API's Postgres outage",
        &[POSTGRES_HUNG, EMPLOYEES_LOCKED],
    );
    matrix.check_one_group(
        checks,
        sink,
        "the worker's locked table",
        &[QUEUE_BACKED_UP, EXPORTS_LOCKED],
    );
    println!("\nfault matrix:\n{}", matrix.table());
    faults
}

/// The faults, one phase after another; returns how many jobs their loads got accepted.
fn faults(
    matrix: &mut Matrix,
    checks: &mut super::Checks,
    stack: &Stack,
    sink: &Sink,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<u64> {
    let config = PrometheusConfig::new(&stack.prometheus_config)?;
    database_outage_and_worker_killed(matrix, checks, stack, sink, runtime, &config)?;
    let (lock, backed_up) = analysis_queue_locked(matrix, checks, runtime)?;
    api_killed_then_crash_looping(matrix, stack, sink)?;
    let accepted =
        alertmanager_unreachable_exports_locked_api_slowed(matrix, stack, sink, runtime, lock)?;
    collector_refusing_then_down(matrix, stack, sink)?;
    platform_faulted(matrix, checks, stack, sink)?;
    Ok(backed_up + accepted)
}

const POSTGRES_HUNG: &str = "Postgres hung (SIGSTOP) under load";
/// The same hang, as the collector's scrapes of Postgres see it: a fault of its own in the table,
/// because its alert is about Postgres (`service` postgres), not the API's incident.
const POSTGRES_UNREACHABLE: &str = "Postgres hung: the collector's scrapes time out";
const WORKER_KILLED: &str = "worker killed (SIGKILL)";
const EMPLOYEES_LOCKED: &str =
    "employees locked by a stuck transaction under load (the pool jammed)";
const RECEIVER_DOWN: &str = "the alert receiver answering 500";
const RULE_BROKEN: &str = "a rule that fails at every evaluation deployed";
const CONFIG_BROKEN: &str = "prometheus.yml edited into one that does not load, reloaded";

/// The API's Postgres pool and breaker, as the alerts label them.
const API_POOL: &[(&str, &str)] =
    &[("job", "orgraph/api"), ("db_client_connection_pool_name", "postgres")];
const API_POSTGRES: &[(&str, &str)] =
    &[("job", "orgraph/api"), ("circuit_breaker_name", "postgres")];

/// The API's Postgres, jammed and then hung, while the worker is killed: independent signals (the
/// API's pool, cache and breaker; the worker's probe and uptime).
///
/// First a transaction holds the `employees` table locked for minutes under load: every query of
/// the API on that table waits, holding its connection, so the pool has none left and callers
/// time out waiting for one (503 "busy"); nothing can recompute the cached stats, so the cache
/// misses. Postgres answers all along, so the breaker stays closed: the saturated pool is the
/// cause, the timeouts and the misses its symptoms. Then, the lock released, Postgres hangs
/// (postmaster and backends stopped: open connections hang too): the breaker opens.
///
/// The alerting path is faulted meanwhile, which the services' faults do not touch: the default
/// receiver answers 500 until the alert about it reaches the Watchdog's receiver (Alertmanager's
/// retries then deliver what failed), and an operator deploys a rule that cannot evaluate, then
/// breaks `prometheus.yml` and reloads it.
fn database_outage_and_worker_killed(
    matrix: &mut Matrix,
    checks: &mut super::Checks,
    stack: &Stack,
    sink: &Sink,
    runtime: &tokio::runtime::Runtime,
    config: &PrometheusConfig,
) -> anyhow::Result<()> {
    super::step(
        "fault matrix 1/6: employees locked under load, the worker killed; the receiver failing, \
         Prometheus' rules and config broken; then Postgres hung",
    );
    alerting_path_faulted(matrix, sink, config)?;
    pool_jammed_worker_killed(matrix, checks, stack, sink, runtime)?;
    postgres_hung(matrix, checks, stack, sink, runtime)?;
    // The breaker closes: the API must answer the next faults' requests. The symptoms with
    // 5-minute windows (and the worker's alerts, the receiver's and the rule's) resolve during
    // the next faults; the matrix waits for every one at its end.
    super::api_ready(Duration::from_secs(120))?;
    let resolved = |w: &Watch| !w.must_resolve || w.resolved.is_some();
    matrix.wait(sink, RULE_BROKEN, Duration::from_secs(60), Watch::settled);
    matrix.wait(sink, CONFIG_BROKEN, Duration::from_secs(60), Watch::settled);
    config.restore()?;
    matrix.end(RULE_BROKEN);
    matrix.end(CONFIG_BROKEN);
    matrix.wait(sink, CONFIG_BROKEN, Duration::from_secs(60), resolved);
    Ok(())
}

/// The alerting path faulted: the default receiver refuses, a broken rule is deployed and
/// `prometheus.yml` broken (restored by the caller).
fn alerting_path_faulted(
    matrix: &mut Matrix,
    sink: &Sink,
    config: &PrometheusConfig,
) -> anyhow::Result<()> {
    sink.refuse(Some("/alerts"));
    matrix.watch(
        "AlertmanagerNotificationsFailing",
        &[("integration", "webhook")],
        RECEIVER_DOWN,
        Expect::Notified("/watchdog"),
        true,
    );
    config.deploy_broken_rule()?;
    matrix.watch(
        "PrometheusRuleEvaluationFailures",
        // Prometheus names a group `<file>;<name>`.
        &[("rule_group", "*;deployed.by.mistake")],
        RULE_BROKEN,
        Expect::Notified("/watchdog"),
        true,
    );
    config.break_config()?;
    matrix.watch(
        "AlertingConfigReloadFailed",
        &[("job", "prometheus")],
        CONFIG_BROKEN,
        Expect::Notified("/watchdog"),
        true,
    );
    Ok(())
}

/// `employees` locked under load while the worker is killed; the receiver comes back meanwhile.
fn pool_jammed_worker_killed(
    matrix: &mut Matrix,
    checks: &mut super::Checks,
    stack: &Stack,
    sink: &Sink,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let jammed = under_load(runtime, 8)?;
    let lock = TableLock::take("employees")?;
    let jam_started = Instant::now();
    stack.run(&["kill", "worker"])?;
    matrix.watch("WorkerDown", &[], WORKER_KILLED, Expect::Notified("/alerts"), true);
    matrix.watch("WorkerNotExporting", &[], WORKER_KILLED, Expect::Inhibited, true);
    matrix.watch(
        "ConnectionPoolSaturated",
        API_POOL,
        EMPLOYEES_LOCKED,
        Expect::Notified("/alerts"),
        true,
    );
    // The timeouts and the cache's misses are the saturation's symptoms.
    matrix.watch("ConnectionPoolTimeouts", API_POOL, EMPLOYEES_LOCKED, Expect::Inhibited, true);
    const L1: &[(&str, &str)] =
        &[("job", "orgraph/api"), ("cache_layer", "l1"), ("cache_name", "graph_stats")];
    const L2: &[(&str, &str)] =
        &[("job", "orgraph/api"), ("cache_layer", "l2"), ("cache_name", "graph_stats")];
    // L2 has been missing since Redis was stopped before the matrix (every look-up a miss), so it
    // fires within the jam, and proves the inhibition. L1 starts missing with the jam and would
    // need 10 minutes more: the same rule holds it back; its row is only recorded.
    matrix.watch("CacheHitRateLow", L2, EMPLOYEES_LOCKED, Expect::Inhibited, true);
    matrix.watch("CacheHitRateLow", L1, EMPLOYEES_LOCKED, Expect::Observed, false);
    // The receiver is back once the alert about it reached the Watchdog's receiver.
    matrix.wait(sink, RECEIVER_DOWN, Duration::from_secs(300), Watch::settled);
    sink.refuse(None);
    matrix.end(RECEIVER_DOWN);
    matrix.wait(sink, WORKER_KILLED, Duration::from_secs(330), Watch::settled);
    stack.run(&["start", "worker"])?;
    matrix.end(WORKER_KILLED);
    // Saturated: 5 minutes of a full pool. Timeouts: a 5-minute rate above 0.1/s for 7 minutes.
    // CacheHitRateLow (L2): under 50% for 10 minutes, from the Redis fault before the matrix. The
    // held-back ones once Alertmanager says so.
    matrix.wait(sink, EMPLOYEES_LOCKED, Duration::from_secs(780), |w| {
        w.expect == Expect::Observed || w.settled()
    });
    lock.release()?;
    matrix.end(EMPLOYEES_LOCKED);
    let jammed = jammed.finish(runtime)?;
    checks.check(
        "with employees locked the API answered (503s): it did not hang past its timeout or drop connections",
        jammed.as_ref().is_ok_and(|r| r.errors == 0 && r.by_status.contains_key("503")),
        || format!("{jammed:?}"),
    );
    // A breaker that opened under the jam would be a busy pool taken for an outage: its state
    // series over the whole jam, from Prometheus.
    let over = format!("{}s", jam_started.elapsed().as_secs());
    let not_closed = prom::value(&format!(
        "max(max_over_time(orgraph_circuit_breaker_state{{job=\"orgraph/api\", \
         circuit_breaker_name=\"postgres\", circuit_breaker_state!=\"closed\"}}[{over}]))"
    ));
    checks.check(
        &format!(
            "with employees locked (Postgres answering) the API's Postgres breaker never left closed in {over}"
        ),
        matches!(not_closed, Ok(Some(v)) if v == 0.0),
        || format!("max of its open/half-open state over the jam: {not_closed:?}"),
    );

    Ok(())
}

/// Postgres hung (SIGSTOP) under load until the breaker's alert is notified.
fn postgres_hung(
    matrix: &mut Matrix,
    checks: &mut super::Checks,
    stack: &Stack,
    sink: &Sink,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<()> {
    let recording_from = super::record::now() - super::record::BEFORE.as_secs_f64();
    let hung = under_load(runtime, 8)?;
    stack.run(&["pause", "postgres"])?;
    matrix.watch(
        "CircuitBreakerOpen",
        API_POSTGRES,
        POSTGRES_HUNG,
        Expect::Notified("/alerts"),
        true,
    );
    matrix.watch("ApiHighErrorRate", &[], POSTGRES_HUNG, Expect::Observed, false);
    matrix.watch("ApiAvailabilitySLOFastBurn", &[], POSTGRES_HUNG, Expect::Observed, false);
    matrix.watch(
        "PostgresUnreachable",
        &[("job", "orgraph/postgres")],
        POSTGRES_UNREACHABLE,
        Expect::Notified("/alerts"),
        true,
    );
    matrix.wait(sink, POSTGRES_HUNG, Duration::from_secs(300), |w| {
        w.expect == Expect::Observed || w.settled()
    });
    matrix.wait(sink, POSTGRES_UNREACHABLE, Duration::from_secs(240), Watch::settled);
    stack.run(&["resume", "postgres"])?;
    matrix.end(POSTGRES_HUNG);
    matrix.end(POSTGRES_UNREACHABLE);
    match super::record::write("postgres_hung", recording_from) {
        Ok(path) => println!("    recorded the API's request counters to {}", path.display()),
        Err(e) => checks.fail("recording the API's request counters", &format!("{e:#}")),
    }
    let hung = hung.finish(runtime)?;
    checks.check(
        "with Postgres hung the API answered (503s): it did not hang past its timeout or drop connections",
        hung.as_ref().is_ok_and(|r| r.errors == 0 && r.by_status.contains_key("503")),
        || format!("{hung:?}"),
    );
    Ok(())
}

/// A load of reads and updates through a fault, until [`Faulted::finish`].
struct Faulted {
    done: Arc<AtomicBool>,
    load: tokio::task::JoinHandle<anyhow::Result<load::Report>>,
}

/// Starts 30 requests/s, `concurrency` at most, 80% reads, 20% updates; its first request (a page
/// of employees) is in before this returns.
fn under_load(runtime: &tokio::runtime::Runtime, concurrency: u32) -> anyhow::Result<Faulted> {
    let faulted = Faulted::spawn(runtime, 30.0, concurrency, 8, "reads=80,updates=20")?;
    std::thread::sleep(Duration::from_secs(2));
    Ok(faulted)
}

impl Faulted {
    /// Starts `rate` requests/s of `mix` (seeded), `concurrency` at most, for up to 20 minutes.
    fn spawn(
        runtime: &tokio::runtime::Runtime,
        rate: f64,
        concurrency: u32,
        seed: u64,
        mix: &str,
    ) -> anyhow::Result<Faulted> {
        let done = Arc::new(AtomicBool::new(false));
        let load = runtime.spawn(load::run(Options {
            stop: Stop::After(Duration::from_secs(1200)),
            stop_when: Some(done.clone()),
            rate: Some(rate),
            concurrency,
            seed,
            mix: load::Mix::parse(mix).map_err(anyhow::Error::msg)?,
            ..super::load_options()?
        }));
        Ok(Faulted { done, load })
    }

    /// Stops the load and returns its report (or why it failed).
    fn finish(
        self,
        runtime: &tokio::runtime::Runtime,
    ) -> anyhow::Result<anyhow::Result<load::Report>> {
        self.done.store(true, Ordering::Relaxed);
        Ok(runtime.block_on(self.load)?)
    }
}

const QUEUE_BACKED_UP: &str = "analysis queue behind a lock held for minutes, 115 jobs waiting";

/// How many analyses wait behind the lock: above QueueDepthHigh's 100.
const BACKED_UP_JOBS: u64 = 115;

/// A transaction holds an exclusive lock on `influence_scores` (where every analysis writes) from
/// here until the end of the next faults, and 115 analyses are requested: the one that runs waits
/// to write, the others wait in the queue. The worker answers and exports; its analysis queue is
/// stuck (QueueStalled, after 3 minutes) and deep (QueueDepthHigh, after 10, held back by the
/// stall that explains it). Then 30 more analyses meet the queue's cap (130 pending in the live
/// proof's stack): the overflow is refused with 429, which Prometheus counts. Returns the lock and
/// how many jobs were accepted.
fn analysis_queue_locked(
    matrix: &mut Matrix,
    checks: &mut super::Checks,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<(TableLock, u64)> {
    super::step("fault matrix 2/6: a lock held on influence_scores, 115 analyses requested");
    super::api_ready(Duration::from_secs(120))?;
    let lock = TableLock::take("influence_scores")?;
    let enqueued = request_analyses(runtime, BACKED_UP_JOBS, 14)?;
    let accepted = enqueued.by_status.get("202").copied().unwrap_or(0);
    anyhow::ensure!(
        accepted == BACKED_UP_JOBS,
        "expected {BACKED_UP_JOBS} analyses accepted, got {:?}",
        enqueued.by_status
    );
    const ANALYSIS: &[(&str, &str)] = &[("messaging_destination_name", "analysis")];
    matrix.watch("QueueStalled", ANALYSIS, QUEUE_BACKED_UP, Expect::Notified("/alerts"), true);
    matrix.watch("QueueDepthHigh", ANALYSIS, QUEUE_BACKED_UP, Expect::Inhibited, true);
    let overflow_accepted = queue_cap_refuses(checks, runtime)?;
    Ok((lock, accepted + overflow_accepted))
}

/// `count` analysis requests through the load generator (50/s, 4 at a time, `seed`).
fn request_analyses(
    runtime: &tokio::runtime::Runtime,
    count: u64,
    seed: u64,
) -> anyhow::Result<load::Report> {
    runtime.block_on(load::run(Options {
        stop: Stop::Requests(count),
        rate: Some(50.0),
        concurrency: 4,
        seed,
        mix: load::Mix::parse("analysis=1").map_err(anyhow::Error::msg)?,
        ..super::load_options()?
    }))
}

/// Analyses sent to the backed-up queue beyond its cap.
const OVERFLOW_JOBS: u64 = 30;

/// POST /api/analysis answered 429 (the queue cap), as Prometheus counts it.
const ANALYSIS_REFUSED: &str = "sum(http_server_request_duration_seconds_count{job=\"orgraph/api\",http_route=\"/api/analysis\",http_response_status_code=\"429\"}) or vector(0)";

/// [`OVERFLOW_JOBS`] more analyses to the backed-up queue: those beyond the cap are refused with
/// 429 (none lost: each is either accepted or refused), and Prometheus counts every refusal before
/// the next fault kills the API. Returns how many were accepted.
fn queue_cap_refuses(
    checks: &mut super::Checks,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<u64> {
    let before = prom::value(ANALYSIS_REFUSED)?.unwrap_or(0.0);
    let overflow = request_analyses(runtime, OVERFLOW_JOBS, 15)?;
    let status = |s: &str| overflow.by_status.get(s).copied().unwrap_or(0);
    let (accepted, refused) = (status("202"), status("429"));
    checks.check(
        &format!(
            "the full analysis queue refused the overflow with 429: {refused} refused, {accepted} accepted of {OVERFLOW_JOBS}"
        ),
        refused > 0 && accepted + refused == OVERFLOW_JOBS,
        || format!("answers {:?}", overflow.by_status),
    );
    let expected = before + refused as f64;
    let counted =
        super::wait_for_value(ANALYSIS_REFUSED, |v| v >= expected, Duration::from_secs(60));
    checks.check(
        &format!(
            "Prometheus counts the queue cap's refusals (429 on POST /api/analysis: {refused})"
        ),
        counted == Some(expected),
        || format!("Prometheus {counted:?}, expected {expected}"),
    );
    Ok(accepted)
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
    super::step("fault matrix 3/6: the API killed, then crash-looping");
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
const EXPORTS_LOCKED: &str = "exports behind the same lock";
const LOCK_BURSTS: &str = "employees locked 3.5 s of every 5 s (a batch job) under load";

/// Three faults at once, whose signals do not cross (Alertmanager only delays notifications; the
/// worker's jobs wait on `influence_scores`, the API's requests on `employees`; an export waiting
/// on `influence_scores` holds `employees` too, so a burst then waits at most 1 s and is skipped,
/// and exports are few):
/// * Alertmanager stopped: Prometheus cannot hand it alerts (the Watchdog is always there to
///   send); the alert about it reaches the Watchdog's receiver once Alertmanager is back.
/// * Exports requested while `influence_scores` is still locked: every export waits on it until
///   its timeout, slower than EXPORT_SLOW_MS. The lock is released at the end, once the queue's
///   alerts are known too.
/// * A batch job locks `employees` for 3.5 s every 5 s: the API's queries on it wait on the
///   connection they hold (the pool has enough), so about one request in six takes over 2 s and
///   none fails: the P95 passes 2 s, while the latency SLO's budget (requests over 0.5 s) burns
///   below its alerting rates.
fn alertmanager_unreachable_exports_locked_api_slowed(
    matrix: &mut Matrix,
    stack: &Stack,
    sink: &Sink,
    runtime: &tokio::runtime::Runtime,
    lock: TableLock,
) -> anyhow::Result<u64> {
    super::step(
        "fault matrix 4/6: Alertmanager unreachable; exports behind the lock; the API slowed by \
         lock bursts",
    );
    // One job every 13 s until the worker's alerts are known: exports keep timing out for the
    // whole lock (ExportLatencyHigh needs 5 minutes of a slow P95, then 5 of `for`;
    // WorkerTaskFailureRateHigh 10 finished attempts in 5 minutes, then 5 of `for`), and analyses
    // pile up behind the one waiting to write.
    let jobs = Faulted::spawn(runtime, 0.075, 4, 13, "analysis=1,exports=2")?;
    // 2 requests/s, reads only: deleting an employee cascades to influence_scores, still locked,
    // and would wait there for minutes holding its connection. Half of the reads query
    // `employees` (pages, one employee), the rest are cached stats and job statuses; at most ~4
    // queries wait on a burst at once (the pool has 10).
    let slowed = Faulted::spawn(runtime, 2.0, 16, 15, "reads=100")?;
    // The load's first request (a page of employees) before the first burst.
    std::thread::sleep(Duration::from_secs(2));
    let bursts =
        LockBursts::start("employees", Duration::from_millis(3500), Duration::from_secs(5));
    stack.run(&["stop", "alertmanager"])?;
    matrix.watch(
        "PrometheusNotificationsFailing",
        &[],
        ALERTMANAGER_DOWN,
        Expect::Notified("/watchdog"),
        false,
    );
    matrix.watch("ExportLatencyHigh", &[], EXPORTS_LOCKED, Expect::Notified("/alerts"), false);
    matrix.watch(
        "WorkerTaskFailureRateHigh",
        &[],
        EXPORTS_LOCKED,
        Expect::Notified("/alerts"),
        false,
    );
    matrix.watch("ApiHighLatencyP95", &[], LOCK_BURSTS, Expect::Notified("/alerts"), true);
    matrix.wait(sink, ALERTMANAGER_DOWN, Duration::from_secs(180), |w| w.firing.is_some());
    stack.run(&["start", "alertmanager"])?;
    matrix.wait(sink, ALERTMANAGER_DOWN, Duration::from_secs(90), Watch::settled);
    // ApiHighLatencyP95: the P95 over 2 s for 5 minutes. The bursts end once it is notified, so
    // the P95 drains while the worker's alerts are still awaited.
    matrix.wait(sink, LOCK_BURSTS, Duration::from_secs(300), Watch::settled);
    let (burst_count, skipped) = bursts.stop()?;
    matrix.end(LOCK_BURSTS);
    println!("    {burst_count} lock bursts on employees ({skipped} skipped: an export held it)");
    // ExportLatencyHigh: a 5-minute P95 above the threshold for 5 minutes, notified after its
    // group_wait (1 minute for infos). WorkerTaskFailureRateHigh: pending once 10 exports timed
    // out (about 200 s at one every 20 s), firing 5 minutes later.
    let known = |w: &Watch| w.expect == Expect::Observed || w.settled();
    matrix.wait(sink, EXPORTS_LOCKED, Duration::from_secs(660), known);
    jobs.done.store(true, Ordering::Relaxed);
    // QueueDepthHigh: more than 100 pending for 10 minutes since the analyses were requested.
    matrix.wait(sink, QUEUE_BACKED_UP, Duration::from_secs(300), known);
    lock.release()?;
    matrix.end(EXPORTS_LOCKED);
    matrix.end(QUEUE_BACKED_UP);
    let jobs = jobs.finish(runtime)??;
    let resolved = |w: &Watch| !w.must_resolve || w.resolved.is_some();
    matrix.wait(sink, EXPORTS_LOCKED, Duration::from_secs(120), resolved);
    matrix.wait(sink, QUEUE_BACKED_UP, Duration::from_secs(120), resolved);
    // The P95 falls under 2 s once the slow requests are a small enough part of its 5 minutes.
    matrix.wait(sink, LOCK_BURSTS, Duration::from_secs(300), resolved);
    let slowed = slowed.finish(runtime)??;
    let accepted = |r: &load::Report| r.by_status.get("202").copied().unwrap_or(0);
    Ok(accepted(&jobs) + accepted(&slowed))
}

const COLLECTOR_REFUSING: &str = "collector refusing data (memory limiter at 2 MiB)";
const COLLECTOR_DOWN: &str = "collector stopped";

/// The collector restarted with a memory limit it is always over: its memory limiter refuses
/// every export. The services' series stand still; the alert about the collector explains it and
/// holds back the services' "not exporting" alerts. Then the collector stops altogether.
fn collector_refusing_then_down(
    matrix: &mut Matrix,
    stack: &Stack,
    sink: &Sink,
) -> anyhow::Result<()> {
    super::step("fault matrix 5/6: the collector refusing data, then stopped");
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
    matrix.watch("OtelCollectorDown", &[], COLLECTOR_DOWN, Expect::Notified("/alerts"), true);
    matrix.wait(sink, COLLECTOR_DOWN, Duration::from_secs(180), Watch::settled);
    stack.run(&["start", "collector"])?;
    let resolved = |w: &Watch| w.resolved.is_some();
    matrix.wait(sink, COLLECTOR_REFUSING, Duration::from_secs(150), resolved);
    matrix.wait(sink, COLLECTOR_DOWN, Duration::from_secs(150), resolved);
    Ok(())
}

const CONNECTIONS_FILLED: &str = "Postgres' connection slots 90% used by idle sessions";
const REDIS_EVICTING: &str = "Redis at a 1 MiB margin of maxmemory, 100 writes/s";
const REDIS_STOPPED: &str = "Redis stopped";

/// What the infrastructure alerts' promtool tests are fed: the series their rules read, recorded
/// through this phase.
const RECORDED: &[&str] = &[
    r#"pg_stat_activity_count{job="orgraph/postgres", datname="orgraph"}"#,
    r#"pg_settings_max_connections{job="orgraph/postgres"}"#,
    r#"pg_settings_superuser_reserved_connections{job="orgraph/postgres"}"#,
    r#"redis_keys_evicted_total{job="orgraph/redis"}"#,
    r#"otelcol_scraper_scraped_metric_points{receiver="redis"}"#,
];

/// The platform under the services, faulted: Postgres' connection slots filled by idle sessions
/// while Redis, given a `maxmemory` just above what it holds, evicts under writes; then Redis
/// stopped. Postgres' own outage (unreachable) was proven with its hang in phase 1.
fn platform_faulted(
    matrix: &mut Matrix,
    checks: &mut super::Checks,
    stack: &Stack,
    sink: &Sink,
) -> anyhow::Result<()> {
    super::step("fault matrix 6/6: Postgres' connections filled; Redis evicting, then stopped");
    let recording_from = super::record::now() - 60.0;
    let hog = ConnectionHog::fill(0.9)?;
    matrix.watch(
        "PostgresConnectionsNearLimit",
        &[("job", "orgraph/postgres")],
        CONNECTIONS_FILLED,
        Expect::Notified("/alerts"),
        true,
    );
    let fill = RedisFill::start()?;
    matrix.watch(
        "RedisEvicting",
        &[("job", "orgraph/redis")],
        REDIS_EVICTING,
        Expect::Notified("/alerts"),
        true,
    );
    matrix.wait(sink, CONNECTIONS_FILLED, Duration::from_secs(300), Watch::settled);
    hog.release();
    matrix.end(CONNECTIONS_FILLED);
    matrix.wait(sink, REDIS_EVICTING, Duration::from_secs(360), Watch::settled);
    let (written, evicted) = fill.stop()?;
    matrix.end(REDIS_EVICTING);
    checks.check(
        &format!("Redis evicted under the writes ({evicted} of {written} keys)"),
        evicted > 0,
        || "INFO stats says evicted_keys:0".to_string(),
    );
    // Redis stopped: the collector's scrapes of it fail; its evictions' rate falls to 0 meanwhile.
    stack.run(&["stop", "redis"])?;
    matrix.watch("RedisUnreachable", &[], REDIS_STOPPED, Expect::Notified("/alerts"), true);
    matrix.wait(sink, REDIS_STOPPED, Duration::from_secs(240), Watch::settled);
    stack.run(&["start", "redis"])?;
    matrix.end(REDIS_STOPPED);
    let resolved = |w: &Watch| w.resolved.is_some();
    for fault in [CONNECTIONS_FILLED, REDIS_EVICTING, REDIS_STOPPED] {
        matrix.wait(sink, fault, Duration::from_secs(240), resolved);
    }
    match super::record::write_series("platform_faults", recording_from, RECORDED) {
        Ok(path) => {
            println!("    recorded the infrastructure alerts' series to {}", path.display())
        }
        Err(e) => checks.fail("recording the infrastructure alerts' series", &format!("{e:#}")),
    }
    Ok(())
}
