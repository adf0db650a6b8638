//! Series recorded from a real fault: the API's request counters around the Postgres hang of the
//! fault matrix, by status code, written as promtool `input_series` (15 s apart, cumulative, summed
//! over instances and routes) to `target/e2e/recorded/`. The SLO alerts' windows are hours long, so
//! they are proven by promtool, not live; prometheus/tests/slo_recorded_test.yaml feeds them these
//! recorded values (copied from such a file) instead of invented ones.

use super::prom;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What is recorded: the two SLOs' inputs (all requests and the fast ones, by status code).
const SERIES: &[(&str, &str)] = &[
    (
        "http_server_request_duration_seconds_count",
        r#"sum by (job, http_response_status_code) (http_server_request_duration_seconds_count{job="orgraph/api", http_route!~"/health/.*"})"#,
    ),
    (
        "http_server_request_duration_seconds_bucket",
        r#"sum by (job, http_response_status_code, le) (http_server_request_duration_seconds_bucket{job="orgraph/api", http_route!~"/health/.*", le="0.5"})"#,
    ),
];

/// Unix seconds now.
pub fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Writes the recorded series from `start` (Unix seconds) to now into `target/e2e/recorded/<name>.yaml`
/// and returns the path. A sample Prometheus does not have (a restart between exports) repeats the
/// last one, as a cumulative counter would read.
pub fn write(name: &str, start: f64) -> anyhow::Result<std::path::PathBuf> {
    let end = now();
    let mut out = format!(
        "# Recorded by `cargo xtask e2e` ({name}): {:.0} s of the API's request counters, 15 s \
         apart, summed over instances and routes (health checks aside).\ninput_series:\n",
        end - start
    );
    for (metric, expr) in SERIES {
        for (labels, values) in prom::query_range(expr, start, end, 15)? {
            let mut selector = format!("{metric}{{job=\"orgraph/api\"");
            for key in ["http_response_status_code", "le"] {
                if let Some(v) = labels[key].as_str() {
                    let _ = write!(selector, ", {key}=\"{v}\"");
                }
            }
            selector.push('}');
            let mut last = 0.0;
            let values: Vec<String> = values
                .into_iter()
                .map(|v| {
                    last = v.unwrap_or(last);
                    format!("{last:.0}")
                })
                .collect();
            let _ = writeln!(out, "  - series: '{selector}'\n    values: '{}'", values.join(" "));
        }
    }
    save(name, &out)
}

/// Writes `text` to `target/e2e/recorded/<name>.yaml` and returns the path.
fn save(name: &str, text: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = testkit::repo_root().join("target").join("e2e").join("recorded");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// How long before a fault the recording starts: the healthy traffic it interrupts.
pub const BEFORE: Duration = Duration::from_secs(120);

/// Writes the series `selectors` select, from `start` (Unix seconds) to now, 15 s apart and with
/// every label, as promtool `input_series` into `target/e2e/recorded/<name>.yaml`; returns the
/// path. The infrastructure alerts' promtool tests (prometheus/tests/infrastructure_recorded_test.yaml)
/// are fed from such a file, recorded while the matrix filled Postgres' connections and made
/// Redis evict. A missing sample repeats the last one (a gap would read as a restart).
pub fn write_series(
    name: &str,
    start: f64,
    selectors: &[&str],
) -> anyhow::Result<std::path::PathBuf> {
    let end = now();
    let mut out = format!(
        "# Recorded by `cargo xtask e2e` ({name}): {:.0} s, 15 s apart, every label as Prometheus \
         stored it.\ninput_series:\n",
        end - start
    );
    for selector in selectors {
        for (labels, values) in prom::query_range(selector, start, end, 15)? {
            let name = labels["__name__"].as_str().unwrap_or_default();
            let mut pairs: Vec<String> = labels
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| format!("{k}=\"{}\"", v.as_str().unwrap_or_default()))
                .collect();
            pairs.sort();
            let mut last = None;
            let values: Vec<String> = values
                .into_iter()
                .map(|v| {
                    last = v.or(last);
                    last.map_or("_".to_string(), |v: f64| format!("{v}"))
                })
                .collect();
            let _ = writeln!(
                out,
                "  - series: '{name}{{{}}}'\n    values: '{}'",
                pairs.join(", "),
                values.join(" ")
            );
        }
    }
    save(name, &out)
}
