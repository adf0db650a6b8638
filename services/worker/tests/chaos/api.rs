//! The API as the test sees it: running in process on its own runtime, and reached over HTTP
//! through a client that records every answer (by status and route, and what must never happen:
//! a 500, a hang, an error that is not a problem document, a 503 outside a fault).

use crate::faults::FaultKind;
use crate::util::lock;
use crate::{PG_POOL_MAX, PG_POOL_TIMEOUT_MS, REQUEST_TIMEOUT_MS};
use otel::FromEnv;
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The API on its own runtime (as in its own process), so the test's work never delays it.
pub struct InProcessApi {
    pub base: String,
    /// A token per role; the test's requests carry the admin's.
    pub tokens: testkit::tokens::ApiTokens,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl InProcessApi {
    pub fn start(pg_url: &str, redis_url: &str) -> anyhow::Result<InProcessApi> {
        let tokens = testkit::tokens::ApiTokens::scratch()?;
        let vars: Vec<(&str, String)> = vec![
            ("DATABASE_URL", pg_url.to_string()),
            ("REDIS_URL", redis_url.to_string()),
            ("PG_POOL_MAX", PG_POOL_MAX.to_string()),
            ("PG_POOL_TIMEOUT_MS", PG_POOL_TIMEOUT_MS.to_string()),
            ("BREAKER_OPEN_MS", "1000".to_string()),
            ("BREAKER_FAILURES", "3".to_string()),
            ("REQUEST_TIMEOUT_MS", REQUEST_TIMEOUT_MS.to_string()),
            ("REDIS_POOL_TIMEOUT_MS", "300".to_string()),
            ("GRAPH_METRICS_INTERVAL_MS", "1000".to_string()),
            ("API_TOKENS_FILE", tokens.file.display().to_string()),
        ];
        let config = api::Config::from_lookup(|k| {
            vars.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone())
        })?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let base = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("chaos-api".into()).spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                api::run(config, listener, async {
                    let _ = rx.await;
                })
                .await
            })
        })?;
        Ok(InProcessApi { base, tokens, shutdown: Some(tx), thread: Some(thread) })
    }

    /// Stops the API and waits (at most 10 s) for it.
    pub fn stop(mut self) {
        self.stop_in_place();
    }

    fn stop_in_place(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let until = Instant::now() + Duration::from_secs(10);
            while !thread.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
            if thread.is_finished() {
                match thread.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => eprintln!("chaos: the API stopped with an error: {e:#}"),
                    Err(_) => eprintln!("chaos: the API thread panicked"),
                }
            }
        }
    }
}

impl Drop for InProcessApi {
    fn drop(&mut self) {
        self.stop_in_place();
    }
}

/// Whether a fault is on (or just ended: the breaker and the pool recover within a few seconds).
#[derive(Default)]
pub struct FaultClock {
    active: Mutex<Option<FaultKind>>,
    ended: Mutex<Option<(FaultKind, Instant)>>,
}

impl FaultClock {
    pub fn begin(&self, kind: FaultKind) {
        *lock(&self.active) = Some(kind);
    }

    pub fn end(&self) {
        if let Some(kind) = lock(&self.active).take() {
            *lock(&self.ended) = Some((kind, Instant::now()));
        }
    }

    /// The fault on now, or one that ended less than 5 s ago.
    fn current(&self) -> Option<String> {
        if let Some(kind) = *lock(&self.active) {
            return Some(format!("{kind:?}"));
        }
        let ended = *lock(&self.ended);
        ended
            .filter(|(_, at)| at.elapsed() < Duration::from_secs(5))
            .map(|(kind, at)| format!("{:.1}s after {kind:?}", at.elapsed().as_secs_f64()))
    }
}

/// Every answer of the API, by status, and what must not happen.
#[derive(Default)]
pub struct Tally {
    pub by_status: BTreeMap<u16, u64>,
    pub by_route: BTreeMap<(String, u16), u64>,
    pub unavailable_in_faults: u64,
    pub unavailable_outside: Vec<String>,
    pub server_errors: Vec<String>,
    pub not_problems: Vec<String>,
    pub hangs: Vec<String>,
    pub transport: Vec<String>,
}

#[derive(Clone)]
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub tally: Arc<Mutex<Tally>>,
    pub faults: Arc<FaultClock>,
}

impl Api {
    /// One request, recorded. `None` if no answer came (a hang or a transport error).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<(u16, Value)> {
        let fault = self.faults.current();
        let started = Instant::now();
        let mut request = self.client.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let what = format!("{method} {path}");
        let answer = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let problem = response
                    .headers()
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/problem+json"));
                response.text().await.map(|text| (status, problem, text))
            }
            Err(e) => Err(e),
        };
        let fault = fault.or_else(|| self.faults.current());
        let mut tally = lock(&self.tally);
        let (status, problem, text) = match answer {
            Ok(answer) => answer,
            Err(e) if e.is_timeout() => {
                tally.hangs.push(format!(
                    "{what} unanswered after {:.1}s (fault: {fault:?})",
                    started.elapsed().as_secs_f64()
                ));
                return None;
            }
            Err(e) => {
                tally.transport.push(format!("{what}: {e:#} (fault: {fault:?})"));
                return None;
            }
        };
        *tally.by_status.entry(status).or_default() += 1;
        *tally.by_route.entry((route_of(&method, path), status)).or_default() += 1;
        let short: String = text.chars().take(300).collect();
        if status >= 500 && status != 503 {
            tally.server_errors.push(format!("{what} -> {status} (fault: {fault:?}): {short}"));
        }
        if status >= 400 && !problem {
            tally.not_problems.push(format!("{what} -> {status} without a problem: {short}"));
        }
        if status == 503 && problem {
            if fault.is_some() {
                tally.unavailable_in_faults += 1;
            } else {
                tally.unavailable_outside.push(format!("{what}: {short}"));
            }
        }
        drop(tally);
        Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }
}

/// The route template of a path, for the tally (ids replaced).
fn route_of(method: &Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path
        .split('/')
        .map(|p| if p.parse::<Uuid>().is_ok() || p.parse::<i64>().is_ok() { "{id}" } else { p })
        .collect();
    format!("{method} {}", parts.join("/"))
}
