//! Structural checks of the Grafana dashboards (`grafana/dashboards/**/*.json`) and their
//! provisioning (`grafana/provisioning/`): valid JSON, unique uids and panel ids, a layout that
//! fits the 24-column grid without overlaps, every panel on the provisioned data source with a
//! description, a unit and thresholds, the `datasource`/`job`/`instance` variables, links between
//! the dashboards, and queries that only use the series of the metric contract (`docs/METRICS.md`)
//! or the agreed recording rules, filtered by `$job`/`$instance`, over `$__rate_interval`, with
//! health checks excluded from HTTP panels and no label outside the contract's bounded sets. Every
//! query must also parse: promtool checks them as recording rules. Further: every dashboard
//! matches Grafana 13's dashboard schema (schemaVersion 42, see "Grafana 13's dashboard schema"),
//! no query divides by something that can be 0 (NaN at zero traffic) or reads a recorded ratio
//! with its NaN, state queries use a fixed window, alert tables select alerts by `service`, and
//! the Infrastructure dashboard shows the collector from its own scrape job.
//!
//! That the queries return data from the real pipeline is proven elsewhere, with
//! `xtask::dashboards::queries()`.

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

/// The recording rules dashboards may query (agreed with `prometheus/rules/recording.yaml`) and
/// the labels each one keeps. They have no `instance` label: panels filter them by `job` only.
fn recording_rules() -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut rules = BTreeMap::new();
    let mut add = |name: String, labels: &[&'static str]| {
        rules.insert(name, labels.iter().copied().collect::<BTreeSet<_>>());
    };
    for name in [
        "job:http_server_requests:rate5m",
        "job:http_server_errors:rate5m",
        "job:http_server_errors:ratio_rate5m",
        "job:http_server_request_duration_seconds:p50_rate5m",
        "job:http_server_request_duration_seconds:p95_rate5m",
        "job:http_server_request_duration_seconds:p99_rate5m",
        "job:orgraph_task_failures:ratio_rate5m",
        "job:orgraph_export_duration_seconds:p95_rate5m",
    ] {
        add(name.into(), &["job"]);
    }
    add(
        "job_route:http_server_requests:rate5m".into(),
        &["job", "http_route", "http_request_method"],
    );
    add("job_route:http_server_request_duration_seconds:p95_rate5m".into(), &["job", "http_route"]);
    add("job:orgraph_task_completed:rate5m".into(), &["job", "task_type", "task_status"]);
    add(
        "job_pool:db_client_connection:utilisation".into(),
        &["job", "db_client_connection_pool_name"],
    );
    add("job_cache:orgraph_cache_hits:ratio_rate5m".into(), &["job", "cache_layer", "cache_name"]);
    add(
        "job_breaker:orgraph_circuit_breaker_failures:ratio_rate5m".into(),
        &["job", "circuit_breaker_name"],
    );
    for window in ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"] {
        add(format!("job:slo_availability_errors:ratio_rate{window}"), &["job"]);
        add(format!("job:slo_latency_slow:ratio_rate{window}"), &["job"]);
    }
    for slo in ["availability", "latency"] {
        for window in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
            add(format!("job:slo_{slo}:burn_rate{window}"), &["job"]);
        }
        add(format!("job:slo_{slo}:objective"), &["job"]);
        add(format!("job:slo_{slo}:error_budget_remaining"), &["job"]);
    }
    rules
}

/// Prometheus' own series of firing and pending alerts; its labels are the alerts' labels.
const ALERTS: &str = "ALERTS";

/// Labels every contract series carries besides its own.
const COMMON_LABELS: [&str; 5] =
    ["job", "instance", "otel_scope_name", "otel_scope_schema_url", "otel_scope_version"];

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
// The metric contract, from docs/METRICS.md

/// Series name → the labels it may carry, from the table of `docs/METRICS.md`.
fn contract() -> BTreeMap<String, BTreeSet<String>> {
    let path = dashboards::repo_root().join("docs").join("METRICS.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut series = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // ["", instrument, series, type, unit, labels, description, ""]
        assert!(cells.len() >= 7, "unexpected row in {}: {line}", path.display());
        let names = backticked_heads(cells[2]);
        let mut labels: BTreeSet<String> = backticked_heads(cells[5]).into_iter().collect();
        labels.extend(COMMON_LABELS.iter().map(|l| l.to_string()));
        for name in names {
            let mut labels = labels.clone();
            if name.ends_with("_bucket") {
                labels.insert("le".into());
            }
            series.insert(name, labels);
        }
    }
    assert!(series.len() > 20, "found only {} series in {}", series.len(), path.display());
    series
}

/// The first backticked word of each `<br>`-separated part of a table cell.
fn backticked_heads(cell: &str) -> Vec<String> {
    cell.split("<br>")
        .filter_map(|part| {
            let rest = part.trim().strip_prefix('`')?;
            rest.split_once('`').map(|(head, _)| head.to_string())
        })
        .collect()
}

/// The `record:` names of `prometheus/rules/*.yaml`, or None while there are no rule files.
fn recorded_names() -> Option<BTreeSet<String>> {
    let dir = dashboards::repo_root().join("prometheus").join("rules");
    let entries = std::fs::read_dir(&dir).ok()?;
    let mut names = BTreeSet::new();
    let mut files = 0;
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if !is_yaml || path.to_string_lossy().ends_with(".test.yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a readable rules file");
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
        let Some(groups) = yaml["groups"].as_sequence() else { continue };
        files += 1;
        for rule in groups.iter().filter_map(|g| g["rules"].as_sequence()).flatten() {
            if let Some(record) = rule["record"].as_str() {
                names.insert(record.to_string());
            }
        }
    }
    (files > 0).then_some(names)
}

// ------------------------------------------------------------------------------------------------
// A small PromQL reader: enough to find series selectors, their matchers and range windows, and
// the labels of grouping clauses. The dashboards' queries are also parsed by promtool (below).

/// A series selector: `metric{matchers}[range]`.
#[derive(Debug, Clone, PartialEq)]
struct Selector {
    metric: String,
    /// (label, operator, value)
    matchers: Vec<(String, String, String)>,
    range: Option<String>,
    /// Whether the selector had braces (`metric{...}`).
    braces: bool,
}

impl Selector {
    fn has(&self, (label, op, value): (&str, &str, &str)) -> bool {
        self.matchers.iter().any(|(l, o, v)| l == label && o == op && v == value)
    }
}

/// What a query references.
#[derive(Debug, Default)]
struct Parsed {
    selectors: Vec<Selector>,
    /// Labels named in `by`, `without`, `on`, `ignoring`, `group_left`, `group_right`.
    grouping: Vec<String>,
}

const KEYWORDS: [&str; 7] = ["and", "or", "unless", "bool", "offset", "atan2", "inf"];
const GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];
/// Aggregation operators: a grouping clause may come between the name and its `(`.
const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

fn parse(expr: &str) -> Parsed {
    let chars: Vec<char> = expr.chars().collect();
    let mut parsed = Parsed::default();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i).1;
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let next = skip_ws(i);
            let peek = chars.get(next).copied();
            if GROUPING.contains(&ident.as_str()) {
                if peek == Some('(') {
                    let close = find(&chars, next, ')');
                    let inner: String = chars[next + 1..close].iter().collect();
                    parsed.grouping.extend(
                        inner.split(',').map(str::trim).filter(|l| !l.is_empty()).map(String::from),
                    );
                    i = close + 1;
                }
            } else if KEYWORDS.contains(&ident.to_ascii_lowercase().as_str())
                || AGGREGATIONS.contains(&ident.as_str())
                || peek == Some('(')
            {
                // An operator keyword, an aggregation, or a function name.
            } else {
                let mut selector =
                    Selector { metric: ident, matchers: Vec::new(), range: None, braces: false };
                if peek == Some('{') {
                    let (matchers, end) = parse_matchers(&chars, next);
                    selector.matchers = matchers;
                    selector.braces = true;
                    i = end;
                }
                let next = skip_ws(i);
                if chars.get(next) == Some(&'[') {
                    let close = find(&chars, next, ']');
                    selector.range = Some(chars[next + 1..close].iter().collect());
                    i = close + 1;
                }
                parsed.selectors.push(selector);
            }
        } else {
            i += 1;
        }
    }
    parsed
}

/// The string starting at `chars[start]` (a quote) and the index after it.
fn skip_string(chars: &[char], start: usize) -> (String, usize) {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' && i + 1 < chars.len() {
            i += 1;
        }
        out.push(chars[i]);
        i += 1;
    }
    (out, i + 1)
}

/// Index of the first `close` at or after `from`, outside strings.
fn find(chars: &[char], from: usize, close: char) -> usize {
    let mut i = from;
    while i < chars.len() {
        if chars[i] == '"' || chars[i] == '\'' {
            i = skip_string(chars, i).1;
            continue;
        }
        if chars[i] == close {
            return i;
        }
        i += 1;
    }
    panic!("unbalanced `{close}` in {}", chars.iter().collect::<String>())
}

/// The matchers of `{...}` starting at `chars[open]`, and the index after the `}`.
fn parse_matchers(chars: &[char], open: usize) -> (Vec<(String, String, String)>, usize) {
    let mut matchers = Vec::new();
    let mut i = open + 1;
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        assert!(i < chars.len(), "unclosed {{ in {}", chars.iter().collect::<String>());
        if chars[i] == '}' {
            return (matchers, i + 1);
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let label: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let op_start = i;
        while i < chars.len() && "=!~".contains(chars[i]) {
            i += 1;
        }
        let op: String = chars[op_start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        assert!(
            !label.is_empty() && !op.is_empty() && i < chars.len() && "\"'`".contains(chars[i]),
            "cannot read the matcher at {start} of {}",
            chars.iter().collect::<String>()
        );
        let (value, end) = skip_string(chars, i);
        matchers.push((label, op, value));
        i = end;
    }
}

/// The `{{label}}` references of a legend format.
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}").map(|(label, _)| label.trim().to_string()))
        .collect()
}

// The structure around the selectors: enough to find what a `/` divides by, which queries are
// states (0/1), and the top-level `or` of a fallback.

/// Index after the group that opens at `chars[open]` (`(`, `{` or `[`), strings skipped.
fn close_of(chars: &[char], open: usize) -> usize {
    let (opening, closing) = match chars[open] {
        '(' => ('(', ')'),
        '{' => ('{', '}'),
        '[' => ('[', ']'),
        other => panic!("`{other}` opens no group"),
    };
    let mut depth = 0;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i).1;
                continue;
            }
            c if c == opening => depth += 1,
            c if c == closing => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!("unbalanced `{opening}` in {}", chars.iter().collect::<String>())
}

fn skip_ws(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_whitespace() {
        i += 1;
    }
    i
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The identifier starting at `chars[i]` (empty if none) and the index after it.
fn word_at(chars: &[char], i: usize) -> (String, usize) {
    let mut end = i;
    if end < chars.len() && (chars[end].is_ascii_alphabetic() || "_:".contains(chars[end])) {
        while end < chars.len() && is_ident_char(chars[end]) {
            end += 1;
        }
    }
    (chars[i..end].iter().collect(), end)
}

/// The positions of `chars` outside strings and outside every (), {} and [] group.
fn top_level(chars: &[char]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(chars, i).1,
            '(' | '{' | '[' => i = close_of(chars, i),
            _ => {
                out.push(i);
                i += 1;
            }
        }
    }
    out
}

/// The identifiers of `expr` outside strings and label matchers, each with whether it is called
/// (followed by `(`).
fn words(expr: &str) -> Vec<(String, bool)> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(&chars, i).1,
            '{' => i = close_of(&chars, i),
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let (word, end) = word_at(&chars, i);
                let called = chars.get(skip_ws(&chars, end)) == Some(&'(');
                out.push((word, called));
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

/// The operand right of the operator that ends at `chars[from - 1]`: one primary expression (a
/// parenthesised group, a number, a function call, an aggregation or a selector), after any
/// vector-matching modifiers (`on (...)`, `group_left`, ...).
fn operand_after(chars: &[char], from: usize) -> String {
    let mut i = skip_ws(chars, from);
    loop {
        let (word, end) = word_at(chars, i);
        if !["on", "ignoring", "group_left", "group_right", "bool"].contains(&word.as_str()) {
            break;
        }
        i = skip_ws(chars, end);
        if word != "bool" && chars.get(i) == Some(&'(') {
            i = skip_ws(chars, close_of(chars, i));
        }
    }
    let start = i;
    match chars.get(i) {
        None => {}
        Some('(') => i = close_of(chars, i),
        Some(c) if c.is_ascii_digit() || *c == '.' => {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || ("+-".contains(chars[i]) && "eE".contains(chars[i - 1])))
            {
                i += 1;
            }
        }
        Some(_) => {
            let (word, end) = word_at(chars, i);
            i = end;
            let grouping = |i: usize| {
                let j = skip_ws(chars, i);
                let (w, end) = word_at(chars, j);
                let k = skip_ws(chars, end);
                if (w == "by" || w == "without") && chars.get(k) == Some(&'(') {
                    close_of(chars, k)
                } else {
                    i
                }
            };
            if AGGREGATIONS.contains(&word.as_str()) {
                i = grouping(i);
            }
            let j = skip_ws(chars, i);
            if chars.get(j) == Some(&'(') {
                i = close_of(chars, j);
                if AGGREGATIONS.contains(&word.as_str()) {
                    i = grouping(i);
                }
            } else {
                // A selector: matchers, range, `offset`.
                if chars.get(j) == Some(&'{') {
                    i = close_of(chars, j);
                }
                let j = skip_ws(chars, i);
                if chars.get(j) == Some(&'[') {
                    i = close_of(chars, j);
                }
            }
        }
    }
    chars[start..i].iter().collect()
}

/// Every denominator of `expr`: what each `/` divides by.
fn denominators(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(&chars, i).1,
            '/' => {
                out.push(operand_after(&chars, i + 1));
                i += 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Whether a denominator can never be 0, so the division never makes NaN (0/0) or ±Inf: a
/// non-zero number, `(... > c)` with c ≥ 0 or `(... >= c)` with c > 0 (a filter: a zero
/// denominator drops the element), or `clamp_min(..., c)` with c > 0.
fn is_guarded_denominator(operand: &str) -> bool {
    let text = operand.trim();
    if let Ok(number) = text.parse::<f64>() {
        return number != 0.0;
    }
    let positive = |s: &str| s.trim().parse::<f64>().is_ok_and(|c| c > 0.0);
    if let Some(args) = text.strip_prefix("clamp_min").map(str::trim_start) {
        let Some(args) = args.strip_prefix('(').and_then(|a| a.strip_suffix(')')) else {
            return false;
        };
        let chars: Vec<char> = args.chars().collect();
        let comma = top_level(&chars).into_iter().rfind(|&p| chars[p] == ',');
        return comma.is_some_and(|p| positive(&chars[p + 1..].iter().collect::<String>()));
    }
    let Some(inner) = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')) else {
        return false;
    };
    let chars: Vec<char> = inner.chars().collect();
    let top = top_level(&chars);
    // `a or b > 0` is `a or (b > 0)`: a set operator would let a zero through again.
    let flat: String = top.iter().map(|&p| chars[p]).collect();
    let set_operator =
        flat.split(|c: char| !is_ident_char(c)).any(|w| ["or", "and", "unless"].contains(&w));
    let Some(&gt) = top.iter().rfind(|&&p| chars[p] == '>') else {
        return false;
    };
    let (inclusive, rest) = if chars.get(gt + 1) == Some(&'=') {
        (true, &chars[gt + 2..])
    } else {
        (false, &chars[gt + 1..])
    };
    let rest: String = rest.iter().collect();
    let Ok(bound) = rest.trim().parse::<f64>() else {
        return false; // `> bool 0` returns 0 and 1, and anything else after `>` is no bound.
    };
    !set_operator && if inclusive { bound > 0.0 } else { bound >= 0.0 }
}

/// Whether a recorded series is a ratio: `...:ratio_...`, or a burn rate (a ratio over a constant).
fn is_recorded_ratio(name: &str) -> bool {
    name.contains(":ratio") || name.contains(":burn_rate")
}

/// The recorded ratios (`...:ratio_...`, `...:burn_rate...`) `expr` reads without the NaN filter `(rule{...} >= 0)`.
/// A recorded ratio is NaN (0/0) while its denominator is 0, e.g. without traffic in its window;
/// every comparison with NaN is false, so `>= 0` drops exactly the NaN and keeps every ratio.
fn unfiltered_recorded_ratios(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = skip_string(&chars, i).1,
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                let (word, end) = word_at(&chars, i);
                i = end;
                if !is_recorded_ratio(&word) {
                    continue;
                }
                let before = chars[..start].iter().rev().find(|c| !c.is_whitespace());
                let mut j = skip_ws(&chars, end);
                if chars.get(j) == Some(&'{') {
                    j = close_of(&chars, j);
                }
                let after: String = chars[j..].iter().collect();
                let after: String = after.split_whitespace().collect();
                let filtered = before == Some(&'(')
                    && after.strip_prefix(">=").is_some_and(|rest| {
                        rest.strip_prefix('0').is_some_and(|rest| rest.starts_with(')'))
                    });
                if !filtered {
                    out.push(word);
                }
                i = j.max(end);
            }
            _ => i += 1,
        }
    }
    out
}

/// Functions whose result is a state (did it change, is it there) rather than a quantity.
const STATE_FUNCTIONS: [&str; 5] =
    ["changes", "resets", "absent", "absent_over_time", "present_over_time"];

/// Whether `expr` computes a state: a `bool` comparison (0 or 1) or a state function.
fn is_state_query(expr: &str) -> bool {
    words(expr)
        .iter()
        .any(|(w, called)| w == "bool" || (*called && STATE_FUNCTIONS.contains(&w.as_str())))
}

/// `expr` split at its top-level `or` operators.
fn top_level_or_operands(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let top: BTreeSet<usize> = top_level(&chars).into_iter().collect();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < chars.len() {
        let is_or = chars[i] == 'o'
            && chars[i + 1] == 'r'
            && top.contains(&i)
            && (i == 0 || !is_ident_char(chars[i - 1]))
            && chars.get(i + 2).is_none_or(|c| !is_ident_char(*c));
        if is_or {
            parts.push(chars[start..i].iter().collect());
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    parts.push(chars[start..].iter().collect());
    parts
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

fn provisioning_yaml(relative: &str) -> serde_yaml::Value {
    let path = dashboards::repo_root().join("grafana").join("provisioning").join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
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
    assert_eq!(prometheus["url"].as_str(), Some("http://prometheus:9090"));
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
fn queries_reference_only_contract_series_and_agreed_recording_rules() {
    let contract = contract();
    let rules = recording_rules();
    let collector = collector_series();
    let recorded = recorded_names();
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
                if let Some(recorded) = &recorded
                    && !recorded.contains(&s.metric)
                {
                    problems.push(format!(
                        "{}: {} is not recorded in prometheus/rules/",
                        at(d, panel),
                        s.metric
                    ));
                }
                l.iter().map(|l| l.to_string()).collect()
            } else {
                problems.push(format!("{}: {} is not in the contract", at(d, panel), s.metric));
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
    let contract = contract();
    let rules = recording_rules();
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
    let contract = contract();
    let rules = recording_rules();
    let dashboards = load_all();
    let mut problems = Vec::new();
    for (d, panel, target) in all_targets(&dashboards) {
        for s in parse(expr(target)).selectors {
            let has_route = contract.get(&s.metric).is_some_and(|l| l.contains("http_route"))
                || rules.get(&s.metric).is_some_and(|l| l.contains("http_route"));
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
        let state = is_state_query(expr(target));
        for s in parse(expr(target)).selectors {
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
            if !s.braces {
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
        if !is_state_query(expr(target)) {
            continue;
        }
        states += 1;
        for s in parse(expr(target)).selectors {
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
        for denominator in denominators(expr(target)) {
            divisions += 1;
            if !is_guarded_denominator(&denominator) {
                problems.push(format!(
                    "{}: divides by `{}`, which is 0 without traffic (0/0 = NaN): divide by \
                     `(... > 0)` (and add `or <denominator> * 0` to show 0), or by \
                     clamp_min(..., c > 0)",
                    at(d, panel),
                    denominator.trim()
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
        ratios +=
            parse(expr(target)).selectors.iter().filter(|s| is_recorded_ratio(&s.metric)).count();
        for rule in unfiltered_recorded_ratios(expr(target)) {
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
        for s in parse(expr(target)).selectors {
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
        let operands = top_level_or_operands(expr(target));
        let lazy = |text: &str| {
            parse(text)
                .selectors
                .iter()
                .any(|s| LAZY_COLLECTOR_COUNTERS.contains(&s.metric.as_str()))
        };
        if lazy(expr(target)) {
            let fallback = operands.last().map(String::as_str).unwrap_or_default();
            let zero = fallback.trim().ends_with("* 0") && !fallback.contains("vector(");
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
    let config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&config).expect("collector-config.yaml"))
            .expect("collector-config.yaml is YAML");
    let limiter = &config["processors"]["memory_limiter"];
    let mib = |key: &str| -> f64 {
        let text = match &limiter[key] {
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::String(s) => s.clone(),
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
    let rules: Vec<serde_yaml::Value> = queries
        .iter()
        .enumerate()
        .map(|(n, (_, _, expr))| {
            let mut rule = serde_yaml::Mapping::new();
            rule.insert("record".into(), format!("dashboard:query_{n}").into());
            rule.insert("expr".into(), expr.clone().into());
            rule.into()
        })
        .collect();
    let mut group = serde_yaml::Mapping::new();
    group.insert("name".into(), "dashboards".into());
    group.insert("rules".into(), rules.into());
    let mut file = serde_yaml::Mapping::new();
    file.insert("groups".into(), vec![serde_yaml::Value::from(group)].into());
    let yaml = serde_yaml::to_string(&file).expect("YAML");

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
fn the_promql_reader_finds_selectors_ranges_and_grouping_labels() {
    let parsed = parse(
        r#"histogram_quantile(0.95, sum by (job, le) (rate(a_bucket{job=~"$job", x!~"/h/.*"}[$__rate_interval])))
           / on (job) group_left b:rule:rate5m{job=~"$job"} or vector(0) * c[5m] unless bool d{y="a,}b"}"#,
    );
    let names: Vec<&str> = parsed.selectors.iter().map(|s| s.metric.as_str()).collect();
    assert_eq!(names, ["a_bucket", "b:rule:rate5m", "c", "d"]);
    assert_eq!(parsed.selectors[0].range.as_deref(), Some("$__rate_interval"));
    assert!(parsed.selectors[0].has(("x", "!~", "/h/.*")));
    assert_eq!(parsed.selectors[2].range.as_deref(), Some("5m"));
    assert!(!parsed.selectors[2].braces);
    assert!(parsed.selectors[3].has(("y", "=", "a,}b")));
    assert_eq!(parsed.grouping, ["job", "le", "job"]);
    assert_eq!(legend_labels("{{job}} {{ cache_layer }}/x"), ["job", "cache_layer"]);
    assert_eq!(
        backticked_heads("`error_type` (5xx status codes, `timeout`)<br>`url_scheme` (http)"),
        ["error_type", "url_scheme"]
    );
}

#[test]
fn the_promql_reader_finds_denominators_and_their_guards() {
    let expr = concat!(
        r#"sum by (r) (rate(a{x="/a/b"}[1m])) / (sum by (r) (rate(b[1m])) > 0)"#,
        " or sum by (r) (rate(b[1m])) * 0"
    );
    assert_eq!(denominators(expr), ["(sum by (r) (rate(b[1m])) > 0)"]);
    assert_eq!(
        denominators("x / on (job) group_left (y) sum without (i) (rate(c[1m])) * 2"),
        ["sum without (i) (rate(c[1m]))"]
    );
    assert_eq!(
        denominators("x / sum(rate(c[1m])) by (job) / 1e-3"),
        ["sum(rate(c[1m])) by (job)", "1e-3"]
    );
    assert_eq!(
        denominators(r#"x / b:rule:rate5m{job=~"$job"}[5m] or y"#),
        [r#"b:rule:rate5m{job=~"$job"}[5m]"#]
    );
    for guarded in
        ["(s > 0)", "( s >= 1 )", "clamp_min(sum(rate(c[1m])), 1e-9)", "0.001", "(a / (b > 0) > 0)"]
    {
        assert!(is_guarded_denominator(guarded), "{guarded}");
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
        assert!(!is_guarded_denominator(unguarded), "{unguarded}");
    }
}

#[test]
fn the_promql_reader_finds_unfiltered_ratios_states_and_fallbacks() {
    assert!(
        unfiltered_recorded_ratios(r#"(a:b:ratio_rate5m{job=~"$job"} >= 0) / 0.001"#).is_empty()
    );
    assert!(unfiltered_recorded_ratios("1 - ( a:b:ratio_rate5m >= 0 )").is_empty());
    assert_eq!(
        unfiltered_recorded_ratios(r#"a:b:ratio_rate5m{job=~"$job"} / 0.001"#),
        ["a:b:ratio_rate5m"]
    );
    assert_eq!(unfiltered_recorded_ratios("(a:b:ratio_rate5m >= 0 / 2)"), ["a:b:ratio_rate5m"]);
    assert_eq!(unfiltered_recorded_ratios("(a:b:ratio_rate5m > 0.5)"), ["a:b:ratio_rate5m"]);
    assert!(unfiltered_recorded_ratios("limit_ratio(0.5, a:b:rate5m)").is_empty());

    assert!(is_state_query("max by (job) (changes(u[2m]) > bool 0)"));
    assert!(is_state_query("absent(u)"));
    assert!(!is_state_query(r#"sum(rate(u{changes="bool"}[1m]))"#));
    assert!(!is_state_query("max(changes_total)"));

    assert_eq!(
        top_level_or_operands(r#"sum(a or b) or c{x="or"} * 0 or_x"#),
        ["sum(a or b) ", r#" c{x="or"} * 0 or_x"#]
    );
}
