//! `cargo xtask test`: the README's one test command. Runs every check CI runs, in order, each
//! announced with its duration, and stops at the first failing step, naming it. The promtool rule
//! tests and the workspace's tests (built first) run in the background beside the live proof, their
//! lines prefixed with the step's name: none of them uses the ports the live proof's stack does, and
//! together they take minutes the live proof spends mostly waiting for alerts.

use crate::run::{Output, human, run};
use anyhow::Context;
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A step: a name and what it does.
struct Step {
    name: &'static str,
    action: Box<dyn FnOnce() -> anyhow::Result<()> + Send>,
    /// Runs in the background: the next steps start at once, and it is waited for at the end.
    background: bool,
}

impl Step {
    fn new(
        name: &'static str,
        action: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
    ) -> Step {
        Step { name, action: Box::new(action), background: false }
    }

    fn in_background(
        name: &'static str,
        action: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
    ) -> Step {
        Step { background: true, ..Step::new(name, action) }
    }
}

/// The `test` subcommand.
pub fn command() -> anyhow::Result<()> {
    let steps = steps();
    let total = steps.len();
    let started = Instant::now();
    let mut background = Vec::new();
    let mut failure = None;
    for (n, step) in steps.into_iter().enumerate() {
        let name = step.name;
        let step_started = Instant::now();
        if step.background {
            eprintln!(
                "\n==> [{}/{total}] {name} (in the background, lines prefixed [{name}])",
                n + 1
            );
            background.push((name, step_started, std::thread::spawn(step.action)));
            continue;
        }
        eprintln!("\n==> [{}/{total}] {name}", n + 1);
        let result = (step.action)();
        let took = human(step_started.elapsed());
        match result {
            Ok(()) => eprintln!("<== {name} passed in {took}"),
            Err(e) => {
                failure = Some(format!("step `{name}` failed after {took}: {e:#}"));
                break;
            }
        }
    }
    // Background steps always finish, so a failure of the live proof does not hide theirs.
    for (name, step_started, thread) in background {
        let result = thread.join().unwrap_or_else(|_| Err(anyhow::anyhow!("{name} panicked")));
        let took = human(step_started.elapsed());
        match result {
            Ok(()) => eprintln!("<== {name} (background) passed in {took}"),
            Err(e) => {
                let message = format!("step `{name}` failed after {took}: {e:#}");
                eprintln!("<== {message}");
                failure.get_or_insert(message);
            }
        }
    }
    if let Some(failure) = failure {
        anyhow::bail!(failure);
    }
    eprintln!("\nall {total} steps passed in {}", human(started.elapsed()));
    Ok(())
}

/// `m` minutes.
const fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn steps() -> Vec<Step> {
    vec![
        cargo_step("fmt", &["fmt", "--all", "--", "--check"], minutes(5)),
        cargo_step(
            "clippy",
            &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"],
            minutes(60),
        ),
        Step::new("tools", || crate::tools::ensure().map(|_| ())),
        Step::new("collector config", || {
            let mut command = Command::new(testkit::tools::otelcol_path()?);
            command.args(["validate", "--config", "collector-config.yaml"]);
            in_repo("otelcol validate", &mut command, Output::Inherit, minutes(2))
        }),
        Step::new("prometheus config", || {
            let mut command = Command::new(testkit::tools::promtool_path()?);
            command.args(["check", "config", "prometheus/prometheus.yml"]);
            in_repo("promtool check config", &mut command, Output::Inherit, minutes(2))
        }),
        Step::new("prometheus rules", || {
            let mut command = Command::new(testkit::tools::promtool_path()?);
            command.args(["check", "rules"]).args(yaml_files_in_repo(RULES_DIR)?);
            in_repo("promtool check rules", &mut command, Output::Inherit, minutes(2))
        }),
        Step::new("alert coverage", check_alerts),
        Step::new("alertmanager config", || {
            let mut command = Command::new(testkit::tools::amtool_path()?);
            command.args(["check-config", ALERTMANAGER_CONFIG]);
            in_repo("amtool check-config", &mut command, Output::Inherit, minutes(2))
        }),
        Step::new("alertmanager routes", check_routes),
        // Built in the foreground, so the live proof's stack does not wait for the compiler.
        cargo_step(
            "build tests",
            &["test", "--workspace", "--all-features", "--no-run"],
            minutes(60),
        ),
        Step::in_background("prometheus rule tests", || {
            let mut command = Command::new(testkit::tools::promtool_path()?);
            command.args(["test", "rules"]).args(yaml_files_in_repo(RULE_TESTS_DIR)?);
            let output = Output::Prefixed("prometheus rule tests");
            in_repo("promtool test rules", &mut command, output, minutes(10))
        }),
        // --no-fail-fast: one failing test binary must not hide the results of the others.
        Step::in_background("tests", || {
            let args = ["test", "--workspace", "--all-features", "--no-fail-fast"];
            let mut command = Command::new(cargo());
            command.args(args);
            let what = format!("cargo {}", args.join(" "));
            in_repo(&what, &mut command, Output::Prefixed("tests"), minutes(60))
        }),
        // Last: the whole stack under load and faults, every dashboard and rule query.
        Step::new("live proof (cargo xtask e2e)", crate::e2e::command),
    ]
}

fn cargo_step(name: &'static str, args: &'static [&'static str], timeout: Duration) -> Step {
    Step::new(name, move || {
        let mut command = Command::new(cargo());
        command.args(args);
        in_repo(&format!("cargo {}", args.join(" ")), &mut command, Output::Inherit, timeout)
    })
}

/// Runs `command` in the repo root, its output going to `output` (inherited: its progress shows).
fn in_repo(
    what: &str,
    command: &mut Command,
    output: Output<'_>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let line: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    eprintln!("    $ {}", line.join(" "));
    run(what, command.current_dir(testkit::repo_root()), output, timeout)
}

/// The cargo that runs us (`$CARGO`), else `cargo` from PATH.
fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

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

/// Alerts whose value is a constant (the Watchdog's 1, a state alert's 0): a description showing
/// it would say nothing, so theirs need not.
const CONSTANT_VALUE_ALERTS: &[&str] =
    &["Watchdog", "CircuitBreakerOpen", "AlertingConfigReloadFailed"];

/// The Alertmanager configuration, and its routing cases (see [`check_routes`]).
const ALERTMANAGER_CONFIG: &str = "alertmanager/alertmanager.yml";
const ROUTE_CASES: &str = "alertmanager/tests/routes.yaml";

/// The `*.yaml`/`*.yml` files directly in `dir`, sorted; an error if there are none (a step that
/// checks nothing must not pass).
fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    files.retain(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no *.yaml file in {}", dir.display());
    Ok(files)
}

/// [`yaml_files`] of the repo directory `dir`, as paths relative to the repo root (the steps run
/// there, so the commands they echo stay short).
fn yaml_files_in_repo(dir: &str) -> anyhow::Result<Vec<PathBuf>> {
    let root = testkit::repo_root();
    Ok(yaml_files(&root.join(dir))?
        .into_iter()
        .map(|p| p.strip_prefix(&root).map(Path::to_path_buf).unwrap_or(p))
        .collect())
}

fn read_yaml(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("{} is not YAML", path.display()))
}

/// The "alert coverage" step: every alert of the rule files carries what an alert must have
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
    let cases: Vec<RouteCase> = serde_yaml::from_value(read_yaml(path)?["cases"].clone())
        .with_context(|| {
            format!("{}: `cases` is not a list of name, labels, receivers", path.display())
        })?;
    anyhow::ensure!(!cases.is_empty(), "no routing case in {}", path.display());
    Ok(cases)
}

/// The "alertmanager routes" step: every case of [`ROUTE_CASES`] through
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

#[cfg(test)]
mod tests {
    use super::*;

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
        serde_yaml::from_str(text).expect("test YAML parses")
    }

    fn tests_of(cases: &str) -> Value {
        yaml(&format!(
            "tests:\n  - input_series: []\n    external_labels: {{runbook_base_url: {}}}\n    \
             alert_rule_test:\n{cases}",
            BASE.unwrap()
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
        let problems = alert_problems(
            &[yaml(&rules)],
            &[tests],
            &runbooks(&["XHigh.md", "Watchdog.md"]),
            BASE,
        );
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

    /// The repo's routing cases pass (so `cargo test` enforces them too; needs amtool, built by
    /// `cargo xtask tools`).
    #[test]
    fn the_repo_routes_reach_their_receivers() -> anyhow::Result<()> {
        check_routes()
    }

    /// The repo's own rules, tests and runbooks pass the check (so `cargo test` enforces it too).
    #[test]
    fn the_repo_alerts_are_covered() -> anyhow::Result<()> {
        check_alerts()
    }
}
