//! Sending one planned request: through a shared connection pool, with a 10 s deadline for the
//! whole exchange (body included), recording the outcome and teaching the scenario.

use super::announced;
use super::scenario::{Body, Credentials, Planned, Scenario};
use super::stats::{Outcome, Recorder};
use super::target::Target;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every request's deadline, from sending to the last byte of the response: above the API's own
/// `REQUEST_TIMEOUT_MS` (10 s by default), so a request the API gives up on is seen as the API's
/// 503, not as a timeout of ours.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A response: its status and, for error statuses, the problem's `detail` (or the body's start).
pub struct Reply {
    pub status: u16,
    /// What the API said about an error (empty for 1xx–3xx).
    pub detail: String,
}

/// The sender, cheap to clone into each request's task.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    target: Arc<Target>,
    recorder: Arc<Recorder>,
    scenario: Arc<Scenario>,
    /// `Bearer <token>`: the run's `Authorization` header.
    bearer: Arc<str>,
}

/// The `Authorization` of the bad requests that carry a token the API does not know.
const WRONG_BEARER: &str = "Bearer not-a-token-of-this-api";

impl Sender {
    /// A sender to `target` keeping up to `idle` connections open, sending `token`.
    pub fn new(
        target: Target,
        token: &str,
        idle: usize,
        recorder: Arc<Recorder>,
        scenario: Arc<Scenario>,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(idle)
            .no_proxy()
            .user_agent(concat!("orgraph-xtask-load/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("building the HTTP client: {}", describe(&e)))?;
        let bearer = Arc::from(format!("Bearer {token}"));
        Ok(Sender { client, target: Arc::new(target), recorder, scenario, bearer })
    }

    /// Sends `planned`, records how it ended, and teaches the scenario what the response says.
    /// `Err` is a transport error (no complete response), described.
    pub async fn send(&self, planned: Planned) -> Result<Reply, String> {
        let Planned { kind, method, path, route, body, credentials, then } = planned;
        self.recorder.sent(kind);
        let url = self.target.url(&path);
        let authorization = match credentials {
            Credentials::Token => Some(&*self.bearer),
            Credentials::Missing => None,
            Credentials::Wrong => Some(WRONG_BEARER),
        };
        let mut request = self.client.request(method, &url);
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        let request = match body {
            Body::Empty | Body::Announced(..) => request,
            Body::Json(ref value) => request.json(value),
            Body::Raw(content_type, bytes) => {
                request.header(CONTENT_TYPE, content_type).body(bytes)
            }
        };
        let started = Instant::now();
        let result = match body {
            Body::Announced(content_type, bytes) => {
                announced::post(&url, content_type, bytes, authorization, REQUEST_TIMEOUT).await
            }
            _ => async {
                let response = request.send().await?;
                let status = response.status().as_u16();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, body.to_vec()))
            }
            .await
            .map_err(|e| describe(&e)),
        };
        let took = started.elapsed();
        match result {
            Ok((status, body)) => {
                self.recorder.ended(route, kind, Outcome::Status(status), took);
                let detail = if status >= 400 { detail(&body) } else { String::new() };
                self.scenario.learn(then, status, &body);
                Ok(Reply { status, detail })
            }
            Err(why) => {
                self.recorder.ended(route, kind, Outcome::Transport(&why), took);
                Err(why)
            }
        }
    }
}

/// The `detail` of a problem body, else the first 200 characters of the body.
fn detail(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

/// A transport error with its causes (reqwest's own message names only the URL).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("timed out after {} s", REQUEST_TIMEOUT.as_secs());
    }
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}
