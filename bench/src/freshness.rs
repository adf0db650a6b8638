//! Freshness: how long after a request its count is visible in Prometheus, through the whole
//! pipeline (the API's periodic export, the collector, Prometheus' scrape). It needs Prometheus
//! with the repo's `prometheus/prometheus.yml`, whose targets are the fixed compose ports, so it
//! runs the native stack: `cargo xtask stack up` (see [`NativeStack`]) with its state in
//! `<target>/bench/stack`
//! (fresh each time), on the compose ports, which must therefore be free. The stack is taken
//! down at the end, also on error.
//!
//! Each trial reads the current count of `POST /api/graph/nodes` in Prometheus, creates one
//! employee, and polls Prometheus until the count has grown: the time from the request to
//! then. The worst trial is reported; its bound is the export interval plus the scrape interval
//! (15 s each) plus a little for the request, the export and the scrape themselves.

use super::{Figures, NativeStack, Plan, fresh_dir};
use anyhow::Context;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::process::{Output, run as run_command};
use tokio::runtime::Runtime;

/// The stack's API.
const API: &str = "http://127.0.0.1:8000";

/// The stack's Prometheus.
const PROMETHEUS: &str = "http://127.0.0.1:9090";

/// The count the trials watch.
const QUERY: &str = "sum(http_server_request_duration_seconds_count{job=\"orgraph/api\",\
     http_route=\"/api/graph/nodes\",http_request_method=\"POST\"})";

/// How long `stack up` may take (it builds the API and the worker first).
const UP_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// How long a stop of the whole stack may take.
const DOWN_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Giving up on one trial.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Between two polls of Prometheus.
const POLL: Duration = Duration::from_millis(250);

/// Adds `freshness_s`: the worst of the trials, in seconds.
pub fn run(
    plan: Plan,
    native: &NativeStack,
    runtime: &Runtime,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    (native.ensure_ports_free)("the freshness benchmark")?;
    let dir = fresh_dir("stack")?;
    let stack = Stack { exe: (native.own_copy)(&dir)?, dir, dir_env: native.dir_env };
    eprintln!("[bench] freshness: cargo xtask stack up (state in {})", stack.dir.display());
    stack.run("up", UP_TIMEOUT)?;
    let token_file = stack.dir.join(native.token_file);
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| format!("reading the stack's API token {}", token_file.display()))?;
    let client = super::drive::client(1, token.trim())?;
    let mut worst: f64 = 0.0;
    for trial in 1..=plan.freshness_trials() {
        // Different phases against the export and scrape cycles.
        std::thread::sleep(Duration::from_secs(1 + 5 * (trial as u64 - 1)));
        let seconds = trial_seconds(runtime, &client, trial)?;
        eprintln!(
            "[bench] freshness trial {trial}/{}: visible in Prometheus after {seconds:.1}s",
            plan.freshness_trials()
        );
        worst = worst.max(seconds);
    }
    drop(stack);
    figures.add("freshness_s", format!("{worst:.1}"));
    Ok(())
}

/// One request, then the seconds until Prometheus counts it.
fn trial_seconds(runtime: &Runtime, client: &reqwest::Client, trial: usize) -> anyhow::Result<f64> {
    let before = query_value(QUERY)?.unwrap_or(0.0);
    let started = Instant::now();
    let status = runtime.block_on(async {
        let response = client
            .post(format!("{API}/api/graph/nodes"))
            .json(&serde_json::json!({"name": format!("freshness {trial}"), "team": "bench"}))
            .send()
            .await?;
        let status = response.status().as_u16();
        response.bytes().await?;
        Ok::<u16, reqwest::Error>(status)
    });
    let status = status.context("POST /api/graph/nodes")?;
    anyhow::ensure!(status == 201, "POST /api/graph/nodes answered {status}, not 201");
    loop {
        if let Some(now) = query_value(QUERY)?
            && now > before
        {
            return Ok(started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            started.elapsed() < VISIBLE_TIMEOUT,
            "the request was not counted in Prometheus within {VISIBLE_TIMEOUT:?} \
             (still {before}): {QUERY}"
        );
        std::thread::sleep(POLL);
    }
}

/// The value of an instant query returning at most one sample (`None`: no sample).
fn query_value(expr: &str) -> anyhow::Result<Option<f64>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let url = format!("{PROMETHEUS}/api/v1/query");
    // `query` percent-encodes the expression.
    let mut response =
        agent.get(&url).query("query", expr).call().with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().with_context(|| format!("GET {url}: body"))?;
    let body: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("GET {url}: {text}"))?;
    anyhow::ensure!(
        status == 200 && body["status"] == "success",
        "Prometheus answered {status} to {expr}: {text}"
    );
    parse_value(&body)
}

/// The first sample's value of a `vector` result.
fn parse_value(body: &serde_json::Value) -> anyhow::Result<Option<f64>> {
    let Some(sample) = body["data"]["result"].as_array().and_then(|r| r.first()) else {
        return Ok(None);
    };
    let text = sample["value"][1].as_str().context("a sample without a value")?;
    text.parse().map(Some).with_context(|| format!("`{text}` is not a number"))
}

/// The stack in `dir` (`dir_env` tells `exe` so), run by `exe` (a copy of the xtask binary);
/// `stack down` when dropped.
struct Stack {
    dir: PathBuf,
    exe: PathBuf,
    dir_env: &'static str,
}

impl Stack {
    fn run(&self, action: &str, timeout: Duration) -> anyhow::Result<()> {
        let mut command = Command::new(&self.exe);
        command
            .args(["stack", action])
            .env(self.dir_env, &self.dir)
            .current_dir(testkit::repo_root());
        run_command(
            &format!("cargo xtask stack {action}"),
            &mut command,
            Output::Prefixed("stack"),
            timeout,
        )
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        eprintln!("[bench] freshness: cargo xtask stack down");
        if let Err(e) = self.run("down", DOWN_TIMEOUT) {
            eprintln!("[bench] warning: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_vector_gives_its_first_value_and_an_empty_one_none() -> anyhow::Result<()> {
        let one = json!({"status": "success", "data": {"resultType": "vector",
            "result": [{"metric": {}, "value": [1700000000.1, "3"]}]}});
        assert_eq!(parse_value(&one)?, Some(3.0));
        let none = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
        assert_eq!(parse_value(&none)?, None);
        Ok(())
    }

    #[test]
    fn the_watched_query_names_the_route_template() {
        assert!(QUERY.contains("http_route=\"/api/graph/nodes\""));
        assert!(QUERY.contains("job=\"orgraph/api\""));
    }
}
