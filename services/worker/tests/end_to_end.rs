//! Each job kind end to end: accepted through the API's own code path (the API in process, over
//! HTTP), run by the worker (in process), with its effect checked in Postgres and, for exports, on
//! disk. Then the worker's metrics for what it did.

mod support;

use otel::FromEnv;
use otel::metrics::testing::Recorder;
use serde_json::{Value, json};
use std::time::Duration;
use support::Db;
use tokio::sync::oneshot;

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.expect("json")
    }

    async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("json")
    }

    /// Polls a job resource until it is done or failed.
    async fn finished(&self, path: &str) -> Value {
        let until = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let job = self.get(path).await;
            if job["status"] == "done" || job["status"] == "failed" {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < until,
                "timed out after 60 s waiting for {path}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_job_kind_runs_end_to_end() {
    let recorder = Recorder::global();
    let db = Db::start().await;
    let redis =
        tokio::task::spawn_blocking(testkit::Redis::start).await.expect("join").expect("redis");

    // The API.
    let tokens = testkit::tokens::ApiTokens::scratch().expect("API tokens");
    let api_config = api::Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some(db.pg.url()),
        "REDIS_URL" => Some(redis.url()),
        "API_TOKENS_FILE" => Some(tokens.file.display().to_string()),
        _ => None,
    })
    .expect("api config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let api = Api {
        base: format!("http://{}", listener.local_addr().expect("addr")),
        client: reqwest::Client::builder()
            .default_headers(support::admin_headers(&tokens))
            .build()
            .expect("client"),
    };
    let (api_stop, api_stopped) = oneshot::channel::<()>();
    let api_task = tokio::spawn(api::run(api_config, listener, async {
        let _ = api_stopped.await;
    }));

    // The worker.
    let dir = support::scratch_dir("e2e");
    let config = support::config(&db.pg.url(), &dir, &[]);
    let health = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let health_url = format!("http://{}/health/ready", health.local_addr().expect("addr"));
    let (worker_stop, worker_stopped) = oneshot::channel::<()>();
    let worker_task = tokio::spawn(worker::run(config, health, async {
        let _ = worker_stopped.await;
    }));

    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while reqwest::get(&health_url).await.map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        assert!(tokio::time::Instant::now() < until, "timed out waiting for {health_url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{}/health/live", api.base)).await.is_err() {
        assert!(tokio::time::Instant::now() < until, "timed out waiting for the API");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    api.post("/api/graph/seed", json!({"employees": 300, "avg_reports": 4, "seed": 11})).await;

    // Causal analysis: scores for every employee, the summary in the result.
    let accepted = api.post("/api/analysis", json!({"iterations": 40, "samples": 300})).await;
    let job = api.finished(&format!("/api/analysis/{}", accepted["id"].as_str().unwrap())).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["result"]["summary"]["node_count"], 300);
    assert_eq!(job["result"]["summary"]["betweenness_exact"], true);
    let scored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM influence_scores WHERE job_id = $1::uuid")
            .bind(accepted["id"].as_str().unwrap())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(scored, 300);
    let sum: f64 =
        sqlx::query_scalar("SELECT sum(pagerank) FROM influence_scores WHERE job_id = $1::uuid")
            .bind(accepted["id"].as_str().unwrap())
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!((sum - 1.0).abs() < 1e-6, "PageRank sums to 1: {sum}");

    // Exports, both formats: one file each, named after the job, with every employee.
    for (format, header) in
        [("csv", Some("id,name,team,title,degree,pagerank,betweenness")), ("jsonl", None)]
    {
        let accepted =
            api.post("/api/exports", json!({"kind": "employee_metrics", "format": format})).await;
        let id = accepted["id"].as_str().unwrap().to_string();
        let job = api.finished(&format!("/api/exports/{id}")).await;
        assert_eq!(job["status"], "done", "{job}");
        let path = job["result"]["path"].as_str().unwrap();
        assert_eq!(path, dir.join(format!("{id}.{format}")).display().to_string());
        let text = std::fs::read_to_string(path).expect("export file");
        assert_eq!(job["result"]["bytes"], text.len() as u64);
        let lines: Vec<&str> = text.lines().collect();
        match header {
            Some(h) => {
                assert_eq!(lines[0], h);
                assert_eq!(lines.len(), 301);
            }
            None => {
                assert_eq!(lines.len(), 300);
                let first: Value = serde_json::from_str(lines[0]).unwrap();
                assert_eq!(first["id"], 1);
                assert!(first["pagerank"].as_f64().unwrap() > 0.0, "scores of the latest analysis");
            }
        }
    }
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files.len(), 2, "exactly the two export files, no temporaries: {files:?}");

    // An intervention: proposed, executed (the graph changes), rolled back (it changes back).
    let manager_of = async |employee: i64| -> Option<i64> {
        sqlx::query_scalar(
            "SELECT target_id FROM relations WHERE source_id = $1 AND kind = 'reports_to'",
        )
        .bind(employee)
        .fetch_optional(&db.pool)
        .await
        .unwrap()
    };
    let before = manager_of(250).await;
    let proposal = api
        .post(
            "/api/interventions",
            json!({"kind": "reassign", "employee_id": 250, "new_manager_id": 3, "reason": "e2e"}),
        )
        .await;
    let iv = proposal["id"].as_str().unwrap().to_string();
    let exec = api.post(&format!("/api/interventions/{iv}/execute"), json!({})).await;
    let job = api.finished(exec["location"].as_str().unwrap()).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(manager_of(250).await, Some(3));
    assert_eq!(api.get(&format!("/api/interventions/{iv}")).await["state"], "executed");
    let back = api.post(&format!("/api/interventions/{iv}/rollback"), json!({})).await;
    let job = api.finished(back["location"].as_str().unwrap()).await;
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(manager_of(250).await, before);
    assert_eq!(api.get(&format!("/api/interventions/{iv}")).await["state"], "rolled_back");

    // A rollback job delivered twice changes nothing the second time.
    let mut tx = db.pool.begin().await.unwrap();
    let again = domain::enqueue(
        &mut tx,
        domain::JobKind::InterventionRollback,
        &json!({"intervention_id": iv}),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (status, _, _, result) = db.finished(again, Duration::from_secs(30)).await;
    assert_eq!(status, "done");
    assert_eq!(result.unwrap()["changed"], false);
    assert_eq!(manager_of(250).await, before);

    // The worker's metrics.
    let points = recorder.collect();
    points.assert_conforms();
    let completed =
        |t| points.value("orgraph.task.completed", &[("task.type", t), ("task.status", "success")]);
    assert_eq!(completed("analysis"), 1.0);
    assert_eq!(completed("export"), 2.0);
    assert_eq!(completed("intervention_execute"), 1.0);
    assert_eq!(completed("intervention_rollback"), 2.0);
    // Nothing timed out or failed, and those series say so at 0 (they exist from start-up).
    for task in ["analysis", "export", "intervention_execute", "intervention_rollback"] {
        for status in ["failure", "timeout", "panic"] {
            let labels = [("task.type", task), ("task.status", status)];
            assert_eq!(points.value("orgraph.task.completed", &labels), 0.0, "{task} {status}");
        }
    }
    assert_eq!(points.value("orgraph.export.requests", &[("export.status", "failure")]), 0.0);
    assert_eq!(points.value("orgraph.export.requests", &[("export.status", "success")]), 2.0);
    assert!(points.sum("orgraph.export.size", &[("export.format", "csv")]) > 1000.0);
    assert_eq!(
        points.value("orgraph.intervention.executions", &[("intervention.outcome", "success")]),
        1.0
    );
    // Two rollback jobs finished, but the redelivered one changed nothing: one rollback.
    assert_eq!(
        points.value("orgraph.intervention.rollbacks", &[("intervention.outcome", "success")]),
        1.0
    );
    assert_eq!(
        points.count(
            "orgraph.graph.update.duration",
            &[("graph.operation", "intervention_rollback")]
        ),
        1
    );
    assert_eq!(
        points
            .count("orgraph.graph.update.duration", &[("graph.operation", "intervention_execute")]),
        1
    );
    assert_eq!(
        points.value("orgraph.worker.concurrency", &[("messaging.destination.name", "export")]),
        2.0
    );
    assert_eq!(points.value("orgraph.worker.active", &[]), 0.0);
    let consumed = |q| {
        points.value("messaging.client.consumed.messages", &[("messaging.destination.name", q)])
    };
    assert_eq!(
        (consumed("analysis"), consumed("export"), consumed("intervention")),
        (1.0, 2.0, 3.0)
    );

    // Graceful shutdown of both.
    let _ = worker_stop.send(());
    worker_task.await.expect("join").expect("worker stops cleanly");
    let _ = api_stop.send(());
    api_task.await.expect("join").expect("api stops cleanly");
    std::fs::remove_dir_all(dir).ok();
}
