//! What the API records, through the SDK's in-memory exporter installed as the global provider:
//! every instrument the API owns moves for a real reason, with attributes from the catalogue's
//! bounded sets only, and 10,000 requests to random unknown paths add no attribute set.
//! (Its own test binary: the global meter provider is per process.)

mod support;

use otel::metrics::testing::{Points, Recorder};
use serde_json::json;
use std::time::Duration;
use support::{TestApi, eventually};

const DURATION: &str = "http.server.request.duration";

fn route_count(points: &Points, route: &str, status: &str) -> u64 {
    points.count(DURATION, &[("http.route", route), ("http.response.status_code", status)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_records_every_instrument_with_bounded_attributes() {
    let recorder = Recorder::global();
    let mut api = TestApi::start(&[]).await;

    api.post("/api/graph/seed", json!({"employees": 30, "avg_reports": 3, "seed": 5})).await;
    for _ in 0..3 {
        assert_eq!(api.get("/api/graph/stats").await.status, 200);
    }
    let node = api.post("/api/graph/nodes", json!({"name": "N", "team": "t"})).await;
    let id = node.body["id"].as_i64().expect("id");
    api.post("/api/graph/edges", json!({"source_id": id, "target_id": 1, "kind": "mentors"})).await;
    api.post("/api/analysis", json!({})).await;
    api.post("/api/exports", json!({"kind": "employee_metrics", "format": "csv"})).await;
    api.post(
        "/api/interventions",
        json!({"kind": "reassign", "employee_id": 5, "new_manager_id": 1, "reason": "r"}),
    )
    .await;
    api.get("/api/graph/nodes/999999").await;
    api.get("/definitely/not/a/route").await;
    // Deleting what does not exist changes nothing: no update timed, no cache dropped.
    api.delete("/api/graph/edges/-5").await.assert_problem(404, "no relation -5");
    api.delete("/api/graph/nodes/-5").await.assert_problem(404, "no employee -5");
    // Last, so the L1 entry is in place when the size gauges are read.
    api.get("/api/graph/stats").await;

    let points = eventually("the graph gauges", Duration::from_secs(10), async || {
        let points = recorder.collect();
        let nodes = points.0.iter().find(|p| p.name == "orgraph.graph.nodes").map(|p| p.value);
        (nodes == Some(31.0)).then_some(points)
    })
    .await;
    points.assert_conforms();

    // HTTP: route templates, never raw paths; no route on unknown paths; sizes recorded.
    assert!(route_count(&points, "/api/graph/stats", "200") >= 3);
    // The GET of 999999 and the DELETE of -5.
    assert_eq!(route_count(&points, "/api/graph/nodes/{id}", "404"), 2);
    assert!(route_count(&points, "/api/graph/seed", "201") >= 1);
    let unmatched: Vec<_> = points
        .0
        .iter()
        .filter(|p| p.name == DURATION && !p.attributes.contains_key("http.route"))
        .collect();
    assert!(!unmatched.is_empty(), "an unknown path is recorded without a route");
    for p in points.0.iter().filter(|p| p.name == DURATION) {
        if let Some(route) = p.attributes.get("http.route") {
            assert!(!route.contains("999999"), "raw path as route: {route}");
        }
    }
    assert!(
        points.sum("http.server.request.body.size", &[("http.route", "/api/graph/nodes")]) > 0.0
    );
    assert!(
        points.sum("http.server.response.body.size", &[("http.route", "/api/graph/stats")]) > 0.0
    );
    assert_eq!(points.value("http.server.active_requests", &[("http.request.method", "GET")]), 0.0);

    // Caches: the first stats read misses both layers, later ones hit L1.
    let cache = |layer, result| {
        points.value(
            "orgraph.cache.requests",
            &[("cache.layer", layer), ("cache.name", "graph_stats"), ("cache.result", result)],
        )
    };
    assert!(cache("l1", "miss") >= 1.0);
    assert!(cache("l2", "miss") >= 1.0);
    assert!(cache("l1", "hit") >= 1.0);
    let l1_stats = [("cache.layer", "l1"), ("cache.name", "graph_stats")];
    assert_eq!(points.value("orgraph.cache.items", &l1_stats), 1.0);
    assert!(points.value("orgraph.cache.size", &l1_stats) > 0.0);

    // Pools, from the pools' own status; waits timed.
    let pg = ("db.client.connection.pool.name", "postgres");
    let redis = ("db.client.connection.pool.name", "redis");
    assert_eq!(points.value("db.client.connection.max", &[pg]), 10.0);
    assert_eq!(points.value("db.client.connection.max", &[redis]), 10.0);
    assert!(points.value("db.client.connection.count", &[pg]) >= 1.0);
    assert!(points.count("db.client.connection.wait_time", &[pg]) > 5);
    assert!(points.count("db.client.connection.wait_time", &[redis]) >= 1);
    // No pool timed out, and the timeout series say so (they exist from start-up, at 0).
    assert_eq!(points.value("db.client.connection.timeouts", &[pg]), 0.0);
    assert_eq!(points.value("db.client.connection.timeouts", &[redis]), 0.0);

    // Breakers: closed, calls succeeded.
    for name in ["postgres", "redis"] {
        let state = |s| {
            points.value(
                "orgraph.circuit_breaker.state",
                &[("circuit_breaker.name", name), ("circuit_breaker.state", s)],
            )
        };
        assert_eq!((state("closed"), state("open")), (1.0, 0.0), "{name}");
        let ok = [("circuit_breaker.name", name), ("circuit_breaker.outcome", "success")];
        assert!(points.value("orgraph.circuit_breaker.calls", &ok) >= 1.0, "{name}");
        let rejected = [("circuit_breaker.name", name), ("circuit_breaker.outcome", "rejected")];
        assert_eq!(points.value("orgraph.circuit_breaker.calls", &rejected), 0.0, "{name}");
    }

    // Jobs enqueued by queue, interventions proposed, graph updates timed by operation.
    let sent =
        |q| points.value("messaging.client.sent.messages", &[("messaging.destination.name", q)]);
    assert_eq!((sent("analysis"), sent("export")), (1.0, 1.0));
    assert_eq!(sent("intervention"), 0.0, "a proposal enqueues nothing; the series is at 0");
    let job_status = [("cache.layer", "l1"), ("cache.name", "job_status")];
    assert_eq!(points.value("orgraph.cache.requests", &job_status), 0.0, "no job was read");
    assert_eq!(points.value("orgraph.intervention.proposals", &[]), 1.0);
    for op in ["seed", "add_node", "add_edge"] {
        assert_eq!(
            points.count("orgraph.graph.update.duration", &[("graph.operation", op)]),
            1,
            "{op}"
        );
    }
    for op in ["delete_node", "delete_edge"] {
        assert_eq!(
            points.count("orgraph.graph.update.duration", &[("graph.operation", op)]),
            0,
            "{op} of nothing is no update"
        );
    }
    assert_eq!(
        points.value("orgraph.graph.edges", &[]),
        api.sql("SELECT count(*) FROM relations").parse::<f64>().unwrap()
    );

    // A flood of unique URLs adds no attribute set to any HTTP instrument.
    let http = [
        "http.server.request.duration",
        "http.server.request.body.size",
        "http.server.response.body.size",
        "http.server.active_requests",
    ];
    let before: Vec<usize> = http.iter().map(|n| points.series(n)).collect();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (client, base) = (api.client.clone(), api.base.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..1250 {
                let url = format!("{base}/x/{worker}-{i}-{}", uuid_like(worker * 10_000 + i));
                let status = client.get(&url).send().await.expect("sent").status();
                assert_eq!(status, 404);
            }
        }));
    }
    for t in tasks {
        t.await.expect("flood task");
    }
    let after = recorder.collect();
    after.assert_conforms();
    let now: Vec<usize> = http.iter().map(|n| after.series(n)).collect();
    assert_eq!(now, before, "series of {http:?} after 10,000 unique URLs");
    let unrouted = after.count(DURATION, &[("http.response.status_code", "404")]);
    assert!(unrouted >= 10_000, "the flood was recorded: {unrouted}");

    redis_outage_shows_in_the_breaker_metrics(recorder, &mut api).await;
}

/// Redis stops: stats keep coming (from Postgres), the redis breaker opens and says so in the
/// metrics, and closes again once Redis is back.
async fn redis_outage_shows_in_the_breaker_metrics(recorder: &Recorder, api: &mut TestApi) {
    let state = |points: &Points, s| {
        points.value(
            "orgraph.circuit_breaker.state",
            &[("circuit_breaker.name", "redis"), ("circuit_breaker.state", s)],
        )
    };
    tokio::task::block_in_place(|| api.redis.stop()).expect("redis stops");
    for _ in 0..10 {
        api.post("/api/graph/nodes", json!({"name": "n", "team": "t"})).await; // drops the cache
        assert_eq!(api.get("/api/graph/stats").await.status, 200);
    }
    let points = recorder.collect();
    assert_eq!(state(&points, "open"), 1.0, "the redis breaker is open");
    let calls = |o| {
        points.value(
            "orgraph.circuit_breaker.calls",
            &[("circuit_breaker.name", "redis"), ("circuit_breaker.outcome", o)],
        )
    };
    assert!(calls("failure") >= 3.0 && calls("rejected") >= 1.0);
    tokio::task::block_in_place(|| api.redis.start_again()).expect("redis starts again");
    eventually("the redis breaker to close", Duration::from_secs(20), async || {
        api.post("/api/graph/nodes", json!({"name": "n", "team": "t"})).await;
        api.get("/api/graph/stats").await;
        (state(&recorder.collect(), "closed") == 1.0).then_some(())
    })
    .await;
}

fn uuid_like(n: u64) -> String {
    format!("{:016x}", n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
