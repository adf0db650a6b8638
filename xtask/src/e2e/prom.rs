//! The few Prometheus HTTP API calls the live proof needs: instant queries, the rule groups with
//! their health, and the alerts with their state; and the one Alertmanager call: which alerts an
//! inhibition holds back. The plain functions ask the native stack's Prometheus; the `*_on`
//! ones any server of the same API (the HA proof's replicas, Thanos Query), with extra
//! parameters (Thanos Query's `dedup`).

use anyhow::Context;
use serde_json::Value;
use std::time::Duration;

/// Prometheus of the native stack.
pub const PROMETHEUS: &str = "http://127.0.0.1:9090";

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .new_agent()
}

fn get(path: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
    get_on(PROMETHEUS, path, params)
}

/// `GET {base}{path}?{params}` of a Prometheus-API server; its `data`.
fn get_on(base: &str, path: &str, params: &[(&str, &str)]) -> anyhow::Result<Value> {
    let mut request = agent().get(format!("{base}{path}"));
    for (k, v) in params {
        request = request.query(*k, *v);
    }
    let mut response = request.call().with_context(|| format!("GET {path}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().with_context(|| format!("GET {path}: body"))?;
    let body: Value = serde_json::from_str(&text).with_context(|| format!("GET {path}: {text}"))?;
    if status != 200 || body["status"] != "success" {
        anyhow::bail!(
            "GET {path} {params:?}: {status} {}",
            body["error"].as_str().unwrap_or("(no error text)")
        );
    }
    Ok(body["data"].clone())
}

/// The result vector of an instant query (an error if Prometheus cannot parse or run it).
pub fn query(expr: &str) -> anyhow::Result<Vec<Value>> {
    query_on(PROMETHEUS, expr, &[])
}

/// [`query`] on the server at `base`, with `extra` parameters.
pub fn query_on(base: &str, expr: &str, extra: &[(&str, &str)]) -> anyhow::Result<Vec<Value>> {
    let params: Vec<(&str, &str)> =
        [("query", expr)].into_iter().chain(extra.iter().copied()).collect();
    let data = get_on(base, "/api/v1/query", &params)?;
    Ok(match data["resultType"].as_str() {
        Some("vector") | Some("matrix") => data["result"].as_array().cloned().unwrap_or_default(),
        // A scalar or string always has a value.
        _ => vec![data["result"].clone()],
    })
}

/// The single number of a query that returns one sample.
pub fn value(expr: &str) -> anyhow::Result<Option<f64>> {
    value_on(PROMETHEUS, expr, &[])
}

/// [`value`] on the server at `base`, with `extra` parameters.
pub fn value_on(base: &str, expr: &str, extra: &[(&str, &str)]) -> anyhow::Result<Option<f64>> {
    let result = query_on(base, expr, extra)?;
    Ok(result.first().and_then(|s| s["value"][1].as_str()).and_then(|v| v.parse().ok()))
}

/// Every rule: (group, name, kind, health, last error, query).
pub fn rules() -> anyhow::Result<Vec<Rule>> {
    let data = get("/api/v1/rules", &[])?;
    let mut out = Vec::new();
    for group in data["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            out.push(Rule {
                group: group["name"].as_str().unwrap_or_default().to_string(),
                name: rule["name"].as_str().unwrap_or_default().to_string(),
                kind: rule["type"].as_str().unwrap_or_default().to_string(),
                health: rule["health"].as_str().unwrap_or_default().to_string(),
                error: rule["lastError"].as_str().unwrap_or_default().to_string(),
                query: rule["query"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    Ok(out)
}

/// A rule as Prometheus' `/api/v1/rules` reports it.
#[derive(Debug, Clone)]
pub struct Rule {
    pub group: String,
    /// Recorded series or alert name.
    pub name: String,
    /// `recording` or `alerting`.
    pub kind: String,
    /// `ok`, `err` or `unknown`.
    pub health: String,
    /// The last evaluation error (empty if none).
    pub error: String,
    pub query: String,
}

/// The alerts Prometheus holds now: (name, state `pending`/`firing`, labels).
pub fn alerts() -> anyhow::Result<Vec<(String, String, Value)>> {
    let data = get("/api/v1/alerts", &[])?;
    Ok(data["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap_or_default().to_string(),
                a["state"].as_str().unwrap_or_default().to_string(),
                a["labels"].clone(),
            )
        })
        .collect())
}

/// Alertmanager of the native stack.
pub const ALERTMANAGER: &str = "http://127.0.0.1:9093";

/// The alerts Alertmanager holds back by an inhibition now: each one's labels.
pub fn inhibited() -> anyhow::Result<Vec<Value>> {
    let url = format!(
        "{ALERTMANAGER}/api/v2/alerts?active=false&silenced=false&unprocessed=false&inhibited=true"
    );
    let (status, body) = testkit::http_get(&url)?;
    anyhow::ensure!(status == 200, "GET {url}: {status} {body}");
    let alerts: Vec<Value> =
        serde_json::from_str(&body).with_context(|| format!("GET {url}: {body}"))?;
    Ok(alerts
        .into_iter()
        .filter(|a| a["status"]["inhibitedBy"].as_array().is_some_and(|by| !by.is_empty()))
        .map(|a| a["labels"].clone())
        .collect())
}

/// A range query at `step_s`-second steps from `start` to `end` (Unix seconds): each series' labels
/// and its values, `None` where the series had no sample.
pub fn query_range(
    expr: &str,
    start: f64,
    end: f64,
    step_s: u32,
) -> anyhow::Result<Vec<(Value, Vec<Option<f64>>)>> {
    query_range_on(PROMETHEUS, expr, start, end, step_s)
}

/// [`query_range`] on the server at `base`.
pub fn query_range_on(
    base: &str,
    expr: &str,
    start: f64,
    end: f64,
    step_s: u32,
) -> anyhow::Result<Vec<(Value, Vec<Option<f64>>)>> {
    let (from, to, step) = (format!("{start:.3}"), format!("{end:.3}"), step_s.to_string());
    let data = get_on(
        base,
        "/api/v1/query_range",
        &[("query", expr), ("start", &from), ("end", &to), ("step", &step)],
    )?;
    let steps = ((end - start) / f64::from(step_s)).floor() as usize + 1;
    let mut out = Vec::new();
    for series in data["result"].as_array().into_iter().flatten() {
        let mut values = vec![None; steps];
        for point in series["values"].as_array().into_iter().flatten() {
            let at = point[0].as_f64().unwrap_or(start);
            let i = ((at - start) / f64::from(step_s)).round() as usize;
            if let (Some(slot), Some(v)) =
                (values.get_mut(i), point[1].as_str().and_then(|v| v.parse().ok()))
            {
                *slot = Some(v);
            }
        }
        out.push((series["metric"].clone(), values));
    }
    Ok(out)
}

/// Asks Prometheus to reload its configuration (`POST /-/reload`, the stack runs it with
/// `--web.enable-lifecycle`): `Ok(true)` if it loaded, `Ok(false)` if Prometheus refused it (it
/// keeps running the configuration it had), with its answer.
pub fn reload() -> anyhow::Result<(bool, String)> {
    let mut response = agent().post(format!("{PROMETHEUS}/-/reload")).send_empty()?;
    let ok = response.status().is_success();
    Ok((ok, response.body_mut().read_to_string().unwrap_or_default()))
}
