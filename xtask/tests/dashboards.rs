//! Structural checks of the Grafana dashboards (`grafana/dashboards/**/*.json`) and their
//! provisioning (`grafana/provisioning/`): valid JSON, unique uids and panel ids, a layout that
//! fits the 24-column grid without overlaps, every panel on the provisioned data source with a
//! description, a unit and thresholds, the `datasource`/`job`/`instance` variables, links between
//! the dashboards, and queries that only use the series of the metric contract (what the
//! catalogue's instruments become in Prometheus, `otel::catalogue::prometheus`) or the recording
//! rules of `prometheus/rules/recording.yaml`, filtered by `$job`/`$instance`, over
//! `$__rate_interval`, with health checks excluded from HTTP panels and no label outside the
//! contract's bounded sets. Every query must also parse: with Prometheus' grammar here, and
//! promtool checks them as recording rules. Further: every dashboard matches Grafana 13's
//! dashboard schema (schemaVersion 42, see "Grafana 13's dashboard schema"), no query divides by
//! something that can be 0 (NaN at zero traffic) or reads a recorded ratio with its NaN, state
//! queries use a fixed window, alert tables select alerts by `service`, and the Infrastructure
//! dashboard shows the collector from its own scrape job.
//!
//! That the queries return data from the real pipeline is proven elsewhere, with
//! `xtask::dashboards::queries()`.

use otel::catalogue::{Label, Queue};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{self as promql, Expr, LabelModifier, VectorMatchCardinality};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;
use xtask::dashboards::{
    self, Dashboard, PROVISIONED_DATASOURCE_UID, is_row, load_all, targets, title,
};

/// The dashboards the repository must have, by uid (docs/ARCHITECTURE.md, "1. The pipeline").
const EXPECTED_UIDS: [&str; 5] =
    ["orgraph-overview", "orgraph-api", "orgraph-worker", "orgraph-infrastructure", "orgraph-slo"];

/// The tag every dashboard carries and the dashboard links list by.
const TAG: &str = "orgraph";

/// Grafana's grid width.
const GRID_COLUMNS: u64 = 24;

/// Prometheus' own series of firing and pending alerts; its labels are the alerts' labels.
const ALERTS: &str = "ALERTS";

/// The matcher that keeps health checks out of HTTP panels.
const NO_HEALTH: (&str, &str, &str) = ("http_route", "!~", "/health/.*");

/// The fixed window of state queries ("Service up": has `process_uptime_seconds` moved?). Equal
/// to the window of the ApiDown/WorkerDown alerts (prometheus/rules/alerts.yaml), so the stat and
/// the alert agree, and fixed so the stat means the same at every zoom ($__rate_interval grows
/// with the time range).
const STATE_WINDOW: &str = "2m";

/// The scrape job of the collector's own telemetry (prometheus/prometheus.yml, :8888).
const COLLECTOR_JOB: &str = "otel-collector";

/// The collector's own series the dashboards may read, with the labels they may use. Names as
/// the pinned collector (0.161) serves them on :8888, the names prometheus/rules/alerts.yaml uses:
/// its internal Prometheus exporter adds no `_total` suffix to counters. `up` is Prometheus' own
/// series, read only for the collector's two scrape jobs.
fn collector_series() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let receiver = ["job", "instance", "receiver", "transport"];
    let exporter = ["job", "instance", "exporter"];
    BTreeMap::from([
        ("otelcol_receiver_accepted_metric_points", receiver.into()),
        ("otelcol_receiver_refused_metric_points", receiver.into()),
        ("otelcol_exporter_sent_metric_points", exporter.into()),
        ("otelcol_exporter_send_failed_metric_points", exporter.into()),
        ("otelcol_process_memory_rss", ["job", "instance"].into()),
        ("up", ["job", "instance"].into()),
    ])
}

/// Collector counters created by their first increment: absent on a healthy collector, so their
/// panels need a fallback to 0.
const LAZY_COLLECTOR_COUNTERS: [&str; 2] =
    ["otelcol_receiver_refused_metric_points", "otelcol_exporter_send_failed_metric_points"];

/// What the Infrastructure dashboard's collector row must show.
const COLLECTOR_ROW_SERIES: [&str; 5] = [
    "otelcol_receiver_accepted_metric_points",
    "otelcol_receiver_refused_metric_points",
    "otelcol_exporter_sent_metric_points",
    "otelcol_exporter_send_failed_metric_points",
    "otelcol_process_memory_rss",
];

// ------------------------------------------------------------------------------------------------
// What the queries may read: the metric contract (`xtask::dashboards::contract`, from the
// catalogue) and the recording rules (`prometheus/rules/recording.yaml`), with their labels

/// Every recording rule of `prometheus/rules/recording.yaml` with the labels of the series it
/// records, read from its expression ([`result_labels`]) and its own `labels:`; an error says why
/// they cannot be told (a series that is neither in the contract, the collector's nor recorded).
/// The rules over the services aggregate `by (job, ...)`, without `instance`: panels filter them
/// by `job` only.
fn recorded_series() -> BTreeMap<String, Result<BTreeSet<String>, String>> {
    let rules = dashboards::recording_rules();
    let contract = dashboards::contract();
    let collector = collector_series();
    let by_name: BTreeMap<&str, &dashboards::RecordingRule> =
        rules.iter().map(|rule| (rule.name.as_str(), rule)).collect();
    // `depth` stops a rule that reads itself, however indirectly.
    fn labels(
        name: &str,
        depth: usize,
        rules: &BTreeMap<&str, &dashboards::RecordingRule>,
        contract: &BTreeMap<String, BTreeSet<String>>,
        collector: &BTreeMap<&str, BTreeSet<&str>>,
    ) -> Result<BTreeSet<String>, String> {
        if let Some(labels) = contract.get(name) {
            return Ok(labels.clone());
        }
        if let Some(labels) = collector.get(name) {
            return Ok(labels.iter().map(|l| l.to_string()).collect());
        }
        let rule = rules.get(name).ok_or_else(|| {
            format!("{name} is neither a catalogue series, a collector series nor a recording rule")
        })?;
        if depth > rules.len() {
            return Err(format!("{name} reads itself"));
        }
        let tree = syntax(&rule.expr)?;
        let mut out = result_labels(&tree, &|series: &str| {
            labels(series, depth + 1, rules, contract, collector)
        })
        .map_err(|e| format!("{name}: {e}"))?;
        out.extend(rule.labels.iter().cloned());
        Ok(out)
    }
    rules
        .iter()
        .map(|rule| (rule.name.clone(), labels(&rule.name, 0, &by_name, &contract, &collector)))
        .collect()
}

/// The label keys of the series `expr` returns, given those of each series it reads (`series`,
/// an error for a series it does not know): an aggregation keeps its `by` labels (or drops its
/// `without` labels), `histogram_quantile` drops `le`, `label_replace` adds its target, other
/// functions keep their argument's labels; a vector-to-vector operation keeps the left side's
/// labels, only the `on` labels of a one-to-one match, and adds those of `group_left`/
/// `group_right`; `or` keeps either side's.
fn result_labels(
    expr: &Expr,
    series: &dyn Fn(&str) -> Result<BTreeSet<String>, String>,
) -> Result<BTreeSet<String>, String> {
    let labels = |e: &Expr| result_labels(e, series);
    let set = |labels: &[String]| labels.iter().cloned().collect::<BTreeSet<String>>();
    Ok(match expr {
        Expr::VectorSelector(vs) => series(&selector_name(vs))?,
        Expr::MatrixSelector(ms) => series(&selector_name(&ms.vs))?,
        Expr::Paren(e) => labels(&e.expr)?,
        Expr::Unary(e) => labels(&e.expr)?,
        Expr::Subquery(e) => labels(&e.expr)?,
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => BTreeSet::new(),
        Expr::Aggregate(a) => {
            let inner = labels(&a.expr)?;
            match &a.modifier {
                Some(LabelModifier::Include(by)) => set(&by.labels),
                Some(LabelModifier::Exclude(without)) => &inner - &set(&without.labels),
                // These select series and keep their labels; the others aggregate everything.
                None if ["topk", "bottomk", "limitk", "limit_ratio"]
                    .contains(&a.op.to_string().as_str()) =>
                {
                    inner
                }
                None => BTreeSet::new(),
            }
        }
        Expr::Call(call) => {
            let args: Vec<&Expr> = call.args.args.iter().map(|a| a.as_ref()).collect();
            let mut out = BTreeSet::new();
            for arg in &args {
                if matches!(arg.value_type(), ValueType::Vector | ValueType::Matrix) {
                    out.extend(labels(arg)?);
                }
            }
            match (call.func.name, args.get(1)) {
                ("histogram_quantile", _) => {
                    out.remove("le");
                }
                ("label_replace" | "label_join", Some(Expr::StringLiteral(target))) => {
                    out.insert(target.val.clone());
                }
                _ => {}
            }
            out
        }
        Expr::Binary(b) => {
            let (lhs, rhs) = (labels(&b.lhs)?, labels(&b.rhs)?);
            let scalar = |e: &Expr| e.value_type() == ValueType::Scalar;
            let modifier = b.modifier.clone().unwrap_or_default();
            match b.op.to_string().as_str() {
                "or" => &lhs | &rhs,
                "and" | "unless" => lhs,
                _ if scalar(&b.lhs) => rhs,
                _ if scalar(&b.rhs) => lhs,
                _ => match (&modifier.card, &modifier.matching) {
                    (VectorMatchCardinality::ManyToOne(extra), _) => &lhs | &set(&extra.labels),
                    (VectorMatchCardinality::OneToMany(extra), _) => &rhs | &set(&extra.labels),
                    (_, Some(LabelModifier::Include(on))) => set(&on.labels),
                    (_, Some(LabelModifier::Exclude(ignoring))) => &lhs - &set(&ignoring.labels),
                    (_, None) => lhs,
                },
            }
        }
        Expr::Extension(_) => return Err("an extension expression".to_string()),
    })
}

// ------------------------------------------------------------------------------------------------
// Reading PromQL with Prometheus' grammar (the promql-parser crate). The checks walk the syntax
// tree: series selectors with their matchers and range windows, the labels of grouping clauses,
// what each `/` divides by, state functions, the top-level `or` of a fallback. The dashboards'
// queries are also parsed by promtool (below).

/// Grafana's interval variables, each with the duration that stands in for it while a query is
/// parsed: the grammar reads no variable where a duration goes (`[$__rate_interval]`), so
/// [`syntax`] puts the stand-in there first, and a range of that duration reads back as the
/// variable ([`range_text`]). No dashboard would write such a duration. The variables inside
/// strings (`job=~"$job"`, `instance=~"$instance"`) need no stand-in: to the grammar they are
/// label values, and the checks see them as written.
const INTERVAL_STAND_INS: [(&str, &str); 4] = [
    ("$__rate_interval", "7h7m7s7ms"),
    ("${__rate_interval}", "7h7m7s7ms"),
    ("$__interval", "6h6m6s6ms"),
    ("${__interval}", "6h6m6s6ms"),
];

/// The syntax tree of `expr`, its interval variables replaced by their stand-ins first.
fn syntax(expr: &str) -> Result<Expr, String> {
    if let Some((_, stand_in)) = INTERVAL_STAND_INS.iter().find(|(_, s)| expr.contains(s)) {
        return Err(format!("`{expr}` writes {stand_in}, the stand-in of an interval variable"));
    }
    let text = INTERVAL_STAND_INS.iter().fold(expr.to_string(), |e, (var, s)| e.replace(var, s));
    promql::parse(&text).map_err(|e| format!("`{expr}` is not PromQL: {e}"))
}

/// A range window as the query wrote it: the interval variable it stands for, or a duration
/// (`2m`).
fn range_text(range: &Duration) -> String {
    let text = promql_parser::util::display_duration(range);
    match INTERVAL_STAND_INS.iter().find(|(_, stand_in)| *stand_in == text) {
        Some((var, _)) => var.to_string(),
        None => text,
    }
}

/// A series selector: `metric{matchers}[range]`.
#[derive(Debug, Clone, PartialEq)]
struct Selector {
    metric: String,
    /// (label, operator, value)
    matchers: Vec<(String, String, String)>,
    range: Option<String>,
}

impl Selector {
    fn new(vs: &promql::VectorSelector, range: Option<&Duration>) -> Selector {
        let matchers = vs.matchers.matchers.iter().chain(vs.matchers.or_matchers.iter().flatten());
        Selector {
            metric: selector_name(vs),
            matchers: matchers
                .filter(|m| m.name != "__name__")
                .map(|m| (m.name.clone(), m.op.to_string(), m.value.clone()))
                .collect(),
            range: range.map(range_text),
        }
    }

    fn has(&self, (label, op, value): (&str, &str, &str)) -> bool {
        self.matchers.iter().any(|(l, o, v)| l == label && o == op && v == value)
    }

    /// Whether it filters by any label (`metric{...}`).
    fn braces(&self) -> bool {
        !self.matchers.is_empty()
    }
}

/// The metric a selector reads: its name, or its `__name__="..."` matcher.
fn selector_name(vs: &promql::VectorSelector) -> String {
    let by_matcher = vs.matchers.matchers.iter().find(|m| m.name == "__name__");
    vs.name.clone().or_else(|| by_matcher.map(|m| m.value.clone())).unwrap_or_default()
}

/// A query read: its syntax tree and what it references.
#[derive(Debug)]
struct Parsed {
    tree: Expr,
    /// Its series selectors, in the order they are written.
    selectors: Vec<Selector>,
    /// Labels named in `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    grouping: Vec<String>,
}

/// Reads `expr`; panics naming it if Prometheus' grammar rejects it (as
/// `every_query_parses_with_prometheus_grammar` reports for every panel).
fn parse(expr: &str) -> Parsed {
    let tree = syntax(expr).unwrap_or_else(|e| panic!("{e}"));
    let mut parsed = Parsed { selectors: Vec::new(), grouping: Vec::new(), tree: tree.clone() };
    read(&tree, &mut parsed);
    parsed
}

fn read(expr: &Expr, parsed: &mut Parsed) {
    match expr {
        Expr::VectorSelector(vs) => parsed.selectors.push(Selector::new(vs, None)),
        Expr::MatrixSelector(ms) => parsed.selectors.push(Selector::new(&ms.vs, Some(&ms.range))),
        Expr::Aggregate(a) => {
            if let Some(modifier) = &a.modifier {
                parsed.grouping.extend(modifier.labels().labels.iter().cloned());
            }
            children(expr).into_iter().for_each(|child| read(child, parsed));
        }
        Expr::Binary(b) => {
            read(&b.lhs, parsed);
            if let Some(modifier) = &b.modifier {
                let matching = modifier.matching.iter().flat_map(|m| &m.labels().labels);
                let card = modifier.card.labels().into_iter().flat_map(|l| &l.labels);
                parsed.grouping.extend(matching.chain(card).cloned());
            }
            read(&b.rhs, parsed);
        }
        _ => children(expr).into_iter().for_each(|child| read(child, parsed)),
    }
}

/// The operands of `expr`, in the order they are written.
fn children(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Aggregate(a) => a.param.iter().chain([&a.expr]).map(|e| e.as_ref()).collect(),
        Expr::Unary(e) => vec![&e.expr],
        Expr::Binary(b) => vec![&b.lhs, &b.rhs],
        Expr::Paren(e) => vec![&e.expr],
        Expr::Subquery(e) => vec![&e.expr],
        Expr::Call(call) => call.args.args.iter().map(|a| a.as_ref()).collect(),
        Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::Extension(_) => Vec::new(),
    }
}

/// `expr` and every expression inside it.
fn descendants(expr: &Expr) -> Vec<&Expr> {
    let mut out = vec![expr];
    for child in children(expr) {
        out.extend(descendants(child));
    }
    out
}

/// The `{{label}}` references of a legend format.
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}").map(|(label, _)| label.trim().to_string()))
        .collect()
}

/// The value of a number (`2`, `-1`, `(0.5)`), if `expr` is one.
fn number(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::NumberLiteral(n) => Some(n.val),
        Expr::Unary(e) => number(&e.expr).map(|v| -v),
        Expr::Paren(e) => number(&e.expr),
        _ => None,
    }
}

/// The operator of a binary expression (`/`, `>=`, `or`), and whether it has `bool`.
fn operator(expr: &Expr) -> Option<(String, bool)> {
    match expr {
        Expr::Binary(b) => {
            Some((b.op.to_string(), b.modifier.as_ref().is_some_and(|m| m.return_bool)))
        }
        _ => None,
    }
}

/// Every denominator of `expr`: what each `/` divides by, in the order they are written.
fn denominators(expr: &Expr) -> Vec<&Expr> {
    let mut out = Vec::new();
    if let Expr::Binary(b) = expr {
        out.extend(denominators(&b.lhs));
        if b.op.to_string() == "/" {
            out.push(b.rhs.as_ref());
        }
        out.extend(denominators(&b.rhs));
    } else {
        out.extend(children(expr).into_iter().flat_map(denominators));
    }
    out
}

/// Whether a denominator can never be 0, so the division never makes NaN (0/0) or ±Inf: a
/// non-zero number, `(... > c)` with c ≥ 0 or `(... >= c)` with c > 0 (a filter: a zero
/// denominator drops the element), or `clamp_min(..., c)` with c > 0. A set operator above the
/// comparison (`(a or s > 0)` is `(a or (s > 0))`) lets a zero through again, and `> bool`
/// returns 0 and 1.
fn is_guarded_denominator(operand: &Expr) -> bool {
    match operand {
        Expr::NumberLiteral(n) => n.val != 0.0,
        Expr::Call(call) if call.func.name == "clamp_min" => {
            call.args.args.get(1).and_then(|c| number(c)).is_some_and(|c| c > 0.0)
        }
        Expr::Paren(inner) => {
            let Expr::Binary(b) = inner.expr.as_ref() else { return false };
            match (operator(&inner.expr), number(&b.rhs)) {
                (Some((op, false)), Some(bound)) if op == ">" => bound >= 0.0,
                (Some((op, false)), Some(bound)) if op == ">=" => bound > 0.0,
                _ => false,
            }
        }
        _ => false,
    }
}

/// Whether a recorded series is a ratio: `...:ratio_...`, or a burn rate (a ratio over a constant).
fn is_recorded_ratio(name: &str) -> bool {
    name.contains(":ratio") || name.contains(":burn_rate")
}

/// The recorded ratios (`...:ratio_...`, `...:burn_rate...`) `expr` reads without the NaN filter `(rule{...} >= 0)`.
/// A recorded ratio is NaN (0/0) while its denominator is 0, e.g. without traffic in its window;
/// every comparison with NaN is false, so `>= 0` drops exactly the NaN and keeps every ratio.
fn unfiltered_recorded_ratios(expr: &Expr) -> Vec<String> {
    let is_filter = |e: &Expr| match e {
        Expr::Binary(b) => {
            operator(e) == Some((">=".to_string(), false))
                && matches!(b.lhs.as_ref(), Expr::VectorSelector(_))
                && matches!(b.rhs.as_ref(), Expr::NumberLiteral(n) if n.val == 0.0)
        }
        _ => false,
    };
    match expr {
        Expr::Paren(inner) if is_filter(&inner.expr) => Vec::new(),
        Expr::VectorSelector(vs) if is_recorded_ratio(&selector_name(vs)) => {
            vec![selector_name(vs)]
        }
        Expr::MatrixSelector(ms) if is_recorded_ratio(&selector_name(&ms.vs)) => {
            vec![selector_name(&ms.vs)]
        }
        _ => children(expr).into_iter().flat_map(unfiltered_recorded_ratios).collect(),
    }
}

/// Functions whose result is a state (did it change, is it there) rather than a quantity.
const STATE_FUNCTIONS: [&str; 5] =
    ["changes", "resets", "absent", "absent_over_time", "present_over_time"];

/// Whether `expr` computes a state: a `bool` comparison (0 or 1) or a state function.
fn is_state_query(expr: &Expr) -> bool {
    descendants(expr).into_iter().any(|e| match e {
        Expr::Call(call) => STATE_FUNCTIONS.contains(&call.func.name),
        _ => operator(e).is_some_and(|(_, with_bool)| with_bool),
    })
}

/// `expr` split at its top-level `or` operators.
fn top_level_or_operands(expr: &Expr) -> Vec<&Expr> {
    match expr {
        Expr::Binary(b) if b.op.to_string() == "or" => {
            let mut operands = top_level_or_operands(&b.lhs);
            operands.extend(top_level_or_operands(&b.rhs));
            operands
        }
        _ => vec![expr],
    }
}

/// The series selectors of a part of a query.
fn selectors(expr: &Expr) -> Vec<Selector> {
    let mut parsed = Parsed { tree: expr.clone(), selectors: Vec::new(), grouping: Vec::new() };
    read(expr, &mut parsed);
    parsed.selectors
}

// ------------------------------------------------------------------------------------------------
// Helpers

/// Every (dashboard, panel, target) of every dashboard.
fn all_targets(dashboards: &[Dashboard]) -> Vec<(&Dashboard, &Value, &Value)> {
    let mut out = Vec::new();
    for dashboard in dashboards {
        for panel in dashboard.visible_panels() {
            for target in targets(panel) {
                out.push((dashboard, panel, target));
            }
        }
    }
    out
}

fn expr(target: &Value) -> &str {
    target["expr"].as_str().unwrap_or_default()
}

fn at(dashboard: &Dashboard, panel: &Value) -> String {
    format!("{} / panel {:?} (id {})", dashboard.name(), title(panel), panel["id"])
}

/// Fails with every collected problem at once.
fn report(problems: Vec<String>) {
    assert!(problems.is_empty(), "{} problem(s):\n  {}", problems.len(), problems.join("\n  "));
}

fn provisioning_yaml(relative: &str) -> serde_norway::Value {
    let path = dashboards::repo_root().join("grafana").join("provisioning").join(relative);
    xtask::yaml::read(&path).unwrap_or_else(|e| panic!("{e:#}"))
}

// ------------------------------------------------------------------------------------------------
// The dashboards as files

#[test]
fn every_dashboard_file_is_valid_json_and_the_five_dashboards_exist() {
    let files = dashboards::dashboard_files();
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    for file in &files {
        match dashboards::load(file) {
            Ok(d) => {
                uids.insert(d.uid().to_string());
                if d.title().is_empty() {
                    problems.push(format!("{}: no title", d.name()));
                }
                let in_folder = file.parent() != Some(dashboards::dashboards_dir().as_path());
                if !in_folder {
                    problems.push(format!("{}: not in a folder directory", d.name()));
                }
            }
            Err(e) => problems.push(e),
        }
    }
    for uid in EXPECTED_UIDS {
        if !uids.contains(uid) {
            problems.push(format!("no dashboard with uid {uid}"));
        }
    }
    assert!(files.len() >= EXPECTED_UIDS.len(), "only {} dashboard files", files.len());
    report(problems);
}

#[test]
fn dashboards_use_the_classic_model_of_a_recent_schema() {
    let mut problems = Vec::new();
    for d in load_all() {
        let version = d.json["schemaVersion"].as_u64().unwrap_or(0);
        if version < 39 {
            problems.push(format!("{}: schemaVersion {version} < 39", d.name()));
        }
        if d.json["panels"].as_array().is_none_or(Vec::is_empty) {
            problems.push(format!("{}: no `panels`", d.name()));
        }
        if !d.json["id"].is_null() {
            problems.push(format!("{}: `id` must be null (Grafana assigns it)", d.name()));
        }
    }
    report(problems);
}

#[test]
fn dashboard_uids_are_unique() {
    let mut seen = BTreeMap::new();
    let mut problems = Vec::new();
    for d in load_all() {
        if d.uid().is_empty() || d.uid().len() > 40 {
            problems.push(format!("{}: uid {:?} is empty or longer than 40", d.name(), d.uid()));
        }
        if let Some(other) = seen.insert(d.uid().to_string(), d.name()) {
            problems.push(format!("uid {} in both {other} and {}", d.uid(), d.name()));
        }
    }
    report(problems);
}

#[test]
fn panel_ids_and_titles_are_unique_within_a_dashboard() {
    let mut problems = Vec::new();
    for d in load_all() {
        let mut ids = HashSet::new();
        let mut titles = HashSet::new();
        for panel in d.panels() {
            match panel["id"].as_u64() {
                Some(id) if ids.insert(id) => {}
                Some(id) => problems.push(format!("{}: panel id {id} used twice", d.name())),
                None => problems.push(format!("{}: panel without id", at(&d, panel))),
            }
            if !is_row(panel) && !titles.insert(title(panel)) {
                problems.push(format!("{}: title used twice", at(&d, panel)));
            }
            if title(panel).is_empty() {
                problems.push(format!("{}: no title", at(&d, panel)));
            }
        }
    }
    report(problems);
}

/// A panel's place on the grid: (x, y, w, h).
type GridPos = (u64, u64, u64, u64);

/// The (x, y, w, h) of a panel.
fn grid_pos(panel: &Value) -> Option<GridPos> {
    let g = &panel["gridPos"];
    Some((g["x"].as_u64()?, g["y"].as_u64()?, g["w"].as_u64()?, g["h"].as_u64()?))
}

fn check_layout(d: &Dashboard, panels: &[&Value], problems: &mut Vec<String>) {
    let mut placed: Vec<(&Value, GridPos)> = Vec::new();
    for &panel in panels {
        let Some(pos @ (x, y, w, h)) = grid_pos(panel) else {
            problems.push(format!("{}: gridPos needs x, y, w, h", at(d, panel)));
            continue;
        };
        if w == 0 || h == 0 || x + w > GRID_COLUMNS {
            problems.push(format!("{}: gridPos {pos:?} outside the 24-column grid", at(d, panel)));
        }
        for (other, (ox, oy, ow, oh)) in &placed {
            if x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h {
                problems.push(format!("{} overlaps panel {:?}", at(d, panel), title(other)));
            }
        }
        placed.push((panel, pos));
    }
}

#[test]
fn panels_fit_the_grid_without_overlapping() {
    let mut problems = Vec::new();
    for d in load_all() {
        let top: Vec<&Value> = d.json["panels"].as_array().into_iter().flatten().collect();
        check_layout(&d, &top, &mut problems);
        // A collapsed row keeps its panels inside; they are laid out among themselves.
        for row in top.iter().filter(|p| is_row(p)) {
            let nested: Vec<&Value> = row["panels"].as_array().into_iter().flatten().collect();
            check_layout(&d, &nested, &mut problems);
        }
    }
    report(problems);
}

// ------------------------------------------------------------------------------------------------
// Grafana 13's dashboard schema
//
// The version and the rules below come from Grafana's published dashboard schema for the pinned
// Grafana (GRAFANA_VERSION=13.2.3 in .env):
// * `@grafana/schema` 13.2.3 (npm), dist/types/raw/dashboard/x/types.gen.d.ts, generated from
//   grafana/grafana kinds/dashboard/dashboard_kind.cue: the Dashboard, Panel, RowPanel, GridPos,
//   FieldConfigSource, FieldConfig, ThresholdsConfig, ValueMapping, VariableModel,
//   DashboardLink, AnnotationQuery and TimePickerConfig types, their required fields and enums,
//   and `defaultDashboard.schemaVersion: 42`;
// * grafana/grafana public/app/features/dashboard/state/DashboardMigrator.ts,
//   `DASHBOARD_SCHEMA_VERSION = 42`, "the FINAL version for the v1 dashboard API" (later changes
//   are panel migrations). The backend (apps/dashboard/pkg/migration/schemaversion/) has a v43
//   on its main branch: formatTime transformations become convertFieldType; it would not touch
//   these dashboards, and the check below keeps it that way.
// * the migrations from 39 (what the files had) to 42, v40.go-v42.go there: `refresh` is a
//   string; `timepicker.time_options` is gone; a `custom.hideFrom` override hiding a field from
//   the viz hides it from the tooltip too;
// * the panel plugins' options, `@grafana/schema` 13.2.3
//   dist/types/raw/composable/<plugin>/panelcfg/x/*.d.ts (`Options` with the common interfaces it
//   extends): the table's `footer` option is gone from them (footers are per field since 12.2).

/// The dashboard schemaVersion of Grafana 13 (see above).
const SCHEMA_VERSION: u64 = 42;

/// A JSON type of the schema.
#[derive(Clone, Copy, Debug)]
enum Ty {
    Str,
    Num,
    Int,
    Bool,
    Obj,
    Arr,
    /// `number | null` (a threshold's base step).
    NumOrNull,
    /// `string | string[]` (a variable option's text and value).
    StrOrStrs,
    /// `string | object` (a variable's query).
    StrOrObj,
    /// Anything (`unknown` in the schema).
    Any,
}

fn has_type(v: &Value, ty: Ty) -> bool {
    match ty {
        Ty::Str => v.is_string(),
        Ty::Num => v.is_number(),
        Ty::Int => v.is_i64() || v.is_u64(),
        Ty::Bool => v.is_boolean(),
        Ty::Obj => v.is_object(),
        Ty::Arr => v.is_array(),
        Ty::NumOrNull => v.is_number() || v.is_null(),
        Ty::StrOrStrs => {
            v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        }
        Ty::StrOrObj => v.is_string() || v.is_object(),
        Ty::Any => true,
    }
}

/// (field, required, type)
type Field = (&'static str, bool, Ty);

const DASHBOARD: &[Field] = &[
    ("annotations", false, Ty::Obj),
    ("description", false, Ty::Str),
    ("editable", false, Ty::Bool),
    ("fiscalYearStartMonth", false, Ty::Int),
    ("gnetId", false, Ty::Num),
    ("graphTooltip", false, Ty::Int),
    ("id", false, Ty::NumOrNull),
    ("links", false, Ty::Arr),
    ("liveNow", false, Ty::Bool),
    ("panels", false, Ty::Arr),
    ("preload", false, Ty::Bool),
    ("refresh", false, Ty::Str),
    ("revision", false, Ty::Num),
    ("schemaVersion", true, Ty::Int),
    ("snapshot", false, Ty::Obj),
    ("tags", false, Ty::Arr),
    ("templating", false, Ty::Obj),
    ("time", false, Ty::Obj),
    ("timepicker", false, Ty::Obj),
    ("timezone", false, Ty::Str),
    ("title", false, Ty::Str),
    ("uid", false, Ty::Str),
    ("version", false, Ty::Num),
    ("weekStart", false, Ty::Str),
];
const TIME_RANGE: &[Field] = &[("from", true, Ty::Str), ("to", true, Ty::Str)];
const TIMEPICKER: &[Field] = &[
    ("hidden", false, Ty::Bool),
    ("nowDelay", false, Ty::Str),
    ("quick_ranges", false, Ty::Arr),
    ("refresh_intervals", false, Ty::Arr),
];
const ANNOTATION: &[Field] = &[
    ("builtIn", false, Ty::Num),
    ("datasource", true, Ty::Obj),
    ("enable", true, Ty::Bool),
    ("filter", false, Ty::Obj),
    ("hide", false, Ty::Bool),
    ("iconColor", true, Ty::Str),
    ("name", true, Ty::Str),
    ("placement", false, Ty::Str),
    ("target", false, Ty::Obj),
    ("type", false, Ty::Str),
];
const LINK: &[Field] = &[
    ("asDropdown", true, Ty::Bool),
    ("icon", true, Ty::Str),
    ("includeVars", true, Ty::Bool),
    ("keepTime", true, Ty::Bool),
    ("origin", false, Ty::Obj),
    ("placement", false, Ty::Str),
    ("tags", true, Ty::Arr),
    ("targetBlank", true, Ty::Bool),
    ("title", true, Ty::Str),
    ("tooltip", true, Ty::Str),
    ("type", true, Ty::Str),
    ("url", false, Ty::Str),
];
/// VariableModel, plus `definition`: Grafana's query-variable editor writes it (the query's text)
/// into classic dashboards, although the generated type does not list it.
const VARIABLE: &[Field] = &[
    ("allValue", false, Ty::Str),
    ("allowCustomValue", false, Ty::Bool),
    ("current", false, Ty::Obj),
    ("datasource", false, Ty::Obj),
    ("definition", false, Ty::Str),
    ("description", false, Ty::Str),
    ("enableGroupBy", false, Ty::Bool),
    ("hide", false, Ty::Int),
    ("includeAll", false, Ty::Bool),
    ("label", false, Ty::Str),
    ("multi", false, Ty::Bool),
    ("name", true, Ty::Str),
    ("options", false, Ty::Arr),
    ("query", false, Ty::StrOrObj),
    ("refresh", false, Ty::Int),
    ("regex", false, Ty::Str),
    ("regexApplyTo", false, Ty::Str),
    ("skipUrlSync", false, Ty::Bool),
    ("sort", false, Ty::Int),
    ("staticOptions", false, Ty::Arr),
    ("staticOptionsOrder", false, Ty::Str),
    ("type", true, Ty::Str),
    ("valuesFormat", false, Ty::Str),
];
const VARIABLE_OPTION: &[Field] = &[
    ("properties", false, Ty::Obj),
    ("selected", false, Ty::Bool),
    ("text", true, Ty::StrOrStrs),
    ("value", true, Ty::StrOrStrs),
];
const DATASOURCE_REF: &[Field] = &[("type", false, Ty::Str), ("uid", false, Ty::Str)];
const ROW: &[Field] = &[
    ("collapsed", true, Ty::Bool),
    ("datasource", false, Ty::Obj),
    ("gridPos", false, Ty::Obj),
    ("id", true, Ty::Int),
    ("panels", true, Ty::Arr),
    ("repeat", false, Ty::Str),
    ("title", false, Ty::Str),
    ("type", true, Ty::Str),
];
const PANEL: &[Field] = &[
    ("autoMigrateFrom", false, Ty::Str),
    ("cacheTimeout", false, Ty::Str),
    ("datasource", false, Ty::Obj),
    ("description", false, Ty::Str),
    ("fieldConfig", false, Ty::Obj),
    ("gridPos", false, Ty::Obj),
    ("hideTimeOverride", false, Ty::Bool),
    ("id", false, Ty::Int),
    ("interval", false, Ty::Str),
    ("libraryPanel", false, Ty::Obj),
    ("links", false, Ty::Arr),
    ("maxDataPoints", false, Ty::Num),
    ("maxPerRow", false, Ty::Num),
    ("options", false, Ty::Obj),
    ("pluginVersion", false, Ty::Str),
    ("queryCachingTTL", false, Ty::Num),
    ("repeat", false, Ty::Str),
    ("repeatDirection", false, Ty::Str),
    ("targets", false, Ty::Arr),
    ("timeCompare", false, Ty::Str),
    ("timeFrom", false, Ty::Str),
    ("timeShift", false, Ty::Str),
    ("title", false, Ty::Str),
    ("transformations", false, Ty::Arr),
    ("transparent", false, Ty::Bool),
    ("type", true, Ty::Str),
];
const GRID_POS: &[Field] = &[
    ("h", true, Ty::Int),
    ("static", false, Ty::Bool),
    ("w", true, Ty::Int),
    ("x", true, Ty::Int),
    ("y", true, Ty::Int),
];
const FIELD_CONFIG_SOURCE: &[Field] = &[("defaults", true, Ty::Obj), ("overrides", true, Ty::Arr)];
const OVERRIDE: &[Field] = &[("matcher", true, Ty::Obj), ("properties", true, Ty::Arr)];
const MATCHER: &[Field] =
    &[("id", true, Ty::Str), ("options", false, Ty::Any), ("scope", false, Ty::Str)];
const PROPERTY: &[Field] = &[("id", true, Ty::Str), ("value", false, Ty::Any)];
const FIELD_CONFIG: &[Field] = &[
    ("actions", false, Ty::Arr),
    ("color", false, Ty::Obj),
    ("custom", false, Ty::Obj),
    ("decimals", false, Ty::Num),
    ("description", false, Ty::Str),
    ("displayName", false, Ty::Str),
    ("displayNameFromDS", false, Ty::Str),
    ("filterable", false, Ty::Bool),
    ("links", false, Ty::Arr),
    ("mappings", false, Ty::Arr),
    ("max", false, Ty::Num),
    ("min", false, Ty::Num),
    ("noValue", false, Ty::Str),
    ("path", false, Ty::Str),
    ("thresholds", false, Ty::Obj),
    ("unit", false, Ty::Str),
    ("writeable", false, Ty::Bool),
];
const FIELD_COLOR: &[Field] =
    &[("fixedColor", false, Ty::Str), ("mode", true, Ty::Str), ("seriesBy", false, Ty::Str)];
const THRESHOLDS: &[Field] = &[("mode", true, Ty::Str), ("steps", true, Ty::Arr)];
const THRESHOLD: &[Field] =
    &[("color", true, Ty::Str), ("value", true, Ty::NumOrNull), ("valueExpr", false, Ty::Str)];
const MAPPING: &[Field] = &[("options", true, Ty::Obj), ("type", true, Ty::Str)];
const MAPPING_RESULT: &[Field] = &[
    ("color", false, Ty::Str),
    ("icon", false, Ty::Str),
    ("index", false, Ty::Int),
    ("text", false, Ty::Str),
];
const TRANSFORMATION: &[Field] = &[
    ("disabled", false, Ty::Bool),
    ("filter", false, Ty::Obj),
    ("id", true, Ty::Str),
    ("options", true, Ty::Any),
    ("topic", false, Ty::Str),
];

const VARIABLE_TYPES: [&str; 11] = [
    "query",
    "adhoc",
    "groupby",
    "constant",
    "datasource",
    "interval",
    "textbox",
    "custom",
    "system",
    "snapshot",
    "switch",
];
const FIELD_COLOR_MODES: [&str; 20] = [
    "continuous-BlPu",
    "continuous-BlYlRd",
    "continuous-blues",
    "continuous-cividis",
    "continuous-GrYlRd",
    "continuous-greens",
    "continuous-inferno",
    "continuous-magma",
    "continuous-plasma",
    "continuous-purples",
    "continuous-RdYlGr",
    "continuous-reds",
    "continuous-viridis",
    "continuous-YlBl",
    "continuous-YlRd",
    "fixed",
    "palette-classic",
    "palette-classic-by-name",
    "shades",
    "thresholds",
];

/// The options each panel plugin the dashboards use knows in Grafana 13.2 (`Options` of its
/// panelcfg, with the common interfaces it extends: SingleStatBaseOptions = orientation,
/// reduceOptions, text; OptionsWithLegend, OptionsWithTooltip, OptionsWithTimezones,
/// OptionsWithAnnotations).
fn panel_options(panel_type: &str) -> Option<&'static [&'static str]> {
    Some(match panel_type {
        "stat" => &[
            "colorMode",
            "graphMode",
            "justifyMode",
            "percentChangeColorMode",
            "showPercentChange",
            "textMode",
            "wideLayout",
            "orientation",
            "reduceOptions",
            "text",
        ],
        "bargauge" => &[
            "displayMode",
            "maxVizHeight",
            "minVizHeight",
            "minVizWidth",
            "namePlacement",
            "showUnfilled",
            "sizing",
            "valueMode",
            "legend",
            "orientation",
            "reduceOptions",
            "text",
        ],
        "heatmap" => &[
            "annotations",
            "calculate",
            "calculation",
            "cellGap",
            "cellRadius",
            "cellValues",
            "color",
            "exemplars",
            "filterValues",
            "legend",
            "rowsFrame",
            "selectionMode",
            "showValue",
            "tooltip",
            "yAxis",
        ],
        "state-timeline" => &[
            "alignValue",
            "mergeValues",
            "perPage",
            "rowHeight",
            "showValue",
            "legend",
            "tooltip",
            "timezone",
            "annotations",
        ],
        "timeseries" => &[
            "disableKeyboardEvents",
            "legend",
            "orientation",
            "timeCompare",
            "tooltip",
            "timezone",
            "annotations",
        ],
        "table" => &[
            "cellHeight",
            "disableKeyboardEvents",
            "enablePagination",
            "frameIndex",
            "frozenColumns",
            "maxRowHeight",
            "pageSize",
            "showHeader",
            "showTypeIcons",
            "sortBy",
        ],
        _ => return None,
    })
}

/// Checks `value` against `fields`: an object, every required field present, every field of its
/// type, and no field the schema does not know.
fn check_fields(problems: &mut Vec<String>, at: &str, value: &Value, fields: &[Field]) {
    let Some(object) = value.as_object() else {
        problems.push(format!("{at}: not an object"));
        return;
    };
    for (name, required, ty) in fields {
        match object.get(*name) {
            None if *required => problems.push(format!("{at}: `{name}` is required")),
            Some(v) if !has_type(v, *ty) => {
                problems.push(format!("{at}: `{name}` should be {ty:?}, is {v}"))
            }
            _ => {}
        }
    }
    for key in object.keys() {
        if !fields.iter().any(|(name, _, _)| name == key) {
            problems.push(format!("{at}: `{key}` is not in the dashboard schema"));
        }
    }
}

fn check_enum(problems: &mut Vec<String>, at: &str, value: &Value, allowed: &[&str]) {
    if let Some(v) = value.as_str().filter(|v| !allowed.contains(v)) {
        problems.push(format!("{at}: {v:?} is none of {allowed:?}"));
    }
}

fn check_range(
    problems: &mut Vec<String>,
    at: &str,
    value: &Value,
    range: std::ops::RangeInclusive<i64>,
) {
    if let Some(v) = value.as_i64().filter(|v| !range.contains(v)) {
        problems.push(format!("{at}: {v} is outside {range:?}"));
    }
}

fn check_panel(problems: &mut Vec<String>, d: &Dashboard, panel: &Value) {
    let at = at(d, panel);
    let schema = if is_row(panel) { ROW } else { PANEL };
    check_fields(problems, &at, panel, schema);
    if panel["type"].as_str().is_none_or(str::is_empty) {
        problems.push(format!("{at}: `type` may not be empty"));
    }
    if let Some(ds) = panel.get("datasource") {
        check_fields(problems, &format!("{at} datasource"), ds, DATASOURCE_REF);
    }
    if let Some(pos) = panel.get("gridPos") {
        check_fields(problems, &format!("{at} gridPos"), pos, GRID_POS);
        // kinds/dashboard/dashboard_kind.cue #GridPos: h > 0, 0 < w <= 24, 0 <= x < 24, y >= 0.
        check_range(problems, &format!("{at} gridPos.h"), &pos["h"], 1..=i64::MAX);
        check_range(problems, &format!("{at} gridPos.w"), &pos["w"], 1..=24);
        check_range(problems, &format!("{at} gridPos.x"), &pos["x"], 0..=23);
        check_range(problems, &format!("{at} gridPos.y"), &pos["y"], 0..=i64::MAX);
    }
    if is_row(panel) {
        return;
    }
    if let Some(source) = panel.get("fieldConfig") {
        check_fields(problems, &format!("{at} fieldConfig"), source, FIELD_CONFIG_SOURCE);
        let defaults = &source["defaults"];
        check_fields(problems, &format!("{at} fieldConfig.defaults"), defaults, FIELD_CONFIG);
        if let Some(color) = defaults.get("color") {
            check_fields(problems, &format!("{at} color"), color, FIELD_COLOR);
            check_enum(problems, &format!("{at} color.mode"), &color["mode"], &FIELD_COLOR_MODES);
            check_enum(
                problems,
                &format!("{at} color.seriesBy"),
                &color["seriesBy"],
                &["min", "max", "last"],
            );
        }
        if let Some(thresholds) = defaults.get("thresholds") {
            check_fields(problems, &format!("{at} thresholds"), thresholds, THRESHOLDS);
            check_enum(
                problems,
                &format!("{at} thresholds.mode"),
                &thresholds["mode"],
                &["absolute", "percentage"],
            );
            for step in thresholds["steps"].as_array().into_iter().flatten() {
                check_fields(problems, &format!("{at} threshold step"), step, THRESHOLD);
            }
        }
        for mapping in defaults["mappings"].as_array().into_iter().flatten() {
            check_fields(problems, &format!("{at} mapping"), mapping, MAPPING);
            check_enum(
                problems,
                &format!("{at} mapping.type"),
                &mapping["type"],
                &["value", "range", "regex", "special"],
            );
            if mapping["type"] == "value" {
                for result in mapping["options"].as_object().into_iter().flat_map(|o| o.values()) {
                    check_fields(problems, &format!("{at} mapping result"), result, MAPPING_RESULT);
                }
            }
        }
        for o in source["overrides"].as_array().into_iter().flatten() {
            check_fields(problems, &format!("{at} override"), o, OVERRIDE);
            check_fields(problems, &format!("{at} override matcher"), &o["matcher"], MATCHER);
            for property in o["properties"].as_array().into_iter().flatten() {
                check_fields(problems, &format!("{at} override property"), property, PROPERTY);
                // v42: what is hidden from the viz is hidden from the tooltip too.
                if property["id"] == "custom.hideFrom"
                    && property["value"]["viz"] == true
                    && property["value"]["tooltip"] != true
                {
                    problems.push(format!("{at}: hideFrom.viz without hideFrom.tooltip (v42)"));
                }
            }
        }
    }
    for t in panel["transformations"].as_array().into_iter().flatten() {
        check_fields(problems, &format!("{at} transformation"), t, TRANSFORMATION);
        // The backend's v43 rewrites formatTime as convertFieldType: use that directly.
        if t["id"] == "formatTime" {
            problems.push(format!("{at}: formatTime is replaced by convertFieldType"));
        }
    }
    for t in targets(panel) {
        if !t.is_object() {
            problems.push(format!("{at}: a target that is not an object"));
        }
    }
    let panel_type = panel["type"].as_str().unwrap_or_default();
    match panel_options(panel_type) {
        None => problems.push(format!(
            "{at}: no option list for panel type {panel_type:?}: add it from @grafana/schema"
        )),
        Some(known) => {
            for key in panel["options"].as_object().into_iter().flat_map(|o| o.keys()) {
                if !known.contains(&key.as_str()) {
                    problems.push(format!(
                        "{at}: option `{key}` is not an option of {panel_type} in Grafana 13"
                    ));
                }
            }
        }
    }
}

#[test]
fn dashboards_match_the_grafana_13_dashboard_schema() {
    let mut problems = Vec::new();
    for d in load_all() {
        let name = d.name();
        let json = &d.json;
        check_fields(&mut problems, &name, json, DASHBOARD);
        if json["schemaVersion"].as_u64() != Some(SCHEMA_VERSION) {
            problems.push(format!(
                "{name}: schemaVersion {} is not Grafana 13's {SCHEMA_VERSION}",
                json["schemaVersion"]
            ));
        }
        check_range(&mut problems, &format!("{name} graphTooltip"), &json["graphTooltip"], 0..=2);
        check_range(
            &mut problems,
            &format!("{name} fiscalYearStartMonth"),
            &json["fiscalYearStartMonth"],
            0..=11,
        );
        if json["tags"].as_array().is_some_and(|t| !t.iter().all(Value::is_string)) {
            problems.push(format!("{name}: tags must be strings"));
        }
        if let Some(time) = json.get("time") {
            check_fields(&mut problems, &format!("{name} time"), time, TIME_RANGE);
        }
        // v41: timepicker.time_options is gone (TimePickerConfig knows no such field).
        if let Some(timepicker) = json.get("timepicker") {
            check_fields(&mut problems, &format!("{name} timepicker"), timepicker, TIMEPICKER);
        }
        for a in json["annotations"]["list"].as_array().into_iter().flatten() {
            check_fields(&mut problems, &format!("{name} annotation"), a, ANNOTATION);
            check_fields(
                &mut problems,
                &format!("{name} annotation datasource"),
                &a["datasource"],
                DATASOURCE_REF,
            );
        }
        for link in json["links"].as_array().into_iter().flatten() {
            check_fields(&mut problems, &format!("{name} link"), link, LINK);
            check_enum(
                &mut problems,
                &format!("{name} link type"),
                &link["type"],
                &["link", "dashboards"],
            );
        }
        for v in json["templating"]["list"].as_array().into_iter().flatten() {
            let at = format!("{name} variable {}", v["name"]);
            check_fields(&mut problems, &at, v, VARIABLE);
            check_enum(&mut problems, &format!("{at} type"), &v["type"], &VARIABLE_TYPES);
            check_range(&mut problems, &format!("{at} hide"), &v["hide"], 0..=3);
            check_range(&mut problems, &format!("{at} refresh"), &v["refresh"], 0..=2);
            check_range(&mut problems, &format!("{at} sort"), &v["sort"], 0..=8);
            if let Some(current) = v.get("current") {
                check_fields(&mut problems, &format!("{at} current"), current, VARIABLE_OPTION);
            }
            for option in v["options"].as_array().into_iter().flatten() {
                check_fields(&mut problems, &format!("{at} option"), option, VARIABLE_OPTION);
            }
            if let Some(ds) = v.get("datasource") {
                check_fields(&mut problems, &format!("{at} datasource"), ds, DATASOURCE_REF);
            }
        }
        for panel in d.panels() {
            check_panel(&mut problems, &d, panel);
        }
    }
    report(problems);
}

// ------------------------------------------------------------------------------------------------
// Data source, variables, provisioning

#[test]
fn templating_has_the_datasource_job_and_instance_variables() {
    let mut problems = Vec::new();
    for d in load_all() {
        let name = d.name();
        match d.variable("datasource") {
            Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {
                if v["current"]["value"] != PROVISIONED_DATASOURCE_UID {
                    problems.push(format!(
                        "{name}: `datasource` should default to uid {PROVISIONED_DATASOURCE_UID}"
                    ));
                }
            }
            _ => problems.push(format!("{name}: no `datasource` variable of type datasource")),
        }
        for (var, query) in [
            ("job", "label_values(target_info, job)"),
            ("instance", "label_values(target_info{job=~\"$job\"}, instance)"),
        ] {
            let Some(v) = d.variable(var) else {
                problems.push(format!("{name}: no `{var}` variable"));
                continue;
            };
            let text = v["query"].as_str().or_else(|| v["query"]["query"].as_str());
            if v["type"] != "query" || text != Some(query) {
                problems.push(format!("{name}: `{var}` should be a query variable: {query}"));
            }
            if v["multi"] != true || v["includeAll"] != true || v["allValue"] != ".*" {
                problems.push(format!("{name}: `{var}` must be multi, include All (as .*)"));
            }
            if v["datasource"]["uid"] != "${datasource}" {
                problems.push(format!("{name}: `{var}` must query ${{datasource}}"));
            }
        }
    }
    report(problems);
}

#[test]
fn every_panel_and_query_uses_the_provisioned_datasource() {
    let mut problems = Vec::new();
    for d in load_all() {
        let variable_ok = d
            .variable("datasource")
            .is_some_and(|v| v["type"] == "datasource" && v["query"] == "prometheus");
        let allowed = |ds: &Value| {
            ds["type"] == "prometheus"
                && (ds["uid"] == PROVISIONED_DATASOURCE_UID
                    || (ds["uid"] == "${datasource}" && variable_ok))
        };
        for panel in d.visible_panels() {
            if !allowed(&panel["datasource"]) {
                problems.push(format!("{}: datasource {}", at(&d, panel), panel["datasource"]));
            }
            for target in targets(panel) {
                let ds = &target["datasource"];
                if !ds.is_null() && (!allowed(ds) || *ds != panel["datasource"]) {
                    problems.push(format!("{}: target datasource {ds}", at(&d, panel)));
                }
            }
        }
    }
    report(problems);
}

#[test]
fn provisioning_declares_the_datasources_and_the_dashboard_folders() {
    let datasources = provisioning_yaml("datasources/datasources.yaml");
    let list = datasources["datasources"].as_sequence().expect("a `datasources` list");
    let prometheus: Vec<_> = list.iter().filter(|d| d["type"] == "prometheus").collect();
    assert_eq!(prometheus.len(), 1, "exactly one Prometheus data source");
    let prometheus = prometheus[0];
    assert_eq!(prometheus["uid"].as_str(), Some(PROVISIONED_DATASOURCE_UID));
    assert_eq!(prometheus["isDefault"].as_bool(), Some(true));
    // Prometheus or Thanos Query, by the variant of the stack: tests/compose.rs and
    // tests/compose_ha.rs check what each sets it to.
    assert_eq!(prometheus["url"].as_str(), Some("${PROMETHEUS_QUERY_URL}"));
    assert_eq!(prometheus["jsonData"]["timeInterval"].as_str(), Some("15s"));
    let alertmanager = list.iter().find(|d| d["type"] == "alertmanager").expect("Alertmanager");
    assert_eq!(alertmanager["uid"].as_str(), Some("alertmanager"));
    assert_eq!(alertmanager["jsonData"]["implementation"].as_str(), Some("prometheus"));

    // Every dashboard panel names the uid provisioned here (directly or through the variable).
    for d in load_all() {
        for panel in d.visible_panels() {
            let uid = panel["datasource"]["uid"].as_str().unwrap_or_default();
            let resolved = if uid == "${datasource}" {
                d.variable("datasource").and_then(|v| v["current"]["value"].as_str())
            } else {
                Some(uid)
            };
            assert_eq!(resolved, prometheus["uid"].as_str(), "{}", at(&d, panel));
        }
    }

    let providers = provisioning_yaml("dashboards/dashboards.yaml");
    let providers = providers["providers"].as_sequence().expect("a `providers` list");
    assert_eq!(providers.len(), 1);
    let provider = &providers[0];
    assert_eq!(provider["type"].as_str(), Some("file"));
    assert_eq!(provider["options"]["path"].as_str(), Some("/var/lib/grafana/dashboards"));
    assert_eq!(provider["options"]["foldersFromFilesStructure"].as_bool(), Some(true));
    assert!(provider["folder"].is_null(), "`folder` conflicts with foldersFromFilesStructure");
}

#[test]
fn dashboards_carry_the_tag_and_link_to_each_other() {
    let dashboards = load_all();
    let uids: Vec<&str> = dashboards.iter().map(Dashboard::uid).collect();
    let mut problems = Vec::new();
    for d in &dashboards {
        let tags: Vec<&str> =
            d.json["tags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if !tags.contains(&TAG) {
            problems.push(format!("{}: no tag {TAG}", d.name()));
        }
        let links: Vec<&Value> = d.json["links"].as_array().into_iter().flatten().collect();
        let by_tag = links.iter().any(|l| {
            l["type"] == "dashboards"
                && l["tags"].as_array().is_some_and(|t| t.iter().any(|t| t == TAG))
        });
        for uid in uids.iter().filter(|u| **u != d.uid()) {
            let explicit = links
                .iter()
                .any(|l| l["url"].as_str().is_some_and(|u| u.contains(&format!("/d/{uid}"))));
            if !by_tag && !explicit {
                problems.push(format!("{}: no link to {uid}", d.name()));
            }
        }
    }
    report(problems);
}

// ------------------------------------------------------------------------------------------------
// Panels

#[test]
fn every_panel_has_a_description_a_unit_and_thresholds() {
    let mut problems = Vec::new();
    for d in load_all() {
        for panel in d.visible_panels() {
            if panel["description"].as_str().is_none_or(|s| s.trim().is_empty()) {
                problems.push(format!("{}: no description", at(&d, panel)));
            }
            let defaults = &panel["fieldConfig"]["defaults"];
            if defaults["unit"].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{}: no fieldConfig.defaults.unit", at(&d, panel)));
            }
            let steps = defaults["thresholds"]["steps"].as_array();
            let base_ok = steps.and_then(|s| s.first()).is_some_and(|s| s["value"].is_null());
            if !base_ok {
                problems.push(format!("{}: thresholds need a base step", at(&d, panel)));
            }
            let values: Vec<f64> = steps
                .into_iter()
                .flatten()
                .skip(1)
                .map(|s| s["value"].as_f64().unwrap_or(f64::NAN))
                .collect();
            if values.iter().any(|v| v.is_nan()) || values.windows(2).any(|w| w[0] >= w[1]) {
                problems.push(format!("{}: threshold values must ascend", at(&d, panel)));
            }
        }
    }
    report(problems);
}

#[test]
fn every_panel_has_queries_with_an_expr() {
    let mut problems = Vec::new();
    for d in load_all() {
        for panel in d.visible_panels() {
            let targets = targets(panel);
            if targets.is_empty() {
                problems.push(format!("{}: no targets", at(&d, panel)));
            }
            let mut ref_ids = HashSet::new();
            for target in targets {
                if expr(target).trim().is_empty() {
                    problems.push(format!("{}: a target without expr", at(&d, panel)));
                }
                if !target["refId"].as_str().is_some_and(|r| ref_ids.insert(r)) {
                    problems.push(format!("{}: missing or repeated refId", at(&d, panel)));
                }
            }
        }
    }
    report(problems);
}

#[test]
fn heatmaps_show_histogram_buckets() {
    let mut problems = Vec::new();
    let mut heatmaps = 0;
    for d in load_all() {
        for panel in d.visible_panels().into_iter().filter(|p| p["type"] == "heatmap") {
            heatmaps += 1;
            if panel["options"]["calculate"] != false {
                problems.push(format!("{}: buckets come from Prometheus", at(&d, panel)));
            }
            for target in targets(panel) {
                let parsed = parse(expr(target));
                let buckets = parsed.selectors.iter().all(|s| s.metric.ends_with("_bucket"));
                let by_le = parsed.grouping.iter().any(|l| l == "le");
                if target["format"] != "heatmap" || !buckets || !by_le {
                    problems.push(format!(
                        "{}: needs format heatmap and a sum by (le) of _bucket",
                        at(&d, panel)
                    ));
                }
            }
        }
    }
    assert!(heatmaps >= 2, "the API and worker dashboards each need a heatmap");
    report(problems);
}

// ------------------------------------------------------------------------------------------------
// Queries

#[test]
fn queries_reference_only_contract_series_and_recording_rules() {
    let contract = dashboards::contract();
    let rules = recorded_series();
    let collector = collector_series();
    let dashboards = load_all();
    let mut problems = Vec::new();
    for (d, panel, target) in all_targets(&dashboards) {
        let parsed = parse(expr(target));
        let mut labels: BTreeSet<String> = BTreeSet::new();
        let mut alerts = false;
        for s in &parsed.selectors {
            let allowed: BTreeSet<String> = if s.metric == ALERTS {
                alerts = true;
                BTreeSet::new()
            } else if let Some(l) = collector.get(s.metric.as_str()) {
                l.iter().map(|l| l.to_string()).collect()
            } else if let Some(l) = contract.get(&s.metric) {
                l.clone()
            } else if let Some(l) = rules.get(&s.metric) {
                match l {
                    Ok(l) => l.clone(),
                    Err(why) => {
                        problems.push(format!(
                            "{}: the labels of the recording rule {} are unknown: {why}",
                            at(d, panel),
                            s.metric
                        ));
                        continue;
                    }
                }
            } else {
                problems.push(format!(
                    "{}: {} is not in the contract nor recorded in {}",
                    at(d, panel),
                    s.metric,
                    dashboards::recording_rules_file().display()
                ));
                continue;
            };
            if s.metric != ALERTS {
                for (label, _, _) in &s.matchers {
                    if !allowed.contains(label) {
                        problems.push(format!(
                            "{}: {} has no label {label}",
                            at(d, panel),
                            s.metric
                        ));
                    }
                }
            }
            labels.extend(allowed);
        }
        if parsed.selectors.is_empty() {
            problems.push(format!("{}: {} selects no series", at(d, panel), expr(target)));
        }
        // Grouping and legend labels must exist on the series the query reads.
        let legend = target["legendFormat"].as_str().unwrap_or_default();
        for label in parsed.grouping.iter().cloned().chain(legend_labels(legend)) {
            if !alerts && !labels.contains(&label) {
                problems.push(format!("{}: label {label} is on none of its series", at(d, panel)));
            }
        }
    }
    report(problems);
}

#[test]
fn raw_series_are_filtered_by_job_and_instance_and_rules_by_job() {
    let contract = dashboards::contract();
    let rules = recorded_series();
    let dashboards = load_all();
    let mut problems = Vec::new();
    let job = ("job", "=~", "$job");
    let instance = ("instance", "=~", "$instance");
    for (d, panel, target) in all_targets(&dashboards) {
        for s in parse(expr(target)).selectors {
            let ok = if contract.contains_key(&s.metric) {
                s.has(job) && s.has(instance)
            } else if rules.contains_key(&s.metric) {
                s.has(job) && !s.matchers.iter().any(|(l, _, _)| l == "instance")
            } else {
                true
            };
            if !ok {
                problems.push(format!(
                    "{}: {} needs job=~\"$job\"{}",
                    at(d, panel),
                    s.metric,
                    if contract.contains_key(&s.metric) { ", instance=~\"$instance\"" } else { "" }
                ));
            }
        }
    }
    report(problems);
}

#[test]
fn http_queries_exclude_health_checks() {
    let contract = dashboards::contract();
    let rules = recorded_series();
    let dashboards = load_all();
    let mut problems = Vec::new();
    for (d, panel, target) in all_targets(&dashboards) {
        for s in parse(expr(target)).selectors {
            let has_route = contract.get(&s.metric).is_some_and(|l| l.contains("http_route"))
                || rules
                    .get(&s.metric)
                    .is_some_and(|l| l.as_ref().is_ok_and(|l| l.contains("http_route")));
            if has_route && !s.has(NO_HEALTH) {
                problems.push(format!(
                    "{}: {} needs http_route!~\"/health/.*\"",
                    at(d, panel),
                    s.metric
                ));
            }
        }
    }
    report(problems);
}

#[test]
fn rates_on_raw_series_use_the_rate_interval() {
    let dashboards = load_all();
    let mut problems = Vec::new();
    for (d, panel, target) in all_targets(&dashboards) {
        // State queries use a fixed window instead: state_queries_use_a_fixed_window.
        let parsed = parse(expr(target));
        let state = is_state_query(&parsed.tree);
        for s in parsed.selectors {
            // A recording rule is already a rate over a fixed window: its name says which.
            let recording_rule = s.metric.contains(':');
            match &s.range {
                Some(range) if !recording_rule && !state && range != "$__rate_interval" => {
                    problems.push(format!(
                        "{}: {}[{range}] should be [$__rate_interval]",
                        at(d, panel),
                        s.metric
                    ));
                }
                _ => {}
            }
            if !s.braces() {
                problems.push(format!("{}: {} without a label filter", at(d, panel), s.metric));
            }
        }
    }
    report(problems);
}

#[test]
fn state_queries_use_a_fixed_window() {
    let dashboards = load_all();
    let mut problems = Vec::new();
    let mut states = 0;
    for (d, panel, target) in all_targets(&dashboards) {
        let parsed = parse(expr(target));
        if !is_state_query(&parsed.tree) {
            continue;
        }
        states += 1;
        for s in parsed.selectors {
            match &s.range {
                Some(range) if range != STATE_WINDOW => problems.push(format!(
                    "{}: state query reads {}[{range}]: use the fixed [{STATE_WINDOW}], not a \
                     window that follows the zoom",
                    at(d, panel),
                    s.metric
                )),
                _ => {}
            }
        }
    }
    // "Service up" on the overview is one: the check must not pass for want of state queries.
    assert!(states >= 1, "no state query found (is_state_query broke?)");
    report(problems);
}

#[test]
fn divisions_never_divide_by_an_unguarded_rate_or_sum() {
    let dashboards = load_all();
    let mut problems = Vec::new();
    let mut divisions = 0;
    for (d, panel, target) in all_targets(&dashboards) {
        let parsed = parse(expr(target));
        for denominator in denominators(&parsed.tree) {
            divisions += 1;
            if !is_guarded_denominator(denominator) {
                problems.push(format!(
                    "{}: divides by `{}`, which is 0 without traffic (0/0 = NaN): divide by \
                     `(... > 0)` (and add `or <denominator> * 0` to show 0), or by \
                     clamp_min(..., c > 0)",
                    at(d, panel),
                    denominator
                ));
            }
        }
    }
    // The SLO panels read recorded burn rates and budgets: no division of their own.
    assert!(divisions >= 8, "only {divisions} divisions found (denominators() broke?)");
    report(problems);
}

#[test]
fn recorded_ratios_are_read_without_their_nan() {
    let dashboards = load_all();
    let mut problems = Vec::new();
    let mut ratios = 0;
    for (d, panel, target) in all_targets(&dashboards) {
        let parsed = parse(expr(target));
        ratios += parsed.selectors.iter().filter(|s| is_recorded_ratio(&s.metric)).count();
        for rule in unfiltered_recorded_ratios(&parsed.tree) {
            problems.push(format!(
                "{}: {rule} is NaN while its denominator is 0 (no traffic in its window): read it \
                 as `({rule}{{...}} >= 0)`",
                at(d, panel)
            ));
        }
    }
    assert!(ratios >= 10, "only {ratios} recorded ratios found");
    report(problems);
}

#[test]
fn alert_tables_select_alerts_by_service_not_by_name() {
    // Every alert carries `service` (api | worker | collector | ...); alerts about a pool,
    // breaker, cache or queue carry the service of the job they are about (alerts.yaml). A
    // filter on alert names misses those, and every alert added later.
    let own_service = BTreeMap::from([("orgraph-api", "api"), ("orgraph-worker", "worker")]);
    let dashboards = load_all();
    let mut problems = Vec::new();
    let mut tables = 0;
    for (d, panel, target) in all_targets(&dashboards) {
        for s in parse(expr(target)).selectors.iter().filter(|s| s.metric == ALERTS) {
            if panel["type"] == "table" {
                tables += 1;
            }
            if !s.has(("alertstate", "=", "firing")) {
                problems.push(format!("{}: ALERTS needs alertstate=\"firing\"", at(d, panel)));
            }
            let by_service = s.matchers.iter().any(|(l, _, _)| l == "service");
            if s.matchers.iter().any(|(l, _, _)| l == "alertname") && !by_service {
                problems.push(format!(
                    "{}: ALERTS filtered by alertname alone: filter by service",
                    at(d, panel)
                ));
            }
            if let Some(service) = own_service.get(d.uid())
                && !s.has(("service", "=", service))
            {
                problems.push(format!(
                    "{}: the {} dashboard's alerts are those with service=\"{service}\"",
                    at(d, panel),
                    d.title()
                ));
            }
        }
    }
    assert!(tables >= 4, "only {tables} alert tables");
    report(problems);
}

#[test]
fn collector_series_come_from_the_collectors_scrape_job() {
    let collector = collector_series();
    let dashboards = load_all();
    let mut problems = Vec::new();
    for (d, panel, target) in all_targets(&dashboards) {
        let parsed = parse(expr(target));
        for s in &parsed.selectors {
            if !collector.contains_key(s.metric.as_str()) {
                continue;
            }
            // The job/instance variables select services (from target_info): not the collector.
            if s.matchers.iter().any(|(_, _, v)| v.contains('$')) {
                problems.push(format!("{}: {} filtered by a variable", at(d, panel), s.metric));
            }
            let job_ok = if s.metric == "up" {
                s.matchers.iter().any(|(l, op, v)| {
                    l == "job"
                        && (op == "=" || op == "=~")
                        && v.split('|').all(|job| job.starts_with(COLLECTOR_JOB))
                })
            } else {
                s.has(("job", "=", COLLECTOR_JOB))
            };
            if !job_ok {
                problems.push(format!(
                    "{}: {} needs job=\"{COLLECTOR_JOB}\" (the collector's own telemetry)",
                    at(d, panel),
                    s.metric
                ));
            }
        }
        // Counters created by their first increment: fall back to 0, keeping the labels.
        let operands = top_level_or_operands(&parsed.tree);
        let lazy = |part: &Expr| {
            selectors(part).iter().any(|s| LAZY_COLLECTOR_COUNTERS.contains(&s.metric.as_str()))
        };
        if lazy(&parsed.tree) {
            let fallback = operands.last().copied().unwrap_or(&parsed.tree);
            let times_zero = matches!(fallback, Expr::Binary(b)
                if b.op.to_string() == "*" && number(&b.rhs) == Some(0.0));
            let vector = descendants(fallback)
                .into_iter()
                .any(|e| matches!(e, Expr::Call(call) if call.func.name == "vector"));
            let zero = times_zero && !vector;
            if operands.len() < 2 || !zero || lazy(fallback) {
                problems.push(format!(
                    "{}: a counter that may not exist yet needs `or <existing series with the same \
                     labels> * 0`, so the panel shows 0 rather than \"No data\"",
                    at(d, panel)
                ));
            }
        }
    }
    report(problems);
}

#[test]
fn the_infrastructure_dashboard_has_a_collector_row() {
    let dashboards = load_all();
    let d =
        dashboards.iter().find(|d| d.uid() == "orgraph-infrastructure").expect("infrastructure");
    let top: Vec<&Value> = d.json["panels"].as_array().into_iter().flatten().collect();
    let row = top
        .iter()
        .position(|p| is_row(p) && title(p).contains("Collector"))
        .expect("a row titled Collector on the Infrastructure dashboard");
    // The panels between that row and the next.
    let panels: Vec<&Value> = top[row + 1..].iter().take_while(|p| !is_row(p)).copied().collect();
    let read: BTreeSet<String> = panels
        .iter()
        .flat_map(|p| targets(p))
        .flat_map(|t| parse(expr(t)).selectors)
        .map(|s| s.metric)
        .collect();
    let missing: Vec<&str> =
        COLLECTOR_ROW_SERIES.iter().copied().filter(|m| !read.contains(*m)).collect();
    assert!(missing.is_empty(), "the collector row does not show {missing:?}");
    // Memory against the memory limiter: the panel's thresholds are its limits.
    let memory = panels
        .iter()
        .find(|p| targets(p).iter().any(|t| expr(t).contains("otelcol_process_memory_rss")))
        .expect("a memory panel");
    // The lines sit at the limiter's limits of collector-config.yaml (the defaults of its
    // `${env:NAME:-default}` values, which compose sets alike): soft = limit - spike, hard = limit.
    let config = dashboards::repo_root().join("collector-config.yaml");
    let config: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(&config).expect("collector-config.yaml"))
            .expect("collector-config.yaml is YAML");
    let limiter = &config["processors"]["memory_limiter"];
    let mib = |key: &str| -> f64 {
        let text = match &limiter[key] {
            serde_norway::Value::Number(n) => n.to_string(),
            serde_norway::Value::String(s) => s.clone(),
            other => panic!("memory_limiter.{key}: {other:?}"),
        };
        let default = text.rsplit(":-").next().unwrap_or(&text).trim_end_matches('}');
        default.parse::<f64>().unwrap_or_else(|_| panic!("memory_limiter.{key}: {text}"))
            * 1024.0
            * 1024.0
    };
    let (hard, soft) = (mib("limit_mib"), mib("limit_mib") - mib("spike_limit_mib"));
    let values: Vec<f64> = memory["fieldConfig"]["defaults"]["thresholds"]["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["value"].as_f64())
        .collect();
    assert_eq!(
        values,
        [soft, hard],
        "the memory panel's lines are the limiter's soft and hard limits"
    );
    assert_eq!(memory["fieldConfig"]["defaults"]["unit"], "bytes");
}

/// The rows of the platform under the services, in this order after the collector row, and the
/// series families of the job each one shows (`otel::catalogue::infrastructure`).
const PLATFORM_ROWS: [(&str, &str); 3] =
    [("Postgres", "orgraph/postgres"), ("Redis", "orgraph/redis"), ("Host", "orgraph/host")];

#[test]
fn the_infrastructure_dashboard_shows_the_platform_under_the_services() {
    use otel::catalogue::infrastructure::{self, Source};
    let dashboards = load_all();
    let d =
        dashboards.iter().find(|d| d.uid() == "orgraph-infrastructure").expect("infrastructure");
    let top: Vec<&Value> = d.json["panels"].as_array().into_iter().flatten().collect();
    let rows: Vec<(usize, &str)> =
        top.iter().enumerate().filter(|(_, p)| is_row(p)).map(|(i, p)| (i, title(p))).collect();
    let after_collector: Vec<&str> = rows
        .iter()
        .skip_while(|(_, t)| !t.contains("Collector"))
        .skip(1)
        .take(PLATFORM_ROWS.len())
        .map(|(_, t)| *t)
        .collect();
    let expected: Vec<&str> = PLATFORM_ROWS.iter().map(|(row, _)| *row).collect();
    let starts: Vec<bool> =
        after_collector.iter().zip(&expected).map(|(t, e)| t.starts_with(e)).collect();
    assert!(
        starts.len() == expected.len() && starts.iter().all(|s| *s),
        "the rows after the collector row are {after_collector:?}, expected {expected:?}"
    );
    // What a recording rule reads, by name: a panel reading the rule reads those series too.
    let rules: BTreeMap<String, Vec<String>> = dashboards::recording_rules()
        .into_iter()
        .map(|rule| {
            (rule.name, parse(&rule.expr).selectors.into_iter().map(|s| s.metric).collect())
        })
        .collect();
    let mut problems = Vec::new();
    for (row, job) in PLATFORM_ROWS {
        let (start, _) = rows.iter().find(|(_, t)| t.starts_with(row)).expect("the row");
        let panels: Vec<&Value> =
            top[start + 1..].iter().take_while(|p| !is_row(p)).copied().collect();
        let mut read = BTreeSet::new();
        for target in panels.iter().flat_map(|p| targets(p)) {
            for s in parse(expr(target)).selectors {
                read.extend(rules.get(&s.metric).cloned().unwrap_or_default());
                read.insert(s.metric);
            }
        }
        // The collector keeps only what a panel or a rule reads (collector-config.yaml): each
        // family of the job is shown. The receiver's `up` is the PostgresUnreachable alert's.
        for metric in infrastructure::metrics_of(job) {
            if !matches!(metric.source, Source::Scrape(_)) && !read.contains(metric.family) {
                problems.push(format!("the {row} row does not show {}", metric.family));
            }
        }
    }
    report(problems);
}

#[test]
fn substituted_queries_have_no_variables_left() {
    let queries = dashboards::queries();
    assert!(queries.len() > 50, "only {} queries", queries.len());
    let left: Vec<String> = queries
        .iter()
        .filter(|(_, _, expr)| expr.contains('$'))
        .map(|(d, p, e)| format!("{d} / {p}: {e}"))
        .collect();
    report(left);
}

#[test]
fn every_query_parses_with_promtool() {
    let promtool = testkit::tools::require(
        &testkit::tools::promtool_path().expect("the tool cache"),
        "promtool",
    )
    .expect("promtool");
    let queries = dashboards::queries();
    // Each query becomes a recording rule: `promtool check rules` parses every expression.
    let rules: Vec<serde_norway::Value> = queries
        .iter()
        .enumerate()
        .map(|(n, (_, _, expr))| {
            let mut rule = serde_norway::Mapping::new();
            rule.insert("record".into(), format!("dashboard:query_{n}").into());
            rule.insert("expr".into(), expr.clone().into());
            rule.into()
        })
        .collect();
    let mut group = serde_norway::Mapping::new();
    group.insert("name".into(), "dashboards".into());
    group.insert("rules".into(), rules.into());
    let mut file = serde_norway::Mapping::new();
    file.insert("groups".into(), vec![serde_norway::Value::from(group)].into());
    let yaml = serde_norway::to_string(&file).expect("YAML");

    let dir = std::env::temp_dir().join(format!("xtask-dashboards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let path = dir.join("dashboard-queries.yaml");
    std::fs::write(&path, yaml).expect("writing the rules file");
    let mut command = std::process::Command::new(promtool);
    command.arg("check").arg("rules").arg(&path);
    let result =
        testkit::process::output("promtool check rules", &mut command, Duration::from_secs(60));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        // promtool names the failing rules `dashboard:query_<n>`: say which panels they are.
        let message = format!("{e:#}");
        let failing: BTreeSet<usize> = message
            .split("dashboard:query_")
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .collect();
        let listing: Vec<String> = failing
            .iter()
            .filter_map(|&n| queries.get(n).map(|(d, p, e)| format!("query_{n}: {d} / {p}: {e}")))
            .collect();
        panic!("{message}\n{}", listing.join("\n"));
    }
}

// ------------------------------------------------------------------------------------------------
// The reader itself

#[test]
fn every_query_parses_with_prometheus_grammar() {
    let dashboards = load_all();
    let problems: Vec<String> = all_targets(&dashboards)
        .into_iter()
        .filter_map(|(d, panel, target)| {
            syntax(expr(target)).err().map(|e| format!("{}: {e}", at(d, panel)))
        })
        .collect();
    report(problems);
}

/// `expr` as the syntax tree prints it, for comparing parts of queries.
fn canonical(expr: &str) -> String {
    parse(expr).tree.to_string()
}

#[test]
fn the_promql_reader_finds_selectors_ranges_and_grouping_labels() {
    let parsed = parse(
        r#"histogram_quantile(0.95, sum by (job, le) (rate(a_bucket{job=~"$job", x!~"/h/.*"}[$__rate_interval])))
           / on (job) group_left b:rule:rate5m{job=~"$job"} or vector(0) * rate(c[5m]) unless d{y="a,}b"}"#,
    );
    let names: Vec<&str> = parsed.selectors.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(names, ["a_bucket", "b:rule:rate5m", "c", "d"]);
    assert_eq!(parsed.selectors[0].range.as_deref(), Some("$__rate_interval"));
    assert!(parsed.selectors[0].has(("x", "!~", "/h/.*")));
    assert!(parsed.selectors[0].has(("job", "=~", "$job")));
    assert_eq!(parsed.selectors[2].range.as_deref(), Some("5m"));
    assert!(!parsed.selectors[2].braces());
    assert!(parsed.selectors[3].has(("y", "=", "a,}b")));
    assert_eq!(parsed.grouping, ["job", "le", "job"]);
    assert_eq!(
        parse("rate(u[${__rate_interval}])").selectors[0].range.as_deref(),
        Some("$__rate_interval")
    );
    assert!(syntax("rate(u[7h7m7s7ms])").is_err(), "a query may not write a stand-in");
    assert!(syntax("rate(u[$__range])").is_err(), "a variable without a stand-in does not parse");
    assert_eq!(legend_labels("{{job}} {{ cache_layer }}/x"), ["job", "cache_layer"]);
}

#[test]
fn the_promql_reader_finds_denominators_and_their_guards() {
    let texts = |expr: &str| -> Vec<String> {
        denominators(&parse(expr).tree).iter().map(|d| d.to_string()).collect()
    };
    let expr = concat!(
        r#"sum by (r) (rate(a{x="/a/b"}[1m])) / (sum by (r) (rate(b[1m])) > 0)"#,
        " or sum by (r) (rate(b[1m])) * 0"
    );
    assert_eq!(texts(expr), [canonical("(sum by (r) (rate(b[1m])) > 0)")]);
    assert_eq!(
        texts("x / on (job) group_left (y) sum without (i) (rate(c[1m])) * 2"),
        [canonical("sum without (i) (rate(c[1m]))")]
    );
    assert_eq!(
        texts("x / sum(rate(c[1m])) by (job) / 1e-3"),
        [canonical("sum(rate(c[1m])) by (job)"), canonical("1e-3")]
    );
    assert_eq!(
        texts(r#"x / b:rule:rate5m{job=~"$job"} offset 5m or y"#),
        [canonical(r#"b:rule:rate5m{job=~"$job"} offset 5m"#)]
    );
    for guarded in
        ["(s > 0)", "( s >= 1 )", "clamp_min(sum(rate(c[1m])), 1e-9)", "0.001", "(a / (b > 0) > 0)"]
    {
        assert!(is_guarded_denominator(&parse(guarded).tree), "{guarded}");
    }
    for unguarded in [
        "sum(rate(c[1m]))",
        "rate(c[1m])",
        "c",
        "(s)",
        "(s > bool 0)",
        "(s >= 0)",
        "(a or s > 0)",
        "(s > 0 or t)",
        "clamp_min(s, 0)",
        "0",
        "(s > 0) * 2",
    ] {
        assert!(!is_guarded_denominator(&parse(unguarded).tree), "{unguarded}");
    }
}

#[test]
fn the_promql_reader_finds_unfiltered_ratios_states_and_fallbacks() {
    let unfiltered = |expr: &str| unfiltered_recorded_ratios(&parse(expr).tree);
    assert!(unfiltered(r#"(a:b:ratio_rate5m{job=~"$job"} >= 0) / 0.001"#).is_empty());
    assert!(unfiltered("1 - ( a:b:ratio_rate5m >= 0 )").is_empty());
    assert_eq!(unfiltered(r#"a:b:ratio_rate5m{job=~"$job"} / 0.001"#), ["a:b:ratio_rate5m"]);
    assert_eq!(unfiltered("(a:b:ratio_rate5m >= 0 / 2)"), ["a:b:ratio_rate5m"]);
    assert_eq!(unfiltered("(a:b:ratio_rate5m > 0.5)"), ["a:b:ratio_rate5m"]);
    assert!(unfiltered("limit_ratio(0.5, a:b:rate5m)").is_empty());

    let state = |expr: &str| is_state_query(&parse(expr).tree);
    assert!(state("max by (job) (changes(u[2m]) > bool 0)"));
    assert!(state("absent(u)"));
    assert!(!state(r#"sum(rate(u{changes="bool"}[1m]))"#));
    assert!(!state("max(changes_total)"));

    let parsed = parse(r#"sum(a or b) or c{x="or"} * or_x"#);
    let operands: Vec<String> =
        top_level_or_operands(&parsed.tree).iter().map(|o| o.to_string()).collect();
    assert_eq!(operands, [canonical("sum(a or b)"), canonical(r#"c{x="or"} * or_x"#)]);
}

#[test]
fn the_labels_of_a_recorded_series_follow_its_expression() {
    let series = |name: &str| -> Result<BTreeSet<String>, String> {
        let labels: &[&str] = match name {
            "h_bucket" => &["job", "instance", "route", "le"],
            "c_total" => &["job", "instance", "route", "status"],
            "j:c:rate5m" => &["job"],
            _ => return Err(format!("{name} is unknown")),
        };
        Ok(labels.iter().map(|l| l.to_string()).collect())
    };
    let labels = |expr: &str| -> Vec<String> {
        match result_labels(&parse(expr).tree, &series) {
            Ok(labels) => labels.into_iter().collect(),
            Err(e) => vec![format!("error: {e}")],
        }
    };
    assert_eq!(
        labels("histogram_quantile(0.95, sum by (job, route, le) (rate(h_bucket[5m])))"),
        ["job", "route"]
    );
    assert_eq!(labels("sum without (instance) (rate(c_total[5m]))"), ["job", "route", "status"]);
    assert_eq!(labels("sum(rate(c_total[5m]))"), Vec::<String>::new());
    assert_eq!(labels("topk(3, c_total)"), ["instance", "job", "route", "status"]);
    assert_eq!(
        labels(r#"(sum by (job) (c_total{status="5xx"}) or j:c:rate5m * 0) / j:c:rate5m"#),
        ["job"]
    );
    assert_eq!(labels("1 - c_total / on (job, route) c_total"), ["job", "route"]);
    assert_eq!(labels("c_total / ignoring (status) c_total"), ["instance", "job", "route"]);
    assert_eq!(
        labels("c_total / on (job) group_left (x) j:c:rate5m"),
        ["instance", "job", "route", "status", "x"]
    );
    assert_eq!(labels(r#"label_replace(vector(0.999), "job", "a/b", "", "")"#), ["job"]);
    assert_eq!(
        labels("clamp_min(c_total - c_total offset 5m, 0) / 300"),
        ["instance", "job", "route", "status"]
    );
    assert_eq!(labels("sum by (job) (nope)"), ["error: nope is unknown"]);
}

// ------------------------------------------------------------------------------------------------
// Links to traces (Jaeger)

/// The panels that must link to traces: the latency and error panels of the API, Worker and SLO
/// dashboards (dashboard uid, panel title).
const TRACE_LINKED_PANELS: [(&str, &str); 14] = [
    ("orgraph-api", "Error ratio"),
    ("orgraph-api", "Latency P95"),
    ("orgraph-api", "Error responses by route and status"),
    ("orgraph-api", "Server error ratio by route"),
    ("orgraph-api", "Latency P50 / P95 / P99"),
    ("orgraph-api", "Latency P95 by route"),
    ("orgraph-worker", "Task failure ratio"),
    ("orgraph-worker", "Task failure ratio by type"),
    ("orgraph-worker", "Task duration P95 by type"),
    ("orgraph-worker", "Export duration"),
    ("orgraph-slo", "Availability (5m)"),
    ("orgraph-slo", "Availability burn rate over time"),
    ("orgraph-slo", "Requests under 0.5 s (5m)"),
    ("orgraph-slo", "Latency burn rate over time"),
];

/// The provisioned data source of type `jaeger`.
fn jaeger_datasource() -> serde_norway::Value {
    let datasources = provisioning_yaml("datasources/datasources.yaml");
    let list = datasources["datasources"].as_sequence().expect("a `datasources` list");
    let jaeger: Vec<_> = list.iter().filter(|d| d["type"] == "jaeger").collect();
    assert_eq!(jaeger.len(), 1, "exactly one Jaeger data source");
    jaeger[0].clone()
}

/// The span names each service produces that a link may search for: the API's HTTP server spans
/// (`{METHOD} {route}`, from the `#[utoipa::path(<method>, path = "<route>"` annotations of its
/// router) and `send {queue}`; the worker's `process {queue}` (the queues of
/// `otel::catalogue`).
fn span_names() -> BTreeMap<&'static str, BTreeSet<String>> {
    let routes_dir =
        dashboards::repo_root().join("services").join("api").join("src").join("routes");
    let mut api = BTreeSet::new();
    for entry in std::fs::read_dir(&routes_dir).expect("services/api/src/routes") {
        let path = entry.expect("a directory entry").path();
        let text = std::fs::read_to_string(&path).expect("a route module");
        for rest in text.split("#[utoipa::path(").skip(1) {
            let method = rest.split(',').next().unwrap_or_default().trim().to_uppercase();
            let route = rest.split("path = \"").nth(1).and_then(|r| r.split('"').next());
            if let Some(route) = route {
                api.insert(format!("{method} {route}"));
            }
        }
    }
    assert!(api.contains("POST /api/exports"), "route annotations not found: {api:?}");
    let queues: Vec<&str> = Queue::ALL.iter().map(|q| q.as_str()).collect();
    api.extend(queues.iter().map(|q| format!("send {q}")));
    let worker = queues.iter().map(|q| format!("process {q}")).collect();
    BTreeMap::from([("api", api), ("worker", worker)])
}

/// Whether `text` is a duration Jaeger's `minDuration` takes (Go's `time.ParseDuration`, one
/// unit here): a positive number and `us`, `ms`, `s`, `m` or `h`.
fn is_go_duration(text: &str) -> bool {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    number.parse::<u64>().is_ok_and(|n| n > 0) && ["us", "ms", "s", "m", "h"].contains(&unit)
}

#[test]
fn every_trace_link_searches_spans_the_services_produce_over_the_dashboards_range() {
    let jaeger_uid = jaeger_datasource()["uid"].as_str().map(String::from);
    let names = span_names();
    let links = dashboards::trace_links().unwrap_or_else(|e| panic!("{e:#}"));
    let mut problems = Vec::new();
    for link in &links {
        let at = format!("{} / {} / {:?}", link.dashboard, link.panel, link.title);
        if Some(&link.datasource) != jaeger_uid.as_ref() {
            problems.push(format!("{at}: data source {:?}, not {jaeger_uid:?}", link.datasource));
        }
        if link.query_type != "search" {
            problems.push(format!("{at}: queryType {:?}, not \"search\"", link.query_type));
        }
        match names.get(link.service.as_str()) {
            None => {
                problems.push(format!("{at}: service {:?} is neither api nor worker", link.service))
            }
            Some(known) => {
                if let Some(op) = link.operation.as_ref().filter(|op| !known.contains(*op)) {
                    problems.push(format!("{at}: no {} span is named {op:?}", link.service));
                }
            }
        }
        if (link.from.as_str(), link.to.as_str()) != ("${__from}", "${__to}") {
            problems.push(format!("{at}: range {}..{}, not the dashboard's", link.from, link.to));
        }
        if let Some(min) = link.min_duration.as_ref().filter(|m| !is_go_duration(m)) {
            problems.push(format!("{at}: minDuration {min:?} is not a duration Jaeger takes"));
        }
        if let Some(tags) = link.tags.as_ref().filter(|t| *t != "error=true") {
            problems.push(format!("{at}: tags {tags:?}: only error=true is used"));
        }
        if link.title.is_empty() {
            problems.push(format!("{at}: a link without a title"));
        }
    }
    report(problems);
}

#[test]
fn latency_and_error_panels_link_to_their_traces() {
    let links = dashboards::trace_links().unwrap_or_else(|e| panic!("{e:#}"));
    let dashboards = load_all();
    let mut problems = Vec::new();
    for (uid, panel) in TRACE_LINKED_PANELS {
        let Some(d) = dashboards.iter().find(|d| d.uid() == uid) else {
            problems.push(format!("no dashboard {uid}"));
            continue;
        };
        if !d.visible_panels().iter().any(|p| title(p) == panel) {
            problems.push(format!("{uid}: no panel {panel:?}"));
        } else if !links.iter().any(|l| l.dashboard == d.title() && l.panel == panel) {
            problems.push(format!("{uid} / {panel:?}: no link to its traces"));
        }
    }
    // A panel about the latency SLO searches for the spans that break it: 0.5 s.
    for link in links.iter().filter(|l| l.panel.contains("0.5 s")) {
        if link.min_duration.as_deref() != Some("500ms") {
            problems.push(format!("{} / {}: minDuration is not 500ms", link.dashboard, link.panel));
        }
    }
    report(problems);
}

#[test]
fn the_jaeger_source_links_spans_to_metrics_of_the_catalogue() {
    let jaeger = jaeger_datasource();
    assert_eq!(jaeger["uid"].as_str(), Some("jaeger"), "the dashboards' links name this uid");
    assert_eq!(jaeger["url"].as_str(), Some("http://jaeger:16686"));
    let t2m = &jaeger["jsonData"]["tracesToMetrics"];
    assert_eq!(t2m["datasourceUid"].as_str(), Some(PROVISIONED_DATASOURCE_UID));
    let contract = dashboards::contract();
    let tags: Vec<(String, String)> = t2m["tags"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|t| {
            let key = t["key"].as_str().unwrap_or_default().to_string();
            let label = t["value"].as_str().map_or_else(|| key.clone(), String::from);
            (key, label)
        })
        .collect();
    let mut problems = Vec::new();
    for (key, label) in &tags {
        if *label != key.replace('.', "_") {
            problems.push(format!("tag {key} maps to {label}, not the collector's translation"));
        }
    }
    let queries = t2m["queries"].as_sequence().expect("tracesToMetrics.queries");
    assert!(!queries.is_empty());
    for query in queries {
        let text = query["query"].as_str().unwrap_or_default();
        // What Grafana makes of `$__tags` for a span with none of the tags, and with all of them.
        let all: Vec<String> = tags.iter().map(|(_, l)| format!("{l}=\"x\"")).collect();
        for tags_text in [String::new(), all.join(", ")] {
            let expr = text.replace("$__tags", &tags_text);
            let tree = match promql::parse(&expr) {
                Ok(tree) => tree,
                Err(e) => {
                    problems.push(format!("`{expr}` is not PromQL: {e}"));
                    continue;
                }
            };
            for s in selectors(&tree) {
                let Some(labels) = contract.get(&s.metric) else {
                    problems.push(format!(
                        "`{text}` reads {}, not a series of the catalogue",
                        s.metric
                    ));
                    continue;
                };
                for (label, _, _) in &s.matchers {
                    if !labels.contains(label) && !tags.iter().any(|(_, l)| l == label) {
                        problems.push(format!("`{text}`: {} has no label {label}", s.metric));
                    }
                }
            }
        }
    }
    report(problems);
}
