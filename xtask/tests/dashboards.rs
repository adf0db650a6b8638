//! Structural checks of the Grafana dashboards (`grafana/dashboards/**/*.json`) and their
//! provisioning (`grafana/provisioning/`): valid JSON, unique uids and panel ids, a layout that
//! fits the 24-column grid without overlaps, every panel on the provisioned data source with a
//! description, a unit and thresholds, the `datasource`/`job`/`instance` variables, links between
//! the dashboards, and queries that only use the series of the metric contract (`docs/METRICS.md`)
//! or the agreed recording rules, filtered by `$job`/`$instance`, over `$__rate_interval`, with
//! health checks excluded from HTTP panels and no label outside the contract's bounded sets. Every
//! query must also parse: promtool checks them as recording rules.
//!
//! That the queries return data from the real pipeline is proven elsewhere, with
//! `support::dashboards::queries()`.

#[path = "support/dashboards.rs"]
mod dashboards;

use dashboards::{Dashboard, PROVISIONED_DATASOURCE_UID, is_row, load_all, targets, title};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

/// The dashboards the design asks for, by uid.
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
    for window in ["5m", "30m", "1h", "2h", "6h", "1d", "3d"] {
        add(format!("job:slo_availability_errors:ratio_rate{window}"), &["job"]);
        add(format!("job:slo_latency_slow:ratio_rate{window}"), &["job"]);
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
        for s in parse(expr(target)).selectors {
            // A recording rule is already a rate over a fixed window: its name says which.
            let recording_rule = s.metric.contains(':');
            match &s.range {
                Some(range) if !recording_rule && range != "$__rate_interval" => {
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
