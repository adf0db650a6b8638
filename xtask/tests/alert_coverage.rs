//! Alert coverage and routing: what promtool and amtool cannot check by themselves.
//!
//! * Every alert of `prometheus/rules` carries what an alert must have (see [`alert_problems`]):
//!   promtool does not notice an alert without a test, and a test of a misspelt alert name that
//!   expects no alert passes.
//! * Every case of `alertmanager/tests/routes.yaml` reaches exactly its receivers, through
//!   `amtool config routes test --verify.receivers` (amtool built by `cargo xtask tools`).

use anyhow::Context;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use xtask::yaml::{files_in as yaml_files, read as read_yaml};

/// The Prometheus rule files (recording and alerting rules), relative to the repo root.
const RULES_DIR: &str = "prometheus/rules";

/// The promtool unit tests of those rules.
const RULE_TESTS_DIR: &str = "prometheus/tests";

/// One runbook per alert: `<RUNBOOKS_DIR>/<AlertName>.md`.
const RUNBOOKS_DIR: &str = "docs/runbooks";

/// Prometheus' configuration: its external label `runbook_base_url` is where the runbooks are.
const PROMETHEUS_CONFIG: &str = "prometheus/prometheus.yml";

/// How every alert's `runbook_url` starts: Prometheus renders it from its external label (promtool
/// from a test group's `external_labels`), followed by `/<AlertName>.md`.
const RUNBOOK_BASE: &str = "{{ $externalLabels.runbook_base_url }}";

/// Alerts whose value is a constant (the Watchdog's 1, a state alert's 0, RedisUnreachable's
/// rate of 0): a description showing it would say nothing, so theirs need not.
const CONSTANT_VALUE_ALERTS: &[&str] =
    &["Watchdog", "CircuitBreakerOpen", "AlertingConfigReloadFailed", "RedisUnreachable"];

/// The Alertmanager configuration, and its routing cases (see [`check_routes`]).
const ALERTMANAGER_CONFIG: &str = "alertmanager/alertmanager.yml";
const ROUTE_CASES: &str = "alertmanager/tests/routes.yaml";

/// Every alert of the rule files carries what an alert must have
/// (see [`alert_problems`]). promtool cannot check this itself: a test of a misspelt alert name
/// expecting no alert passes, and an alert without any test is not noticed.
fn check_alerts() -> anyhow::Result<()> {
    let root = testkit::repo_root();
    let rules = yaml_files(&root.join(RULES_DIR))?
        .iter()
        .map(|p| read_yaml(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tests = yaml_files(&root.join(RULE_TESTS_DIR))?
        .iter()
        .map(|p| read_yaml(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runbooks_dir = root.join(RUNBOOKS_DIR);
    let runbooks: BTreeSet<String> = std::fs::read_dir(&runbooks_dir)
        .with_context(|| format!("listing {}", runbooks_dir.display()))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    let prometheus = read_yaml(&root.join(PROMETHEUS_CONFIG))?;
    let runbook_base_url = prometheus["global"]["external_labels"]["runbook_base_url"].as_str();
    let alerts = alerts(&rules);
    let problems = alert_problems(&rules, &tests, &runbooks, runbook_base_url);
    anyhow::ensure!(
        problems.is_empty(),
        "{} problem(s) with the alerts of {RULES_DIR}:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
    eprintln!(
        "    {} alerts, each with severity, service, summary, a description showing its value, a \
         runbook, and promtool tests that fire it and keep it quiet",
        alerts.len()
    );
    Ok(())
}

/// The alerting rules (`alert:` entries) of parsed rule files.
fn alerts(rule_files: &[Value]) -> Vec<&Value> {
    rule_files
        .iter()
        .filter_map(|file| file.get("groups")?.as_sequence())
        .flatten()
        .filter_map(|group| group.get("rules")?.as_sequence())
        .flatten()
        .filter(|rule| rule.get("alert").is_some())
        .collect()
}

/// Whether `alert` always fires (`expr: vector(1)`, the Watchdog): its severity is `none` (a
/// heartbeat pages nobody) and no test can keep it quiet.
fn is_heartbeat(alert: &Value) -> bool {
    alert.get("expr").and_then(Value::as_str).is_some_and(|e| e.trim() == "vector(1)")
}

/// What is wrong with the alerts of `rule_files`, given the promtool test files, the file names in
/// the runbook directory and Prometheus' external label `runbook_base_url`. Every alert must have
/// * a `severity` label of critical, warning or info (`none` for a heartbeat, [`is_heartbeat`]),
///   and a `service` label;
/// * `summary`, `description` (showing `$value`, except [`CONSTANT_VALUE_ALERTS`]) and
///   `runbook_url` annotations, the URL being `<RUNBOOK_BASE>/<AlertName>.md`, and that runbook
///   present;
/// * a promtool test in which it fires and, unless a heartbeat, one in which it must not.
///
/// Tests of an alert name that no rule defines, test groups whose `external_labels` render other
/// runbook links than Prometheus would, and runbooks of no alert, are problems too.
fn alert_problems(
    rule_files: &[Value],
    test_files: &[Value],
    runbooks: &BTreeSet<String>,
    runbook_base_url: Option<&str>,
) -> Vec<String> {
    let text = |v: &Value, section: &str, key: &str| -> Option<String> {
        v.get(section)?
            .get(key)?
            .as_str()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
    };
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    let mut heartbeats = BTreeSet::new();
    for alert in alerts(rule_files) {
        let name = alert.get("alert").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut problem = |what: String| problems.push(format!("{name}: {what}"));
        if !names.insert(name.clone()) {
            problem("defined twice".into());
        }
        let heartbeat = is_heartbeat(alert);
        if heartbeat {
            heartbeats.insert(name.clone());
        }
        match (text(alert, "labels", "severity").as_deref(), heartbeat) {
            (Some("critical" | "warning" | "info"), false) | (Some("none"), true) => {}
            (other, false) => {
                problem(format!("severity {other:?}, expected critical, warning or info"))
            }
            (other, true) => problem(format!("severity {other:?}, expected none (always fires)")),
        }
        if text(alert, "labels", "service").is_none() {
            problem("no `service` label".into());
        }
        if text(alert, "annotations", "summary").is_none() {
            problem("no `summary` annotation".into());
        }
        let shows_value = CONSTANT_VALUE_ALERTS.contains(&name.as_str())
            || text(alert, "annotations", "description").is_some_and(|d| d.contains("$value"));
        if !shows_value {
            problem("no `description` annotation showing `$value`".into());
        }
        let url = format!("{RUNBOOK_BASE}/{name}.md");
        match text(alert, "annotations", "runbook_url") {
            Some(got) if got == url => {}
            other => problem(format!("runbook_url {other:?}, expected `{url}`")),
        }
        if !runbooks.contains(&format!("{name}.md")) {
            problem(format!("no runbook {RUNBOOKS_DIR}/{name}.md"));
        }
    }
    if runbook_base_url.is_none_or(|b| b.trim().is_empty()) {
        problems.push(format!(
            "{PROMETHEUS_CONFIG}: no external label `runbook_base_url` (the runbook links need it)"
        ));
    }
    let orphans = runbooks
        .iter()
        .filter_map(|f| f.strip_suffix(".md"))
        .filter(|n| *n != "README" && !names.contains(*n));
    problems.extend(orphans.map(|n| format!("{RUNBOOKS_DIR}/{n}.md: no alert of that name")));

    let (mut fired, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    let groups = test_files.iter().filter_map(|file| file.get("tests")?.as_sequence()).flatten();
    let alert_groups = groups.filter(|group| group.get("alert_rule_test").is_some());
    for group in alert_groups.clone() {
        let got = group.get("external_labels").and_then(|l| l.get("runbook_base_url"));
        if got.and_then(Value::as_str) != runbook_base_url {
            let name = group.get("name").and_then(Value::as_str).unwrap_or("(unnamed)");
            problems.push(format!(
                "{RULE_TESTS_DIR}: test `{name}` has external_labels.runbook_base_url {:?}, \
                 {PROMETHEUS_CONFIG} has {runbook_base_url:?}",
                got.and_then(Value::as_str)
            ));
        }
    }
    let cases = alert_groups.filter_map(|group| group.get("alert_rule_test")?.as_sequence());
    for case in cases.flatten() {
        let Some(name) = case.get("alertname").and_then(Value::as_str) else { continue };
        if !names.contains(name) {
            problems.push(format!("{RULE_TESTS_DIR}: a test of `{name}`, which no rule defines"));
        }
        let expected = case.get("exp_alerts").and_then(Value::as_sequence).map_or(0, Vec::len);
        if expected > 0 { &mut fired } else { &mut quiet }.insert(name.to_string());
    }
    for name in &names {
        if !fired.contains(name) {
            problems.push(format!("{name}: no promtool test in which it fires"));
        }
        if !quiet.contains(name) && !heartbeats.contains(name) {
            problems.push(format!("{name}: no promtool test in which it must not fire"));
        }
    }
    problems
}

/// A routing case of [`ROUTE_CASES`]: an alert's labels and the receivers Alertmanager must send
/// it to, in the order of the routing tree (as amtool prints them).
#[derive(Debug, serde::Deserialize)]
struct RouteCase {
    name: String,
    labels: BTreeMap<String, String>,
    receivers: Vec<String>,
}

fn route_cases(path: &Path) -> anyhow::Result<Vec<RouteCase>> {
    let cases: Vec<RouteCase> = serde_norway::from_value(read_yaml(path)?["cases"].clone())
        .with_context(|| {
            format!("{}: `cases` is not a list of name, labels, receivers", path.display())
        })?;
    anyhow::ensure!(!cases.is_empty(), "no routing case in {}", path.display());
    Ok(cases)
}

/// Every case of [`ROUTE_CASES`] through
/// `amtool config routes test --verify.receivers`, which fails unless the alert reaches exactly
/// the expected receivers.
fn check_routes() -> anyhow::Result<()> {
    let amtool = testkit::tools::amtool_path()?;
    let cases = route_cases(&testkit::repo_root().join(ROUTE_CASES))?;
    for case in &cases {
        let expected = case.receivers.join(",");
        let labels: Vec<String> = case.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let output = Command::new(&amtool)
            .args(["config", "routes", "test", &format!("--config.file={ALERTMANAGER_CONFIG}")])
            .arg(format!("--verify.receivers={expected}"))
            .args(&labels)
            .current_dir(testkit::repo_root())
            .output()
            .with_context(|| format!("running {}", amtool.display()))?;
        anyhow::ensure!(
            output.status.success(),
            "routing case `{}` ({ROUTE_CASES}): {{{}}} should reach {expected}, amtool says: {} {}",
            case.name,
            labels.join(", "),
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim(),
        );
    }
    eprintln!("    {} routing cases of {ROUTE_CASES}, each to its receivers", cases.len());
    Ok(())
}

const RULES: &str = r#"
groups:
  - name: g
    rules:
      - record: job:x:rate5m
        expr: sum by (job) (rate(x_total[5m]))
      - alert: XHigh
        expr: job:x:rate5m > 1
        labels: {severity: warning, service: api}
        annotations:
          summary: X is high
          description: "{{ $value }} per second"
          runbook_url: '{{ $externalLabels.runbook_base_url }}/XHigh.md'
      - alert: Watchdog
        expr: vector(1)
        labels: {severity: none, service: alerting}
        annotations:
          summary: Alerting works
          description: Always fires.
          runbook_url: '{{ $externalLabels.runbook_base_url }}/Watchdog.md'
"#;

const BASE: Option<&str> = Some("https://example.com/repo/docs/runbooks");

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).expect("test YAML parses")
}

fn tests_of(cases: &str) -> Value {
    yaml(&format!(
        "tests:\n  - input_series: []\n    external_labels: {{runbook_base_url: {}}}\n    \
         alert_rule_test:\n{cases}",
        BASE.expect("a base URL")
    ))
}

const FIRES: &str = "      - {alertname: XHigh, eval_time: 1m, exp_alerts: [{exp_labels: {}}]}\n      \
     - {alertname: Watchdog, eval_time: 1m, exp_alerts: [{exp_labels: {}}]}\n";
const QUIET: &str = "      - {alertname: XHigh, eval_time: 1m, exp_alerts: []}\n";

fn runbooks(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn a_complete_alert_has_no_problem() {
    let tests = tests_of(&format!("{FIRES}{QUIET}"));
    let runbooks = runbooks(&["XHigh.md", "Watchdog.md", "README.md"]);
    let problems = alert_problems(&[yaml(RULES)], &[tests], &runbooks, BASE);
    assert_eq!(problems, Vec::<String>::new());
}

#[test]
fn missing_tests_runbooks_and_misspelt_names_are_named() {
    let tests = tests_of(&format!("{FIRES}      - {{alertname: XHihg, exp_alerts: []}}\n"));
    let problems =
        alert_problems(&[yaml(RULES)], &[tests], &runbooks(&["Old.md", "Watchdog.md"]), BASE);
    assert_eq!(
        problems,
        [
            "XHigh: no runbook docs/runbooks/XHigh.md",
            "docs/runbooks/Old.md: no alert of that name",
            "prometheus/tests: a test of `XHihg`, which no rule defines",
            "XHigh: no promtool test in which it must not fire",
        ]
    );
}

#[test]
fn labels_and_annotations_are_checked() {
    let rules = RULES
        .replace("severity: warning", "severity: page")
        .replace("severity: none", "severity: info")
        .replace("{{ $value }} per second", "high")
        .replace("XHigh.md", "x.md");
    let tests = tests_of(&format!("{FIRES}{QUIET}"));
    let problems =
        alert_problems(&[yaml(&rules)], &[tests], &runbooks(&["XHigh.md", "Watchdog.md"]), BASE);
    assert_eq!(
        problems,
        [
            r#"XHigh: severity Some("page"), expected critical, warning or info"#,
            "XHigh: no `description` annotation showing `$value`",
            r#"XHigh: runbook_url Some("{{ $externalLabels.runbook_base_url }}/x.md"), expected `{{ $externalLabels.runbook_base_url }}/XHigh.md`"#,
            r#"Watchdog: severity Some("info"), expected none (always fires)"#,
        ]
    );
}

/// Test groups must render the runbook links as Prometheus does, and Prometheus must have the
/// label at all.
#[test]
fn the_runbook_base_url_is_checked() {
    let tests = tests_of(&format!("{FIRES}{QUIET}"));
    let runbooks = runbooks(&["XHigh.md", "Watchdog.md"]);
    let problems =
        alert_problems(&[yaml(RULES)], &[tests], &runbooks, Some("https://elsewhere/runbooks"));
    assert_eq!(
        problems,
        [
            r#"prometheus/tests: test `(unnamed)` has external_labels.runbook_base_url Some("https://example.com/repo/docs/runbooks"), prometheus/prometheus.yml has Some("https://elsewhere/runbooks")"#,
        ]
    );
    let tests = tests_of(&format!("{FIRES}{QUIET}"));
    let problems = alert_problems(&[yaml(RULES)], &[tests], &runbooks, None);
    assert_eq!(
        problems[0],
        "prometheus/prometheus.yml: no external label `runbook_base_url` (the runbook links need it)"
    );
}

/// The repo's routing cases reach their receivers (needs amtool, built by `cargo xtask tools`).
#[test]
fn the_repo_routes_reach_their_receivers() -> anyhow::Result<()> {
    check_routes()
}

/// The repo's own rules, tests and runbooks pass the check.
#[test]
fn the_repo_alerts_are_covered() -> anyhow::Result<()> {
    check_alerts()
}
