//! The API under test: real Postgres and Redis (started by `testkit` on free ports, never mocks)
//! and the service itself, in process, on a free loopback port, reached over real HTTP.

#![allow(dead_code)]

use otel::FromEnv;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Postgres, Redis and the API.
pub struct TestApi {
    pub pg: testkit::Postgres,
    pub redis: testkit::Redis,
    pub base: String,
    /// A token of each role; [`TestApi::send`] uses the admin's, [`TestApi::send_as`] any.
    pub tokens: testkit::tokens::ApiTokens,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// Asserts an RFC 9457 problem with `status` whose detail contains `detail`.
    pub fn assert_problem(&self, status: u16, detail: &str) {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text);
        assert_eq!(self.header("content-type"), "application/problem+json", "{}", self.text);
        assert_eq!(self.body["status"], status, "{}", self.text);
        let got = self.body["detail"].as_str().unwrap_or_default();
        assert!(got.contains(detail), "detail {got:?} should contain {detail:?}");
        assert!(self.body["title"].is_string() && self.body["type"].is_string(), "{}", self.text);
    }
}

impl TestApi {
    /// Starts Postgres, Redis and the API with `extra` settings on top of test defaults.
    pub async fn start(extra: &[(&str, &str)]) -> TestApi {
        let (pg, redis) = tokio::task::spawn_blocking(|| {
            let pg = testkit::Postgres::start().expect("postgres starts");
            let redis = testkit::Redis::start().expect("redis starts");
            (pg, redis)
        })
        .await
        .expect("servers start");
        let mut api = TestApi {
            pg,
            redis,
            base: String::new(),
            tokens: testkit::tokens::ApiTokens::scratch().expect("API tokens"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            shutdown: None,
            task: None,
        };
        api.start_api(extra).await;
        api.wait_ready().await;
        api
    }

    /// Waits until readiness says 200: the schema is migrated (the API migrates in the background
    /// when Postgres took more than a second to answer at start, as it may on a loaded machine).
    pub async fn wait_ready(&self) {
        let url = format!("{}/health/ready", self.base);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.client.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after 30 s waiting for the API to be ready at {url}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the API (again, after [`TestApi::stop`]) and waits until it is live.
    pub async fn start_api(&mut self, extra: &[(&str, &str)]) {
        let mut vars: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), self.pg.url()),
            ("REDIS_URL".into(), self.redis.url()),
            ("BREAKER_OPEN_MS".into(), "1000".into()),
            ("BREAKER_FAILURES".into(), "3".into()),
            ("REDIS_POOL_TIMEOUT_MS".into(), "300".into()),
            ("PG_POOL_TIMEOUT_MS".into(), "1000".into()),
            ("GRAPH_METRICS_INTERVAL_MS".into(), "200".into()),
            ("API_TOKENS_FILE".into(), self.tokens.file.display().to_string()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let config = api::Config::from_lookup(|k| {
            vars.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.clone())
        })
        .expect("test config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        self.base = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        self.shutdown = Some(tx);
        self.task = Some(tokio::spawn(api::run(config, listener, async {
            let _ = rx.await;
        })));
        let url = format!("{}/health/live", self.base);
        let client = self.client.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(task) = &self.task
                && task.is_finished()
            {
                let task = self.task.take().expect("task");
                panic!("the API stopped while starting: {:?}", task.await);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after 30 s waiting for the API at {url}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Any request, as the admin; `body` is sent as is with `content_type`.
    pub async fn send(&self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Reply {
        let admin = self.tokens.admin.clone();
        self.send_as(Some(&admin), method, path, body).await
    }

    /// Any request with `token` as its bearer token (`None`: no `Authorization` header).
    pub async fn send_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, body, text }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, json: Value) -> Reply {
        self.send(Method::POST, path, Some(("application/json", json.to_string().into_bytes())))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }

    /// Runs SQL against the API's database and returns psql's unaligned output.
    pub fn sql(&self, query: &str) -> String {
        self.pg.psql(&self.pg.url(), query).expect("psql").trim().to_string()
    }

    /// Stops the API gracefully and waits for it.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

/// Polls `check` until it returns `Some`, for at most `deadline`, naming `what` on failure.
pub async fn eventually<T>(
    what: &str,
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
