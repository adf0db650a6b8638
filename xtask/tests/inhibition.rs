//! The inhibition tree of `alertmanager/alertmanager.yml`, proven against the real Alertmanager.
//! amtool only resolves routes, so nothing else shows that a cause silences exactly its symptoms:
//!
//! * every case of `alertmanager/tests/inhibitions.yaml` runs on a fresh Alertmanager (the pinned
//!   binary of `testkit::tools`, the repo's own config file, a free loopback port, no
//!   clustering): its alerts are posted together and read back from `/api/v2/alerts`, and each
//!   alert's `status.inhibitedBy` must be non-empty exactly when the case says `inhibited: true`;
//! * the cases carry the labels Prometheus gives those alerts: the rule's own labels from
//!   `prometheus/rules/alerts.yaml`, and the label names its promtool tests expect;
//! * the cases prove every inhibit rule both ways (each of its causes and symptoms in a case only
//!   that rule explains, and one of its symptoms firing without a matching cause, not silenced);
//! * every inhibit rule names its alerts (`alertname="A"` or `alertname=~"A|B"`), all of which
//!   exist in `alerts.yaml`, and none is the Watchdog.
//!
//! No notification leaves these Alertmanagers: `--dispatch.start-delay` keeps every aggregation
//! group from running for an hour (inhibition does not depend on it: the API computes it when the
//! alerts are read), and each one lives a few seconds, far below every `group_wait` but the
//! Watchdog's. So a sink listening on the receivers' address (127.0.0.1:9099) never sees them.

use anyhow::Context;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use testkit::process::Daemon;
use xtask::yaml::{files_in as yaml_files, read as read_yaml};

/// The configuration under test, relative to the repo root; always the file itself, never a copy.
const ALERTMANAGER_CONFIG: &str = "alertmanager/alertmanager.yml";

/// Alerts that fire together, and for each whether Alertmanager must hold it back.
const CASES: &str = "alertmanager/tests/inhibitions.yaml";

/// The alert rules the inhibit rules name.
const ALERT_RULES: &str = "prometheus/rules/alerts.yaml";

/// The promtool tests of the rules: their `exp_labels` are the label sets the alerts really have.
const RULE_TESTS_DIR: &str = "prometheus/tests";

/// Prometheus' configuration: its `external_labels` are added to every alert it sends.
const PROMETHEUS_CONFIG: &str = "prometheus/prometheus.yml";

/// How long a fresh Alertmanager may take to answer `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(4);

/// How long the posted alerts may take to be listed with a stable inhibition state. With
/// [`READY_TIMEOUT`] this keeps an Alertmanager's life under 10 s.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Time between two reads of the alerts.
const POLL: Duration = Duration::from_millis(100);

/// Identical consecutive reads that make the state settled: the inhibitor learns of source alerts
/// from a subscription, asynchronously, so one read right after the POST could be early.
const STABLE_READS: usize = 4;

/// `--dispatch.start-delay`: no aggregation group runs before it, so no notification is sent.
const DISPATCH_START_DELAY: &str = "1h";

/// How long a posted alert is said to last (`endsAt`): far beyond any case.
const ALERT_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The label every inhibit rule selects alerts by.
const ALERTNAME: &str = "alertname";

/// The alert that must stay outside every inhibit rule.
const WATCHDOG: &str = "Watchdog";

/// The template alerts.yaml derives `service` from the job with (`orgraph/api` -> `api`).
const SERVICE_FROM_JOB: &str = r#"{{ $labels.job | reReplaceAll "^orgraph/" "" }}"#;

type Labels = BTreeMap<String, String>;

// ---------------------------------------------------------------------------------------------
// The tests.

/// The heart of it: each case on a real Alertmanager, every mismatch of every case reported.
#[test]
fn alertmanager_inhibits_exactly_as_the_cases_say() -> anyhow::Result<()> {
    let binary = testkit::tools::alertmanager_path()?;
    anyhow::ensure!(
        binary.is_file(),
        "no Alertmanager at {} (build the pinned tools with `cargo xtask tools`)",
        binary.display()
    );
    let cases = cases()?;
    let external = external_labels()?;
    let started = Instant::now();
    let mut failures = Vec::new();
    for case in &cases {
        let case_started = Instant::now();
        match run_case(&binary, case, &external) {
            Ok(mismatches) => failures
                .extend(mismatches.into_iter().map(|m| format!("case \"{}\": {m}", case.name))),
            Err(e) => failures.push(format!("case \"{}\": {e:#}", case.name)),
        }
        eprintln!("  {:.1}s  {}", case_started.elapsed().as_secs_f64(), case.name);
    }
    eprintln!("{} inhibition cases in {:.1}s", cases.len(), started.elapsed().as_secs_f64());
    anyhow::ensure!(
        failures.is_empty(),
        "{} inhibition expectation(s) of {CASES} fail on Alertmanager with {ALERTMANAGER_CONFIG}:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
    Ok(())
}

/// Every alert an inhibit rule names is an alert Prometheus can send.
#[test]
fn inhibit_rules_name_only_alerts_that_exist() -> anyhow::Result<()> {
    let rules = inhibit_rules()?;
    let alerts = alert_rules()?;
    let mut unknown = Vec::new();
    for rule in &rules {
        for (side, names) in [("source", &rule.sources), ("target", &rule.targets)] {
            unknown.extend(
                names
                    .iter()
                    .filter(|name| !alerts.contains_key(*name))
                    .map(|name| format!("inhibit rule {} ({side}): {name}", rule.number)),
            );
        }
    }
    anyhow::ensure!(
        unknown.is_empty(),
        "{ALERTMANAGER_CONFIG} inhibits by alerts {ALERT_RULES} does not have:\n  {}",
        unknown.join("\n  ")
    );
    Ok(())
}

/// The Watchdog must always arrive: no rule may silence it, and it explains nothing. Every rule
/// names its alerts on both sides (checked by [`inhibit_rules`]), so a rule can only match the
/// Watchdog by naming it.
#[test]
fn the_watchdog_is_in_no_inhibit_rule() -> anyhow::Result<()> {
    let rules = inhibit_rules()?;
    anyhow::ensure!(!rules.is_empty(), "{ALERTMANAGER_CONFIG} has no inhibit_rules");
    for rule in &rules {
        anyhow::ensure!(
            !rule.sources.contains(WATCHDOG) && !rule.targets.contains(WATCHDOG),
            "inhibit rule {} of {ALERTMANAGER_CONFIG} names the {WATCHDOG}",
            rule.number
        );
    }
    Ok(())
}

/// A case is only worth something if its alerts look like the ones Prometheus sends: the alert
/// exists, its static labels (severity, service) are the rule's, a `service` derived from the
/// job matches the job, and its label names are exactly those a promtool test of the rule
/// expects (e.g. `job, instance, circuit_breaker_name` for CircuitBreakerOpen, no `job` for the
/// queue alerts).
#[test]
fn case_alerts_carry_the_labels_prometheus_gives_them() -> anyhow::Result<()> {
    let cases = cases()?;
    let alerts = alert_rules()?;
    let expected_names = expected_label_names()?;
    let mut problems = Vec::new();
    for case in &cases {
        for alert in &case.alerts {
            let what = format!("case \"{}\": {}", case.name, describe(&alert.labels));
            problems.extend(
                label_problems(&alert.labels, &alerts, &expected_names)
                    .into_iter()
                    .map(|p| format!("{what}: {p}")),
            );
        }
    }
    anyhow::ensure!(
        problems.is_empty(),
        "{} alert(s) of {CASES} do not look like Prometheus' alerts:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
    Ok(())
}

/// The cases cover every inhibit rule both ways. Judged from alert names and `equal` labels
/// ([`can_inhibit`]), which is all the rules use:
///
/// * each source and each target name of a rule occurs in a case where a target expected
///   inhibited has exactly one possible inhibitor in the case (that rule, that source name), so
///   the case proves that rule and no other;
/// * each rule has a case where one of its targets is expected not inhibited and nothing in the
///   case can inhibit it by that rule (no cause, or a cause of another service/job/breaker).
#[test]
fn the_cases_prove_every_inhibit_rule_both_ways() -> anyhow::Result<()> {
    let rules = inhibit_rules()?;
    let cases = cases()?;
    // (rule number, source name, target name) that some case proves alone.
    let mut proven: BTreeSet<(usize, String, String)> = BTreeSet::new();
    // Rules one of whose targets some case shows not inhibited.
    let mut spared: BTreeSet<usize> = BTreeSet::new();
    for case in &cases {
        for target in &case.alerts {
            let inhibitors: BTreeSet<(usize, String)> = rules
                .iter()
                .flat_map(|rule| {
                    case.alerts
                        .iter()
                        .filter(|source| can_inhibit(rule, &source.labels, &target.labels))
                        .map(|source| (rule.number, name(&source.labels).to_string()))
                })
                .collect();
            if target.inhibited {
                if let [(rule, source)] = inhibitors.iter().collect::<Vec<_>>().as_slice() {
                    proven.insert((*rule, source.clone(), name(&target.labels).to_string()));
                }
            } else {
                for rule in &rules {
                    if rule.targets.contains(name(&target.labels))
                        && !inhibitors.iter().any(|(number, _)| *number == rule.number)
                    {
                        spared.insert(rule.number);
                    }
                }
            }
        }
    }
    let mut missing = Vec::new();
    for rule in &rules {
        let of_rule = || proven.iter().filter(|(n, _, _)| *n == rule.number);
        for source in &rule.sources {
            if !of_rule().any(|(_, s, _)| s == source) {
                missing.push(format!(
                    "inhibit rule {}: no case where {source} alone silences one of its targets",
                    rule.number
                ));
            }
        }
        for target in &rule.targets {
            if !of_rule().any(|(_, _, t)| t == target) {
                missing.push(format!(
                    "inhibit rule {}: no case where {target} is silenced by this rule alone",
                    rule.number
                ));
            }
        }
        if !spared.contains(&rule.number) {
            missing.push(format!(
                "inhibit rule {}: no case where one of its targets fires without a matching cause \
                 and must stay",
                rule.number
            ));
        }
    }
    anyhow::ensure!(
        missing.is_empty(),
        "{CASES} does not prove every inhibit rule of {ALERTMANAGER_CONFIG}:\n  {}",
        missing.join("\n  ")
    );
    Ok(())
}

#[test]
fn rfc3339_formats_utc_instants() {
    let at = |secs: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(secs));
    assert_eq!(at(0), "1970-01-01T00:00:00Z");
    assert_eq!(at(951_782_400 + 3_723), "2000-02-29T01:02:03Z");
    assert_eq!(at(1_735_689_599), "2024-12-31T23:59:59Z");
}

#[test]
fn matchers_parse_into_name_operator_and_value() -> anyhow::Result<()> {
    let parsed = parse_matcher(r#"alertname=~"ApiDown|WorkerDown""#)?;
    assert_eq!(parsed, ("alertname".into(), "=~", "ApiDown|WorkerDown".into()));
    assert_eq!(parse_matcher(r#" service != "api" "#)?, ("service".into(), "!=", "api".into()));
    assert_eq!(parse_matcher("alertname=Watchdog")?, ("alertname".into(), "=", "Watchdog".into()));
    assert!(parse_matcher("=nothing").is_err());
    assert!(alert_names(&[r#"alertname=~"Api.*""#.to_string()]).is_err());
    assert!(alert_names(&[r#"severity="critical""#.to_string()]).is_err());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The cases.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    cases: Vec<Case>,
}

/// Alerts that fire together, and which of them Alertmanager must mark inhibited.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    alerts: Vec<CaseAlert>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseAlert {
    labels: Labels,
    inhibited: bool,
}

/// The cases of [`CASES`]: at least one, unique names, each with alerts that have a name and
/// differ from each other (Alertmanager would merge equal label sets into one alert).
fn cases() -> anyhow::Result<Vec<Case>> {
    let path = testkit::repo_root().join(CASES);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file: CaseFile =
        serde_norway::from_str(&text).with_context(|| format!("{CASES} is not a case table"))?;
    anyhow::ensure!(!file.cases.is_empty(), "{CASES} has no case");
    let mut names = BTreeSet::new();
    for case in &file.cases {
        anyhow::ensure!(names.insert(&case.name), "{CASES}: two cases are named \"{}\"", case.name);
        anyhow::ensure!(!case.alerts.is_empty(), "{CASES}: case \"{}\" has no alert", case.name);
        let mut seen = BTreeSet::new();
        for alert in &case.alerts {
            anyhow::ensure!(
                alert.labels.get(ALERTNAME).is_some_and(|n| !n.is_empty()),
                "{CASES}: case \"{}\" has an alert without {ALERTNAME}: {:?}",
                case.name,
                alert.labels
            );
            anyhow::ensure!(
                seen.insert(&alert.labels),
                "{CASES}: case \"{}\" has {} twice",
                case.name,
                describe(&alert.labels)
            );
        }
    }
    Ok(file.cases)
}

// ---------------------------------------------------------------------------------------------
// Running a case.

/// Starts an Alertmanager, posts the case's alerts (with Prometheus' `external` labels), waits
/// for the inhibition state to settle, and returns one line per alert whose state is not the
/// expected one. The Alertmanager is stopped when this returns, whatever happened.
fn run_case(binary: &Path, case: &Case, external: &Labels) -> anyhow::Result<Vec<String>> {
    let posted: Vec<Labels> = case
        .alerts
        .iter()
        .map(|a| {
            let mut labels = external.clone();
            labels.extend(a.labels.clone());
            labels
        })
        .collect();
    let expected: Vec<bool> = case.alerts.iter().map(|a| a.inhibited).collect();
    let alertmanager = Alertmanager::start(binary)?;
    alertmanager.post(&posted, &case.name)?;
    let read = alertmanager.settled(&posted, &expected)?;
    let mut mismatches = Vec::new();
    for ((alert, expected), state) in case.alerts.iter().zip(&expected).zip(&read.inhibited_by) {
        let what = describe(&alert.labels);
        match state {
            None => mismatches.push(format!(
                "{what}: not listed by GET /api/v2/alerts within {SETTLE_TIMEOUT:?} of the POST"
            )),
            Some(by) if by.is_empty() == *expected => {
                let by: Vec<String> = by
                    .iter()
                    .map(|fp| match read.by_fingerprint.get(fp) {
                        Some(labels) => {
                            let mut labels = labels.clone();
                            labels.retain(|k, _| !external.contains_key(k));
                            format!("{fp} ({})", describe(&labels))
                        }
                        None => format!("{fp} (not among the listed alerts)"),
                    })
                    .collect();
                mismatches.push(format!(
                    "{what}: expected {}, got {} (inhibitedBy: [{}])",
                    inhibited_or_not(*expected),
                    inhibited_or_not(!*expected),
                    by.join(", ")
                ));
            }
            Some(_) => {}
        }
    }
    Ok(mismatches)
}

fn inhibited_or_not(inhibited: bool) -> &'static str {
    if inhibited { "inhibited" } else { "not inhibited" }
}

/// One read of `GET /api/v2/alerts`, for the posted alerts.
#[derive(Debug)]
struct AlertsRead {
    /// Per posted alert (same order): its `status.inhibitedBy`, `None` if it is not listed.
    inhibited_by: Vec<Option<Vec<String>>>,
    /// The labels of every listed alert by fingerprint, to name the inhibitors.
    by_fingerprint: BTreeMap<String, Labels>,
}

/// A real Alertmanager on the repo's configuration, a free loopback port and a storage directory
/// of its own, without clustering. Dropping it kills it and removes the directory, also when a
/// case fails or panics.
struct Alertmanager {
    daemon: Daemon,
    dir: PathBuf,
    url: String,
}

impl Alertmanager {
    /// Starts one and waits for `/-/ready`. A port taken between picking and binding it is
    /// retried with another.
    fn start(binary: &Path) -> anyhow::Result<Alertmanager> {
        let mut attempt = 1;
        loop {
            match Alertmanager::try_start(binary) {
                Err(e) if attempt < 3 && format!("{e:#}").contains("address already in use") => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn try_start(binary: &Path) -> anyhow::Result<Alertmanager> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "xtask-inhibition-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("removing stale {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let address = format!("127.0.0.1:{}", testkit::free_port());
        let config = testkit::repo_root().join(ALERTMANAGER_CONFIG);
        let mut command = Command::new(binary);
        command
            .arg(path_flag("config.file", &config))
            .arg(path_flag("storage.path", &dir.join("data")))
            .arg(format!("--web.listen-address={address}"))
            // Empty: no gossip listener, no cluster.
            .arg("--cluster.listen-address=")
            .arg(format!("--dispatch.start-delay={DISPATCH_START_DELAY}"))
            .current_dir(&dir);
        let log = dir.join("alertmanager.log");
        let daemon = match Daemon::spawn("alertmanager", command, &log) {
            Ok(daemon) => daemon,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let mut alertmanager = Alertmanager { daemon, dir, url: format!("http://{address}") };
        let ready = format!("{}/-/ready", alertmanager.url);
        let waited = testkit::wait_for(
            &format!("Alertmanager ({ALERTMANAGER_CONFIG}) to answer GET {ready} with 200"),
            READY_TIMEOUT,
            || {
                if let Some(status) = alertmanager.daemon.exited()? {
                    anyhow::bail!("it exited ({status})");
                }
                let (status, _) = testkit::http_get(&ready)?;
                Ok((status == 200).then_some(()))
            },
        );
        waited.with_context(|| format!("its log:\n{}", alertmanager.daemon.log().trim_end()))?;
        Ok(alertmanager)
    }

    /// POSTs `alerts` to `/api/v2/alerts`: firing now, ending in [`ALERT_DURATION`].
    fn post(&self, alerts: &[Labels], case: &str) -> anyhow::Result<()> {
        let now = SystemTime::now();
        let body: Vec<Json> = alerts
            .iter()
            .map(|labels| {
                json!({
                    "labels": labels,
                    "annotations": {"summary": format!("inhibition test: {case}")},
                    "startsAt": rfc3339(now),
                    "endsAt": rfc3339(now + ALERT_DURATION),
                })
            })
            .collect();
        let url = format!("{}/api/v2/alerts", self.url);
        let mut response = agent()
            .post(&url)
            .content_type("application/json")
            .send(Json::Array(body).to_string())
            .with_context(|| format!("POST {url}"))?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        anyhow::ensure!(status == 200, "POST {url}: {status} {text}");
        Ok(())
    }

    /// Reads the alerts until every posted one is listed and their inhibition state has been the
    /// same for [`STABLE_READS`] reads and is the `expected` one, or until [`SETTLE_TIMEOUT`];
    /// returns the last read (the caller compares it).
    fn settled(&self, posted: &[Labels], expected: &[bool]) -> anyhow::Result<AlertsRead> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let mut same = 0;
        let mut last: Option<AlertsRead> = None;
        loop {
            let read = self.read(posted)?;
            same = match &last {
                Some(last) if last.inhibited_by == read.inhibited_by => same + 1,
                _ => 1,
            };
            let listed = read.inhibited_by.iter().all(Option::is_some);
            let as_expected = read
                .inhibited_by
                .iter()
                .zip(expected)
                .all(|(by, expected)| by.as_ref().is_some_and(|by| by.is_empty() != *expected));
            let now = Instant::now();
            if (listed && as_expected && same >= STABLE_READS) || now >= deadline {
                return Ok(read);
            }
            last = Some(read);
            std::thread::sleep(POLL.min(deadline - now));
        }
    }

    /// One `GET /api/v2/alerts` (all alerts: active, inhibited, silenced).
    fn read(&self, posted: &[Labels]) -> anyhow::Result<AlertsRead> {
        let url = format!("{}/api/v2/alerts", self.url);
        let (status, body) = testkit::http_get(&url)?;
        anyhow::ensure!(status == 200, "GET {url}: {status} {body}");
        let listed: Vec<Json> =
            serde_json::from_str(&body).with_context(|| format!("GET {url}: {body}"))?;
        let mut by_fingerprint = BTreeMap::new();
        let mut by_labels = BTreeMap::new();
        for alert in &listed {
            let labels: Labels = serde_json::from_value(alert["labels"].clone())
                .with_context(|| format!("GET {url}: labels of {alert}"))?;
            let fingerprint = alert["fingerprint"]
                .as_str()
                .with_context(|| format!("GET {url}: no fingerprint in {alert}"))?;
            let inhibited_by: Vec<String> =
                serde_json::from_value(alert["status"]["inhibitedBy"].clone())
                    .with_context(|| format!("GET {url}: status.inhibitedBy of {alert}"))?;
            by_fingerprint.insert(fingerprint.to_string(), labels.clone());
            by_labels.insert(labels, inhibited_by);
        }
        let inhibited_by = posted.iter().map(|labels| by_labels.get(labels).cloned()).collect();
        Ok(AlertsRead { inhibited_by, by_fingerprint })
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.daemon.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An HTTP client for the loopback Alertmanagers: no proxy, a bound on each request, statuses
/// as answers.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .proxy(None)
        .build()
        .new_agent()
}

/// `--name=<path>`.
fn path_flag(name: &str, path: &Path) -> std::ffi::OsString {
    let mut flag = std::ffi::OsString::from(format!("--{name}="));
    flag.push(path);
    flag
}

/// `t` as RFC 3339 in UTC, to the second (`2024-12-31T23:59:59Z`), as Alertmanager's API takes
/// it. Civil date from days since the epoch: Howard Hinnant's `civil_from_days`.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------------
// The inhibit rules, the alert rules and their tests.

/// An inhibit rule of [`ALERTMANAGER_CONFIG`], by the alert names its matchers select.
#[derive(Debug)]
struct InhibitRule {
    /// 1-based position in `inhibit_rules`, for messages.
    number: usize,
    sources: BTreeSet<String>,
    targets: BTreeSet<String>,
    equal: Vec<String>,
}

/// The inhibit rules. Each must select its alerts by name on both sides (a positive `alertname`
/// matcher, an exact name or an alternation of names), so it can be read as cause -> symptom;
/// the legacy `source_match*`/`target_match*` forms are refused.
fn inhibit_rules() -> anyhow::Result<Vec<InhibitRule>> {
    let config = read_yaml(&testkit::repo_root().join(ALERTMANAGER_CONFIG))?;
    let rules = config["inhibit_rules"]
        .as_sequence()
        .with_context(|| format!("{ALERTMANAGER_CONFIG}: inhibit_rules is not a list"))?;
    rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let number = i + 1;
            let context = || format!("{ALERTMANAGER_CONFIG}: inhibit rule {number}");
            let map = rule.as_mapping().with_context(|| format!("{}: not a map", context()))?;
            for key in map.keys() {
                let key = key.as_str().unwrap_or_default();
                anyhow::ensure!(
                    ["source_matchers", "target_matchers", "equal", "name"].contains(&key),
                    "{}: unexpected key {key:?} (use source_matchers/target_matchers)",
                    context()
                );
            }
            let strings = |key: &str| -> anyhow::Result<Vec<String>> {
                match &rule[key] {
                    Value::Null => Ok(Vec::new()),
                    value => serde_norway::from_value(value.clone())
                        .with_context(|| format!("{}: {key} is not a list of strings", context())),
                }
            };
            Ok(InhibitRule {
                number,
                sources: alert_names(&strings("source_matchers")?)
                    .with_context(|| format!("{}, source_matchers", context()))?,
                targets: alert_names(&strings("target_matchers")?)
                    .with_context(|| format!("{}, target_matchers", context()))?,
                equal: strings("equal")?,
            })
        })
        .collect()
}

/// The alert names a list of matchers selects: those of its `alertname` matchers (`="A"` or
/// `=~"A|B"`, an alternation of plain names). An error if there is none, or one that cannot be
/// read as a set of names.
fn alert_names(matchers: &[String]) -> anyhow::Result<BTreeSet<String>> {
    let mut names: Option<BTreeSet<String>> = None;
    for matcher in matchers {
        let (label, op, value) = parse_matcher(matcher)?;
        if label != ALERTNAME {
            continue;
        }
        let these: BTreeSet<String> = match op {
            "=" => BTreeSet::from([value]),
            "=~" => value.split('|').map(str::to_string).collect(),
            _ => anyhow::bail!("{matcher}: a negative {ALERTNAME} matcher names no alert"),
        };
        for name in &these {
            anyhow::ensure!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{matcher}: {name:?} is not an alert name (only names, joined by |, are read)"
            );
        }
        // Several alertname matchers must all hold: the names they share.
        names = Some(match names {
            Some(previous) => previous.intersection(&these).cloned().collect(),
            None => these,
        });
    }
    let names = names.with_context(|| {
        format!(
            "{matchers:?}: no {ALERTNAME} matcher, so any alert could match (the {WATCHDOG} too)"
        )
    })?;
    anyhow::ensure!(!names.is_empty(), "{matchers:?} select no alert name");
    Ok(names)
}

/// `label<op>"value"` (quotes optional, spaces around allowed) into its parts.
fn parse_matcher(matcher: &str) -> anyhow::Result<(String, &'static str, String)> {
    let text = matcher.trim();
    let end = text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len());
    let label = &text[..end];
    anyhow::ensure!(!label.is_empty(), "matcher {matcher:?} has no label name");
    let rest = text[end..].trim_start();
    let op = ["=~", "!~", "!=", "="]
        .into_iter()
        .find(|op| rest.starts_with(op))
        .with_context(|| format!("matcher {matcher:?} has no operator"))?;
    let value = rest[op.len()..].trim();
    let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    Ok((label.to_string(), op, value.to_string()))
}

/// Whether `rule` lets `source` inhibit `target`, judged as Alertmanager does for rules that
/// select by alert name: the names match the two sides, the `equal` labels have the same values
/// (a missing label equals a missing one), and an alert does not inhibit itself.
fn can_inhibit(rule: &InhibitRule, source: &Labels, target: &Labels) -> bool {
    source != target
        && rule.sources.contains(name(source))
        && rule.targets.contains(name(target))
        && rule.equal.iter().all(|label| {
            source.get(label).map_or("", String::as_str)
                == target.get(label).map_or("", String::as_str)
        })
}

/// The alert rules of [`ALERT_RULES`]: name -> the labels the rule sets (values as written,
/// templates included).
fn alert_rules() -> anyhow::Result<BTreeMap<String, Labels>> {
    let rules = read_yaml(&testkit::repo_root().join(ALERT_RULES))?;
    let mut alerts = BTreeMap::new();
    for group in rules["groups"].as_sequence().into_iter().flatten() {
        for rule in group["rules"].as_sequence().into_iter().flatten() {
            if let Some(name) = rule["alert"].as_str() {
                let labels: Labels = match &rule["labels"] {
                    Value::Null => Labels::new(),
                    value => serde_norway::from_value(value.clone())
                        .with_context(|| format!("{ALERT_RULES}: labels of {name}"))?,
                };
                alerts.insert(name.to_string(), labels);
            }
        }
    }
    anyhow::ensure!(!alerts.is_empty(), "{ALERT_RULES} has no alert");
    Ok(alerts)
}

/// Alert name -> the label-name sets (without `alertname`) its promtool tests expect of it.
fn expected_label_names() -> anyhow::Result<BTreeMap<String, BTreeSet<BTreeSet<String>>>> {
    let files = yaml_files(&testkit::repo_root().join(RULE_TESTS_DIR))?;
    let mut names: BTreeMap<String, BTreeSet<BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        let tests = read_yaml(file)?;
        for test in tests["tests"].as_sequence().into_iter().flatten() {
            for case in test["alert_rule_test"].as_sequence().into_iter().flatten() {
                let Some(alertname) = case["alertname"].as_str() else { continue };
                for alert in case["exp_alerts"].as_sequence().into_iter().flatten() {
                    let labels = alert["exp_labels"].as_mapping().into_iter().flatten();
                    let label_names =
                        labels.filter_map(|(k, _)| k.as_str()).map(str::to_string).collect();
                    names.entry(alertname.to_string()).or_default().insert(label_names);
                }
            }
        }
    }
    Ok(names)
}

/// What is wrong with a case alert's `labels`, compared with its rule (see
/// [`case_alerts_carry_the_labels_prometheus_gives_them`]).
fn label_problems(
    labels: &Labels,
    alerts: &BTreeMap<String, Labels>,
    expected_names: &BTreeMap<String, BTreeSet<BTreeSet<String>>>,
) -> Vec<String> {
    let alertname = name(labels);
    let Some(rule_labels) = alerts.get(alertname) else {
        return vec![format!("{ALERT_RULES} has no alert {alertname}")];
    };
    let mut problems = Vec::new();
    for (label, value) in rule_labels {
        let want = if value.contains("{{") {
            if value != SERVICE_FROM_JOB || label != "service" {
                problems.push(format!("{label}: cannot check the template {value:?}"));
                continue;
            }
            labels.get("job").map(|job| job.strip_prefix("orgraph/").unwrap_or(job).to_string())
        } else {
            Some(value.clone())
        };
        if labels.get(label) != want.as_ref() {
            problems.push(format!("{label} is {:?}, the rule gives {want:?}", labels.get(label)));
        }
    }
    let names: BTreeSet<String> = labels.keys().filter(|k| *k != ALERTNAME).cloned().collect();
    match expected_names.get(alertname) {
        None => problems.push(format!(
            "no promtool test in {RULE_TESTS_DIR} fires {alertname}, so its labels are unknown"
        )),
        Some(sets) if !sets.contains(&names) => problems
            .push(format!("label names {names:?}, but its promtool tests expect one of {sets:?}")),
        Some(_) => {}
    }
    problems
}

/// Prometheus' `external_labels`: it adds them to every alert it sends.
fn external_labels() -> anyhow::Result<Labels> {
    let config = read_yaml(&testkit::repo_root().join(PROMETHEUS_CONFIG))?;
    match &config["global"]["external_labels"] {
        Value::Null => Ok(Labels::new()),
        value => serde_norway::from_value(value.clone())
            .with_context(|| format!("{PROMETHEUS_CONFIG}: global.external_labels")),
    }
}

/// The alert's name ("" if it has none; [`cases`] refuses those).
fn name(labels: &Labels) -> &str {
    labels.get(ALERTNAME).map_or("", String::as_str)
}

/// `Name{label="value", …}`, without `alertname`.
fn describe(labels: &Labels) -> String {
    let rest: Vec<String> =
        labels.iter().filter(|(k, _)| *k != ALERTNAME).map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{}{{{}}}", name(labels), rest.join(", "))
}
