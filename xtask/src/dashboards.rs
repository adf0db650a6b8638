//! Reading the Grafana dashboards of `grafana/dashboards/` (one JSON file per dashboard, one
//! sub-directory per Grafana folder), shared by the structural checks (`xtask/tests/dashboards.rs`)
//! and the live proof, which runs the panels' PromQL against the real Prometheus: [`queries`]
//! gives every (dashboard title, panel title, expr) with Grafana's variables replaced by
//! [`SUBSTITUTIONS`], ready for Prometheus' `/api/v1/query`. Also what the panels may query:
//! the series of the metric catalogue ([`contract`]) and the recording rules of
//! `prometheus/rules/recording.yaml` ([`recording_rules`]). And what no panel or rule may sum over
//! instances: the catalogue's shared gauges ([`shared_gauges`]), with every rule's expression
//! ([`rule_exprs`]).

pub use crate::trace_links::{TraceLink, trace_links};
use otel::catalogue::{self, Scope, infrastructure, prometheus};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The uid of the provisioned Prometheus data source
/// (`grafana/provisioning/datasources/datasources.yaml`); also what `${datasource}` becomes.
pub const PROVISIONED_DATASOURCE_UID: &str = "prometheus";

/// Grafana's variables in panel queries and what they become outside Grafana, applied in this
/// order (braced forms first). `$__rate_interval` is `1m`: four scrapes at the 15 s scrape
/// interval, what Grafana computes for short time ranges. `$job` and `$instance` become `.*`:
/// the variables' "All" value (`allValue`).
pub const SUBSTITUTIONS: &[(&str, &str)] = &[
    ("${__rate_interval}", "1m"),
    ("$__rate_interval", "1m"),
    ("${__interval}", "15s"),
    ("$__interval", "15s"),
    ("${job}", ".*"),
    ("$job", ".*"),
    ("${instance}", ".*"),
    ("$instance", ".*"),
    ("${datasource}", PROVISIONED_DATASOURCE_UID),
    ("$datasource", PROVISIONED_DATASOURCE_UID),
];

/// One dashboard file.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its parsed content (Grafana's classic dashboard JSON model).
    pub json: Value,
}

impl Dashboard {
    /// The dashboard's title (empty if it has none).
    pub fn title(&self) -> &str {
        self.json["title"].as_str().unwrap_or_default()
    }

    /// The dashboard's uid (empty if it has none).
    pub fn uid(&self) -> &str {
        self.json["uid"].as_str().unwrap_or_default()
    }

    /// The file's path relative to `grafana/dashboards/`, for messages.
    pub fn name(&self) -> String {
        let dir = dashboards_dir();
        self.path.strip_prefix(&dir).unwrap_or(&self.path).display().to_string()
    }

    /// Every panel, rows included, with the panels nested in (collapsed) rows after their row.
    pub fn panels(&self) -> Vec<&Value> {
        let mut out = Vec::new();
        for panel in self.json["panels"].as_array().into_iter().flatten() {
            out.push(panel);
            out.extend(panel["panels"].as_array().into_iter().flatten());
        }
        out
    }

    /// Every panel that is not a row.
    pub fn visible_panels(&self) -> Vec<&Value> {
        self.panels().into_iter().filter(|p| !is_row(p)).collect()
    }

    /// The template variable named `name`, if any.
    pub fn variable(&self, name: &str) -> Option<&Value> {
        self.json["templating"]["list"].as_array()?.iter().find(|v| v["name"] == name)
    }
}

/// Whether `panel` is a row (a layout element without queries).
pub fn is_row(panel: &Value) -> bool {
    panel["type"] == "row"
}

/// A panel's title (empty if it has none).
pub fn title(panel: &Value) -> &str {
    panel["title"].as_str().unwrap_or_default()
}

/// A panel's queries (its `targets`).
pub fn targets(panel: &Value) -> Vec<&Value> {
    panel["targets"].as_array().into_iter().flatten().collect()
}

/// The repository root (found at run time: see [`testkit::repo_root`]).
pub fn repo_root() -> PathBuf {
    testkit::repo_root()
}

/// `grafana/dashboards/`.
pub fn dashboards_dir() -> PathBuf {
    repo_root().join("grafana").join("dashboards")
}

/// Every `*.json` file under `grafana/dashboards/`, at any depth, sorted.
pub fn dashboard_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading directory {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&dashboards_dir(), &mut files);
    files.sort();
    files
}

/// Reads and parses one dashboard file.
pub fn load(path: &Path) -> Result<Dashboard, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let json = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid JSON: {e}", path.display()))?;
    Ok(Dashboard { path: path.to_path_buf(), json })
}

/// Every dashboard; panics naming the file if one is not valid JSON.
pub fn load_all() -> Vec<Dashboard> {
    dashboard_files().iter().map(|p| load(p).unwrap_or_else(|e| panic!("{e}"))).collect()
}

/// `expr` with Grafana's variables replaced as [`SUBSTITUTIONS`] says.
pub fn substitute(expr: &str) -> String {
    SUBSTITUTIONS.iter().fold(expr.to_string(), |e, (from, to)| e.replace(from, to))
}

/// Every (dashboard title, panel title, expr) of every dashboard, panels in rows included, with
/// the variables substituted: what the live proof sends to Prometheus.
pub fn queries() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for dashboard in load_all() {
        for panel in dashboard.visible_panels() {
            for target in targets(panel) {
                let expr = target["expr"].as_str().unwrap_or_default();
                out.push((
                    dashboard.title().to_string(),
                    title(panel).to_string(),
                    substitute(expr),
                ));
            }
        }
    }
    out
}

/// Every Prometheus series the catalogue's instruments become after the collector's translation
/// (the `series` of [`prometheus::families`]: `_bucket`, `_sum` and `_count` for a histogram),
/// with the label keys a fully attributed sample of it carries: the instrument's attributes, the
/// resource and scope labels, and `le` on buckets. And the infrastructure series the collector's
/// own receivers serve ([`infrastructure::INFRA_METRICS`]), with their labels, `job`, `instance`
/// and the scope labels.
pub fn contract() -> BTreeMap<String, BTreeSet<String>> {
    let services = prometheus::families().into_iter().flat_map(|family| {
        family
            .series
            .iter()
            .map(|series| (series.clone(), family.all_labels(series).into_iter().collect()))
            .collect::<Vec<_>>()
    });
    // `up` is Prometheus' own name too (every scrape job has one): the dashboards' rules treat
    // it on its own, so the receiver's `up{job="orgraph/postgres"}` is not part of the contract.
    let platform = infrastructure::INFRA_METRICS
        .iter()
        .filter(|metric| !matches!(metric.source, infrastructure::Source::Scrape(_)))
        .map(|metric| {
            let labels = metric
                .labels
                .iter()
                .map(|a| prometheus::label_name(a.key))
                .chain(
                    prometheus::RESOURCE_LABELS
                        .iter()
                        .chain(prometheus::SCOPE_LABELS)
                        .map(|l| l.to_string()),
                )
                .collect();
            (metric.family.to_string(), labels)
        });
    services.chain(platform).collect()
}

/// One recording rule of `prometheus/rules/recording.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingRule {
    /// The name it records (`record:`).
    pub name: String,
    /// Its PromQL (`expr:`).
    pub expr: String,
    /// The keys of the labels it sets itself (`labels:`).
    pub labels: BTreeSet<String>,
}

/// `prometheus/rules/recording.yaml`.
pub fn recording_rules_file() -> PathBuf {
    repo_root().join("prometheus").join("rules").join("recording.yaml")
}

/// Every recording rule of `prometheus/rules/recording.yaml`, in file order; panics naming the
/// file if it cannot be read.
pub fn recording_rules() -> Vec<RecordingRule> {
    let path = recording_rules_file();
    let yaml = crate::yaml::read(&path).unwrap_or_else(|e| panic!("{e:#}"));
    let groups = yaml["groups"].as_sequence().into_iter().flatten();
    groups
        .flat_map(|group| group["rules"].as_sequence().into_iter().flatten())
        .filter_map(|rule| {
            let name = rule["record"].as_str()?;
            let expr = rule["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: rule {name} has no expr", path.display()));
            let labels = rule["labels"].as_mapping().into_iter().flatten();
            Some(RecordingRule {
                name: name.to_string(),
                expr: expr.to_string(),
                labels: labels.filter_map(|(key, _)| key.as_str().map(String::from)).collect(),
            })
        })
        .collect()
}

/// A gauge every instance of a service reads alike from one shared thing (`Scope::Shared` in the
/// catalogue), by its Prometheus name: each instance reports the same number, so a sum over
/// instances counts it once per instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedGauge {
    /// The Prometheus series.
    pub series: String,
    /// Shared only on the series with this (label, value); the others are the instance's own.
    pub only_when: Option<(String, String)>,
}

/// The catalogue's shared gauges ([`catalogue::shared`]) under their Prometheus names.
pub fn shared_gauges() -> Vec<SharedGauge> {
    catalogue::shared()
        .filter_map(|instrument| match instrument.scope {
            Scope::Shared { only_when, .. } => Some(SharedGauge {
                series: prometheus::family(instrument).name,
                only_when: only_when
                    .map(|(key, value)| (prometheus::label_name(key), value.to_string())),
            }),
            Scope::Instance => None,
        })
        .collect()
}

/// `prometheus/rules/`.
pub fn rules_dir() -> PathBuf {
    repo_root().join("prometheus").join("rules")
}

/// Every rule of every file of `prometheus/rules/`, recording and alerting: (file name, the name
/// it records or alerts as, its PromQL); panics naming the file if one cannot be read.
pub fn rule_exprs() -> Vec<(String, String, String)> {
    let files = crate::yaml::files_in(&rules_dir()).unwrap_or_else(|e| panic!("{e:#}"));
    let mut out = Vec::new();
    for path in files {
        let yaml = crate::yaml::read(&path).unwrap_or_else(|e| panic!("{e:#}"));
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        let groups = yaml["groups"].as_sequence().into_iter().flatten();
        for rule in groups.flat_map(|group| group["rules"].as_sequence().into_iter().flatten()) {
            let name = rule["record"].as_str().or_else(|| rule["alert"].as_str());
            let expr = rule["expr"].as_str();
            if let (Some(name), Some(expr)) = (name, expr) {
                out.push((file.clone(), name.to_string(), expr.to_string()));
            }
        }
    }
    out
}
