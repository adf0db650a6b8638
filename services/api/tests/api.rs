//! The API end to end against real Postgres and Redis: every endpoint's happy path, its table of
//! bad inputs (status and problem body), jobs accepted with their queue entry in the same
//! transaction, and Redis failing and coming back under the stats endpoint.

mod support;

use otel::FromEnv;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use support::{TestApi, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_the_openapi_document() {
    let api = TestApi::start(&[]).await;
    let live = api.get("/health/live").await;
    assert_eq!(live.status, 200);
    assert_eq!(live.body["status"], "ok");
    let ready = api.get("/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.body["checks"], json!({"postgres": "up", "redis": "up"}));

    let doc = api.get("/api/openapi.json").await;
    assert_eq!(doc.status, 200);
    let paths = doc.body["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/health/live", "get"),
        ("/health/ready", "get"),
        ("/api/graph/stats", "get"),
        ("/api/graph/nodes", "get"),
        ("/api/graph/nodes", "post"),
        ("/api/graph/nodes/{id}", "get"),
        ("/api/graph/nodes/{id}", "delete"),
        ("/api/graph/edges", "post"),
        ("/api/graph/edges/{id}", "delete"),
        ("/api/graph/seed", "post"),
        ("/api/analysis", "post"),
        ("/api/analysis/{id}", "get"),
        ("/api/exports", "post"),
        ("/api/exports/{id}", "get"),
        ("/api/jobs/{id}", "get"),
        ("/api/interventions", "post"),
        ("/api/interventions/{id}", "get"),
        ("/api/interventions/{id}/execute", "post"),
        ("/api/interventions/{id}/rollback", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} documented"
        );
    }
    assert!(doc.body["components"]["schemas"]["Problem"].is_object());
    // The served document is the completed one (routes/openapi.rs): security and problems.
    assert_eq!(doc.body["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let seed = &paths["/api/graph/seed"]["post"];
    assert_eq!(seed["security"], json!([{"bearer": ["admin"]}]));
    let problem = &seed["responses"]["415"]["content"]["application/problem+json"]["schema"];
    assert_eq!(problem["$ref"], "#/components/schemas/Problem");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graph_can_be_seeded_read_and_changed() {
    let api = TestApi::start(&[]).await;
    let seeded =
        api.post("/api/graph/seed", json!({"employees": 500, "avg_reports": 5, "seed": 42})).await;
    assert_eq!(seeded.status, 201, "{}", seeded.text);
    assert_eq!(seeded.body["nodes"], 500);
    let edges = seeded.body["edges"].as_i64().expect("edges");
    assert!(edges >= 499, "a tree plus collaborations: {edges}");

    let stats = api.get("/api/graph/stats").await;
    assert_eq!(stats.status, 200, "{}", stats.text);
    assert_eq!(stats.body["nodes"], 500);
    assert_eq!(stats.body["edges"], edges);
    let density = stats.body["density"].as_f64().expect("density");
    assert!((density - edges as f64 / (500.0 * 499.0)).abs() < 1e-12);
    assert!(stats.body["degree"]["max"].as_i64() >= Some(2));
    assert_eq!(
        stats.body["nodes"],
        api.sql("SELECT count(*) FROM employees").parse::<i64>().unwrap()
    );

    // The same seed gives the same graph.
    let again =
        api.post("/api/graph/seed", json!({"employees": 500, "avg_reports": 5, "seed": 42})).await;
    assert_eq!(again.body, seeded.body);
    let same = api.get("/api/graph/stats").await;
    assert_eq!(same.body, stats.body);

    // Paging walks every employee once.
    let mut after = 0;
    let mut seen = 0;
    loop {
        let page = api.get(&format!("/api/graph/nodes?limit=77&after={after}")).await;
        assert_eq!(page.status, 200);
        let items = page.body["items"].as_array().expect("items");
        seen += items.len();
        match page.body["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(seen, 500);

    // A new employee, their manager relation, and the stats follow (the cache is dropped).
    let node = api
        .post(
            "/api/graph/nodes",
            json!({"name": "Grace Hopper", "team": "team-01", "title": "Admiral"}),
        )
        .await;
    assert_eq!(node.status, 201, "{}", node.text);
    let id = node.body["id"].as_i64().expect("id");
    assert_eq!(node.header("location"), format!("/api/graph/nodes/{id}"));
    assert_eq!(api.get(&format!("/api/graph/nodes/{id}")).await.body["name"], "Grace Hopper");
    assert_eq!(api.get("/api/graph/stats").await.body["nodes"], 501);

    let edge = api
        .post("/api/graph/edges", json!({"source_id": id, "target_id": 1, "kind": "reports_to"}))
        .await;
    assert_eq!(edge.status, 201, "{}", edge.text);
    assert_eq!(edge.body["weight"], 1.0);
    let edge_id = edge.body["id"].as_i64().expect("edge id");
    assert_eq!(api.get("/api/graph/stats").await.body["edges"], edges + 1);
    api.post("/api/graph/edges", json!({"source_id": id, "target_id": 2, "kind": "reports_to"}))
        .await
        .assert_problem(409, "already has a manager");
    api.post("/api/graph/edges", json!({"source_id": id, "target_id": 1, "kind": "reports_to"}))
        .await
        .assert_problem(409, "already");
    // 1 has no manager (the root of the seeded tree): reporting to Grace would close a loop.
    api.post("/api/graph/edges", json!({"source_id": 1, "target_id": id, "kind": "reports_to"}))
        .await
        .assert_problem(409, "would make a loop");

    assert_eq!(api.delete(&format!("/api/graph/edges/{edge_id}")).await.status, 204);
    api.delete(&format!("/api/graph/edges/{edge_id}")).await.assert_problem(404, "no relation");
    assert_eq!(api.delete(&format!("/api/graph/nodes/{id}")).await.status, 204);
    api.get(&format!("/api/graph/nodes/{id}")).await.assert_problem(404, "no employee");
    assert_eq!(api.get("/api/graph/stats").await.body["nodes"], 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_problem() {
    let api = TestApi::start(&[("BODY_LIMIT_BYTES", "4096")]).await;
    let json = |v: Value| Some(("application/json", v.to_string().into_bytes()));
    let raw = |s: &str| Some(("application/json", s.as_bytes().to_vec()));
    // (method, path, body with its content type, expected status, part of the expected detail)
    type Case<'a> = (Method, &'a str, Option<(&'a str, Vec<u8>)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (Method::POST, "/api/graph/nodes", raw("{\"name\": "), 400, "EOF"),
        (
            Method::POST,
            "/api/graph/nodes",
            raw("{\"name\": \"a\",,}"),
            400,
            "Failed to parse the request body as JSON",
        ),
        (Method::POST, "/api/graph/nodes", raw("[1, 2]"), 422, "invalid type"),
        (Method::POST, "/api/graph/nodes", json(json!({"name": 5, "team": "a"})), 422, "name"),
        (Method::POST, "/api/graph/nodes", json(json!({"team": "a"})), 422, "missing field `name`"),
        (
            Method::POST,
            "/api/graph/nodes",
            json(json!({"name": "a", "team": "a", "x": 1})),
            422,
            "unknown field `x`",
        ),
        (
            Method::POST,
            "/api/graph/nodes",
            json(json!({"name": "", "team": "a"})),
            422,
            "name must be 1 to 200",
        ),
        (
            Method::POST,
            "/api/graph/nodes",
            Some(("text/plain", b"hi".to_vec())),
            415,
            "application/json",
        ),
        (
            Method::POST,
            "/api/graph/nodes",
            json(json!({"name": "x".repeat(5000), "team": "a"})),
            413,
            "larger than the limit",
        ),
        (Method::GET, "/api/graph/nodes?limit=0", None, 400, "limit must be 1 to 1000"),
        (Method::GET, "/api/graph/nodes?limit=abc", None, 400, "limit"),
        (Method::GET, "/api/graph/nodes?after=-1", None, 400, "after must not be negative"),
        (Method::GET, "/api/graph/nodes/abc", None, 400, "Cannot parse"),
        (Method::GET, "/api/graph/nodes/999999", None, 404, "no employee 999999"),
        (Method::DELETE, "/api/graph/nodes/999999", None, 404, "no employee"),
        (
            Method::POST,
            "/api/graph/edges",
            json(json!({"source_id": 1, "target_id": 1, "kind": "mentors"})),
            422,
            "two different employees",
        ),
        (
            Method::POST,
            "/api/graph/edges",
            json(json!({"source_id": 1, "target_id": 2, "kind": "friends"})),
            422,
            "kind",
        ),
        (
            Method::POST,
            "/api/graph/edges",
            json(json!({"source_id": 1, "target_id": 2, "kind": "mentors", "weight": 0})),
            422,
            "weight must be above 0",
        ),
        (
            Method::POST,
            "/api/graph/edges",
            json(json!({"source_id": 777777, "target_id": 888888, "kind": "mentors"})),
            422,
            "does not exist",
        ),
        (
            Method::POST,
            "/api/graph/seed",
            json(json!({"employees": 0, "avg_reports": 3, "seed": 1})),
            422,
            "employees must be 1 to 20000",
        ),
        (
            Method::POST,
            "/api/graph/seed",
            json(json!({"employees": 1_000_000, "avg_reports": 3, "seed": 1})),
            422,
            "employees must be",
        ),
        (
            Method::POST,
            "/api/graph/seed",
            json(json!({"employees": 10, "avg_reports": 99, "seed": 1})),
            422,
            "avg_reports",
        ),
        (
            Method::POST,
            "/api/graph/seed",
            json(json!({"employees": -5, "avg_reports": 3, "seed": 1})),
            422,
            "employees",
        ),
        (
            Method::POST,
            "/api/analysis",
            json(json!({"iterations": 0})),
            422,
            "iterations must be 1 to 200",
        ),
        (Method::POST, "/api/analysis", json(json!({"depth": 3})), 422, "unknown field"),
        (Method::GET, "/api/analysis/not-a-uuid", None, 400, "UUID"),
        (Method::GET, "/api/analysis/00000000-0000-0000-0000-000000000000", None, 404, "no job"),
        (
            Method::POST,
            "/api/exports",
            json(json!({"kind": "employee_metrics", "format": "xml"})),
            422,
            "format",
        ),
        (
            Method::POST,
            "/api/exports",
            json(json!({"kind": "salaries", "format": "csv"})),
            422,
            "kind",
        ),
        (Method::POST, "/api/exports", json(json!({"format": "csv"})), 422, "missing field `kind`"),
        (Method::GET, "/api/exports/00000000-0000-0000-0000-000000000000", None, 404, "no job"),
        (
            Method::POST,
            "/api/interventions",
            json(json!({"kind": "reassign", "employee_id": 1, "new_manager_id": 1, "reason": "x"})),
            422,
            "own manager",
        ),
        (
            Method::POST,
            "/api/interventions",
            json(json!({"kind": "reassign", "employee_id": 1, "new_manager_id": 2, "reason": ""})),
            422,
            "reason must be",
        ),
        (
            Method::POST,
            "/api/interventions",
            json(json!({"kind": "fire", "employee_id": 1, "new_manager_id": 2, "reason": "x"})),
            422,
            "kind",
        ),
        (
            Method::POST,
            "/api/interventions",
            json(
                json!({"kind": "reassign", "employee_id": 424242, "new_manager_id": 2, "reason": "x"}),
            ),
            422,
            "does not exist",
        ),
        (
            Method::POST,
            "/api/interventions/00000000-0000-0000-0000-000000000000/execute",
            None,
            404,
            "no intervention",
        ),
        (
            Method::POST,
            "/api/interventions/00000000-0000-0000-0000-000000000000/rollback",
            None,
            404,
            "no intervention",
        ),
        (Method::GET, "/api/interventions/zzz", None, 400, "UUID"),
        (Method::GET, "/no/such/route", None, 404, "no such route"),
        (Method::PUT, "/api/graph/stats", None, 405, "method"),
        (Method::from_bytes(b"BREW").unwrap(), "/api/graph/stats", None, 405, "method"),
    ];
    api.post("/api/graph/seed", json!({"employees": 10, "avg_reports": 3, "seed": 1})).await;
    for (method, path, body, status, detail) in cases {
        let reply = api.send(method.clone(), path, body).await;
        assert_eq!(reply.status.as_u16(), status, "{method} {path}: {}", reply.text);
        reply.assert_problem(status, detail);
    }
    // Nothing above was a server fault, and the service still answers.
    assert_eq!(api.get("/health/ready").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_accepted_with_their_queue_entry_in_one_transaction() {
    let api = TestApi::start(&[]).await;
    api.post("/api/graph/seed", json!({"employees": 50, "avg_reports": 4, "seed": 3})).await;

    let analysis = api.post("/api/analysis", json!({})).await;
    assert_eq!(analysis.status, 202, "{}", analysis.text);
    let id = analysis.body["id"].as_str().expect("id").to_string();
    assert_eq!(analysis.header("location"), format!("/api/analysis/{id}"));
    let job = api.get(&format!("/api/analysis/{id}")).await;
    assert_eq!(job.status, 200);
    assert_eq!(job.body["status"], "pending");
    assert_eq!(job.body["params"], json!({"iterations": 30, "samples": 64}));
    // Not visible as another kind of job.
    api.get(&format!("/api/exports/{id}")).await.assert_problem(404, "no job");

    let export =
        api.post("/api/exports", json!({"kind": "employee_metrics", "format": "jsonl"})).await;
    assert_eq!(export.status, 202, "{}", export.text);
    let export_id = export.body["id"].as_str().expect("id").to_string();
    assert_eq!(api.get(&format!("/api/jobs/{export_id}")).await.body["kind"], "export");

    // Each accepted job has exactly one queue entry, on its own queue, carrying its id.
    for (job, queue) in [(&id, "analysis"), (&export_id, "export")] {
        let entries = api.sql(&format!(
            "SELECT job_type || ' ' || status FROM apalis.jobs WHERE convert_from(job, 'UTF8')::jsonb->>'job_id' = '{job}'"
        ));
        assert_eq!(entries, format!("{queue} Pending"));
    }

    // Interventions: propose, queue an execution, refuse a second one and a rollback.
    let proposal = api
        .post("/api/interventions", json!({"kind": "reassign", "employee_id": 7, "new_manager_id": 2, "reason": "closer to the team"}))
        .await;
    assert_eq!(proposal.status, 201, "{}", proposal.text);
    assert_eq!(proposal.body["state"], "proposed");
    let iv = proposal.body["id"].as_str().expect("id").to_string();
    assert_eq!(
        api.get(&format!("/api/interventions/{iv}")).await.body["reason"],
        "closer to the team"
    );
    let execute = api.post(&format!("/api/interventions/{iv}/execute"), json!({})).await;
    assert_eq!(execute.status, 202, "{}", execute.text);
    let job_id = execute.body["id"].as_str().expect("job id").to_string();
    assert_eq!(execute.header("location"), format!("/api/jobs/{job_id}"));
    let job = api.get(&format!("/api/jobs/{job_id}")).await;
    assert_eq!(job.body["kind"], "intervention_execute");
    assert_eq!(job.body["params"]["intervention_id"], iv.as_str());
    api.post(&format!("/api/interventions/{iv}/execute"), json!({}))
        .await
        .assert_problem(409, "already has job");
    api.post(&format!("/api/interventions/{iv}/rollback"), json!({}))
        .await
        .assert_problem(409, "is proposed");
    assert_eq!(api.sql("SELECT count(*) FROM apalis.jobs WHERE job_type = 'intervention'"), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_degrades_to_postgres_and_recovers() {
    let mut api = TestApi::start(&[("STATS_L1_TTL_MS", "50")]).await;
    api.post("/api/graph/seed", json!({"employees": 30, "avg_reports": 3, "seed": 9})).await;
    assert_eq!(api.get("/api/graph/stats").await.status, 200);

    tokio::task::block_in_place(|| api.redis.stop()).expect("redis stops");
    for _ in 0..20 {
        let stats = api.get("/api/graph/stats").await;
        assert_eq!(stats.status, 200, "stats served without Redis: {}", stats.text);
        assert_eq!(stats.body["nodes"], 30);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let ready = api.get("/health/ready").await;
    ready.assert_problem(503, "redis");
    assert!(!ready.body["detail"].as_str().unwrap_or_default().contains("postgres"));

    tokio::task::block_in_place(|| api.redis.start_again()).expect("redis starts again");
    eventually("readiness after Redis is back", Duration::from_secs(20), async || {
        (api.get("/health/ready").await.status == 200).then_some(())
    })
    .await;
    assert_eq!(api.get("/api/graph/stats").await.status, 200);
    api.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_is_a_quick_503_and_the_api_recovers() {
    let mut api = TestApi::start(&[]).await;
    api.post("/api/graph/seed", json!({"employees": 20, "avg_reports": 3, "seed": 4})).await;
    tokio::task::block_in_place(|| api.pg.stop()).expect("postgres stops");
    // The first failures go to Postgres; once the breaker is open the answer is immediate.
    for _ in 0..5 {
        let reply = api.get("/api/graph/nodes").await;
        reply.assert_problem(503, "postgres is unavailable");
        assert!(reply.header("retry-after").parse::<u64>().is_ok(), "Retry-After: {reply:?}");
    }
    api.post("/api/analysis", json!({})).await.assert_problem(503, "postgres");
    api.get("/health/ready").await.assert_problem(503, "postgres");
    tokio::task::block_in_place(|| api.pg.start_again()).expect("postgres starts again");
    eventually("the API to serve from Postgres again", Duration::from_secs(30), async || {
        (api.get("/api/graph/nodes?limit=5").await.status == 200).then_some(())
    })
    .await;
    assert_eq!(api.get("/api/graph/stats").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_starts_without_postgres_not_ready_and_recovers() {
    let mut api = TestApi::start(&[]).await;
    api.stop().await.expect("graceful stop");
    tokio::task::block_in_place(|| api.pg.stop()).expect("postgres stops");
    api.start_api(&[]).await;
    api.get("/health/ready").await.assert_problem(503, "postgres: unreachable since start-up");
    api.get("/api/graph/nodes").await.assert_problem(503, "postgres is unavailable");
    tokio::task::block_in_place(|| api.pg.start_again()).expect("postgres starts again");
    eventually("readiness once Postgres is up", Duration::from_secs(30), async || {
        (api.get("/health/ready").await.status == 200).then_some(())
    })
    .await;
    assert_eq!(api.get("/api/graph/nodes?limit=5").await.status, 200);
    api.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_l2_entry_computed_before_a_change_is_never_stored_after_it() {
    let redis_server = tokio::task::spawn_blocking(testkit::Redis::start)
        .await
        .expect("join")
        .expect("redis starts");
    let url = redis_server.url();
    let config = api::Config::from_lookup(|k| match k {
        "REDIS_URL" => Some(url.clone()),
        "API_TOKENS_FILE" => Some("/unused: no request is served".into()),
        _ => None,
    })
    .expect("test config");
    let meter = otel::meter();
    let redis = api::redis::Redis::new(
        &config,
        &otel::metrics::BreakerMetrics::new(&meter),
        otel::metrics::CacheMetrics::new(&meter),
    )
    .expect("pool");
    let (key, counter, ttl) = ("test:stats", "test:generation", Duration::from_secs(60));
    let name = otel::catalogue::CacheName::GraphStats;
    // A reader saw generation 0 and stores: nothing changed meanwhile.
    assert_eq!(redis.counter(counter).await, Some(0));
    redis.set_if_counter(key, b"old", ttl, counter, 0).await;
    assert_eq!(redis.get(name, key).await.as_deref(), Some(&b"old"[..]));
    // A change commits: the generation moves on and the entry goes.
    redis.bump_and_delete(key, counter).await;
    assert_eq!(redis.get(name, key).await, None);
    assert_eq!(redis.counter(counter).await, Some(1));
    // A reader that began before the change stores its stale stats: refused.
    redis.set_if_counter(key, b"stale", ttl, counter, 0).await;
    assert_eq!(redis.get(name, key).await, None, "a stale entry was stored after the change");
    // A reader that began after it stores.
    redis.set_if_counter(key, b"new", ttl, counter, 1).await;
    assert_eq!(redis.get(name, key).await.as_deref(), Some(&b"new"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_is_a_503_that_says_so_and_never_opens_the_breaker() {
    use sqlx::Connection;
    // Two connections; a breaker that would stay open for a minute if it opened; the graph gauges
    // refreshed only at start (their query would take one of the two connections, and wait on the
    // lock too).
    let api = TestApi::start(&[
        ("PG_POOL_MAX", "2"),
        ("BREAKER_OPEN_MS", "60000"),
        ("GRAPH_METRICS_INTERVAL_MS", "3600000"),
    ])
    .await;
    api.post("/api/graph/seed", json!({"employees": 20, "avg_reports": 3, "seed": 4})).await;
    // A batch job holds `employees` locked.
    let mut batch = sqlx::PgConnection::connect(&api.pg.url()).await.expect("connect");
    let mut lock = batch.begin().await.expect("begin");
    sqlx::query("LOCK TABLE employees IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock");
    // Two readers take both connections and wait on the lock; the callers after them find none
    // free for the pool's timeout (1 s), five times: more than the breaker's 3 failures.
    let waiting = async {
        let (a, b) = tokio::join!(api.get("/api/graph/nodes"), api.get("/api/graph/nodes"));
        (a.status.as_u16(), b.status.as_u16())
    };
    let busy = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut replies = Vec::new();
        for _ in 0..5 {
            replies.push(api.get("/api/graph/nodes").await);
        }
        lock.commit().await.expect("the batch commits");
        replies
    };
    let (waited, busy) = tokio::join!(waiting, busy);
    for reply in &busy {
        reply.assert_problem(503, "postgres is busy: every pooled connection stayed in use");
        assert_eq!(reply.header("retry-after"), "1", "{reply:?}");
    }
    assert_eq!(waited, (200, 200), "the readers waited for the lock and were answered");
    // Nothing opened the breaker: the API answers at once, readiness included.
    assert_eq!(api.get("/api/graph/nodes?limit=5").await.status, 200);
    assert_eq!(api.get("/health/ready").await.status, 200);
}
