//! The worker under test: a real Postgres (started by `testkit`), the schema migrated, and a
//! job context with test settings; or the whole worker, in process or as its own binary.

#![allow(dead_code)]

use otel::FromEnv;
use serde_json::Value;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;
use worker::{Config, Ctx};

/// Postgres with the schema, and a pool on it.
pub struct Db {
    pub pg: testkit::Postgres,
    pub pool: PgPool,
}

impl Db {
    pub async fn start() -> Db {
        let pg = tokio::task::spawn_blocking(testkit::Postgres::start)
            .await
            .expect("join")
            .expect("postgres starts");
        let pool = PgPool::connect(&pg.url()).await.expect("connect");
        domain::migrate(&pool).await.expect("migrate");
        Db { pg, pool }
    }

    /// Records and queues a job, as the API does.
    pub async fn enqueue(&self, kind: domain::JobKind, params: Value) -> Uuid {
        let mut tx = self.pool.begin().await.expect("begin");
        let id = domain::enqueue(&mut tx, kind, &params).await.expect("enqueue");
        tx.commit().await.expect("commit");
        id
    }

    /// A job row's status, attempts and error.
    pub async fn job(&self, id: Uuid) -> (String, i32, Option<String>, Option<Value>) {
        sqlx::query_as("SELECT status, attempts, error, result FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .expect("job row")
    }

    /// Waits until job `id` is done or failed; returns its final row.
    pub async fn finished(
        &self,
        id: Uuid,
        deadline: Duration,
    ) -> (String, i32, Option<String>, Option<Value>) {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let row = self.job(id).await;
            if row.0 == "done" || row.0 == "failed" {
                return row;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "timed out after {deadline:?} waiting for job {id} to finish; it is {row:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Test settings on top of the defaults.
pub fn config(db_url: &str, export_dir: &std::path::Path, extra: &[(&str, &str)]) -> Config {
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), db_url.into()),
        ("EXPORT_DIR".into(), export_dir.display().to_string()),
        ("RETRY_BASE_MS".into(), "50".into()),
        ("HEARTBEAT_MS".into(), "500".into()),
        ("MISSED_HEARTBEATS".into(), "2".into()),
        ("QUEUE_STATS_INTERVAL_MS".into(), "200".into()),
        ("WORKER_HEALTH_ADDR".into(), "127.0.0.1:0".into()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_lookup(|k| vars.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v.clone()))
        .expect("test config")
}

/// A job context on `db` with `extra` settings.
pub fn ctx(db: &Db, export_dir: &std::path::Path, extra: &[(&str, &str)]) -> Ctx {
    Ctx::new(db.pool.clone(), config(&db.pg.url(), export_dir, extra))
}

/// A fresh scratch directory for export files.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("orgraph-worker-test-{name}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Headers that make every request of a client the admin's (the API's tokens in `tokens`).
pub fn admin_headers(tokens: &testkit::tokens::ApiTokens) -> reqwest::header::HeaderMap {
    let bearer = testkit::tokens::ApiTokens::bearer(&tokens.admin);
    let value = reqwest::header::HeaderValue::from_str(&bearer).expect("a token is a header value");
    reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)])
}
