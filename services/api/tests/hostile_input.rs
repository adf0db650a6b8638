//! Hostile input and abuse limits, end to end against real Postgres: control characters in text
//! fields are a 422 naming the field (Postgres would refuse a NUL with a 500), a database refusal
//! of the request's data is a 4xx that does not leak the statement or the value while a real
//! fault stays a 500, numbers at and beyond every integer range are 4xx, and the caps on open
//! proposals (409) and pending jobs per kind (429 + `Retry-After`) hold, also under concurrent
//! requests.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::TestApi;

fn proposal(employee: i64, manager: i64, reason: &str) -> Value {
    json!({"kind": "reassign", "employee_id": employee, "new_manager_id": manager, "reason": reason})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_a_422_naming_the_field() {
    let api = TestApi::start(&[]).await;
    api.post("/api/graph/seed", json!({"employees": 5, "avg_reports": 2, "seed": 1})).await;
    let nodes = || api.sql("SELECT count(*) FROM employees");
    assert_eq!(nodes(), "5");

    // (body, the field, the character and where)
    let cases = [
        (
            json!({"name": "a\u{0}b", "team": "t"}),
            "name must not contain control characters: U+0000 at character 2",
        ),
        (
            json!({"name": "a", "team": "\u{0}"}),
            "team must not contain control characters: U+0000 at character 1",
        ),
        (
            json!({"name": "a", "team": "t", "title": "x\u{1b}[2J"}),
            "title must not contain control characters: U+001B at character 2",
        ),
        (
            json!({"name": "line\nbreak", "team": "t"}),
            "name must not contain control characters: U+000A at character 5",
        ),
        (json!({"name": "tab\t", "team": "t"}), "U+0009 at character 4"),
        (json!({"name": "del\u{7f}", "team": "t"}), "U+007F"),
        (json!({"name": "c1\u{85}", "team": "t"}), "U+0085"),
        (json!({"name": "c1\u{9f}", "team": "t"}), "U+009F"),
    ];
    for (body, detail) in cases {
        api.post("/api/graph/nodes", body).await.assert_problem(422, detail);
    }
    // A raw control character inside a JSON string is not JSON at all: a 400, not a 500.
    let raw = b"{\"name\": \"a\x01b\", \"team\": \"t\"}".to_vec();
    let reply = api.send(Method::POST, "/api/graph/nodes", Some(("application/json", raw))).await;
    reply.assert_problem(400, "control character");
    // Nor is a lone surrogate; and a NUL in a path or a query is not a number.
    let raw = br#"{"name": "\ud800", "team": "t"}"#.to_vec();
    let reply = api.send(Method::POST, "/api/graph/nodes", Some(("application/json", raw))).await;
    reply.assert_problem(400, "hex escape");
    api.get("/api/graph/nodes/%00").await.assert_problem(400, "");
    api.get("/api/interventions/%00").await.assert_problem(400, "");
    api.get("/api/graph/nodes?after=%00").await.assert_problem(400, "");
    assert_eq!(nodes(), "5", "nothing was stored");

    // Printable Unicode is fine, and is stored as sent.
    let fine = api.post("/api/graph/nodes", json!({"name": "Zoë 山田 🚀", "team": "R&D"})).await;
    assert_eq!(fine.status, 201, "{}", fine.text);
    assert_eq!(fine.body["name"], "Zoë 山田 🚀");

    // A reason is prose: line feeds and tabs are kept, other control characters refused.
    let reply = api.post("/api/interventions", proposal(3, 1, "a\u{0}b")).await;
    reply.assert_problem(
        422,
        "reason must not contain control characters other than line feeds and tabs: U+0000 at \
         character 2",
    );
    api.post("/api/interventions", proposal(3, 1, "windows\r\nline"))
        .await
        .assert_problem(422, "U+000D at character 8");
    assert_eq!(api.sql("SELECT count(*) FROM interventions"), "0");
    let prose = "moves closer:\n\t- same floor\n\t- same project";
    let ok = api.post("/api/interventions", proposal(3, 1, prose)).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(ok.body["reason"], prose);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_refusals_are_4xx_without_the_sql_and_real_faults_stay_500() {
    let api = TestApi::start(&[]).await;
    // A trigger makes every new employee fail with the SQLSTATE in `refusal`, with a message that
    // quotes the value (as Postgres' own messages do): the API must not pass it on.
    api.sql(
        "CREATE TABLE refusal (code text NOT NULL); INSERT INTO refusal VALUES ('00000'); \
         CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ \
         DECLARE c text; BEGIN SELECT code INTO c FROM refusal; \
         RAISE EXCEPTION 'INSERT INTO employees refused value %', NEW.name USING ERRCODE = c; \
         END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON employees FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    for (code, status, detail) in [
        ("22001", 422, "longer than the database allows"),
        ("22003", 422, "out of the range"),
        ("22021", 422, "cannot store, such as U+0000"),
        ("22P02", 422, "not valid for its type"),
        ("22012", 422, "not valid data"),
        ("23505", 409, "already exists"),
        ("23503", 422, "refers to a record that does not exist"),
        ("23514", 422, "outside what the data allows"),
        ("23502", 422, "required value"),
        ("54000", 422, "larger than the database can handle"),
        ("40P01", 409, "send the request again"),
        ("40001", 409, "send the request again"),
        ("XX000", 500, "an internal error occurred"),
        ("42501", 500, "an internal error occurred"),
    ] {
        api.sql(&format!("UPDATE refusal SET code = '{code}'"));
        let reply = api.post("/api/graph/nodes", json!({"name": "secret-name", "team": "t"})).await;
        reply.assert_problem(status, detail);
        if status < 500 {
            assert!(reply.text.contains(&format!("SQLSTATE {code}")), "{code}: {}", reply.text);
        }
        for leak in ["secret-name", "INSERT", "employees", "refused value"] {
            assert!(!reply.text.contains(leak), "{code} leaks {leak:?}: {}", reply.text);
        }
    }
    // Refusals are the request's fault: they never open the breaker, the API stays ready.
    assert_eq!(api.get("/health/ready").await.status, 200);
    assert_eq!(api.sql("SELECT count(*) FROM employees"), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_at_and_beyond_every_range_are_4xx() {
    let api = TestApi::start(&[]).await;
    api.post("/api/graph/seed", json!({"employees": 5, "avg_reports": 2, "seed": 1})).await;
    let max = i64::MAX;
    let min = i64::MIN;
    let body = |v: Value| Some(("application/json", v.to_string().into_bytes()));
    let raw = |s: String| Some(("application/json", s.into_bytes()));
    type Case = (Method, String, Option<(&'static str, Vec<u8>)>, u16);
    let cases: Vec<Case> = vec![
        (Method::GET, format!("/api/graph/nodes/{max}"), None, 404),
        (Method::GET, format!("/api/graph/nodes/{min}"), None, 404),
        (Method::GET, "/api/graph/nodes/9223372036854775808".into(), None, 400),
        (Method::GET, "/api/graph/nodes/-9223372036854775809".into(), None, 400),
        (Method::GET, "/api/graph/nodes/1e3".into(), None, 400),
        (Method::DELETE, format!("/api/graph/nodes/{max}"), None, 404),
        (Method::DELETE, "/api/graph/edges/99999999999999999999".into(), None, 400),
        (Method::GET, format!("/api/graph/nodes?after={max}&limit=1000"), None, 200),
        (Method::GET, "/api/graph/nodes?after=9223372036854775808".into(), None, 400),
        (Method::GET, "/api/graph/nodes?limit=99999999999999999999".into(), None, 400),
        (Method::GET, format!("/api/graph/nodes?limit={max}"), None, 400),
        (Method::GET, format!("/api/graph/nodes?limit={min}"), None, 400),
        (
            Method::POST,
            "/api/graph/edges".into(),
            body(json!({"source_id": max, "target_id": min, "kind": "mentors"})),
            422,
        ),
        (
            Method::POST,
            "/api/graph/edges".into(),
            raw(r#"{"source_id": 9223372036854775808, "target_id": 1, "kind": "mentors"}"#.into()),
            422,
        ),
        (
            Method::POST,
            "/api/graph/edges".into(),
            body(json!({"source_id": 1, "target_id": 2, "kind": "mentors", "weight": 1e308})),
            422,
        ),
        (
            Method::POST,
            "/api/graph/edges".into(),
            raw(r#"{"source_id": 1, "target_id": 2, "kind": "mentors", "weight": 1e400}"#.into()),
            400,
        ),
        (
            Method::POST,
            "/api/graph/edges".into(),
            body(json!({"source_id": 1, "target_id": 2, "kind": "mentors", "weight": 5e-324})),
            201,
        ),
        (Method::POST, "/api/interventions".into(), body(proposal(max, min, "x")), 422),
        (
            Method::POST,
            "/api/graph/seed".into(),
            body(json!({"employees": 4_294_967_296u64, "avg_reports": 1, "seed": 1})),
            422,
        ),
        (
            Method::POST,
            "/api/graph/seed".into(),
            raw(r#"{"employees": 3, "avg_reports": 1, "seed": 18446744073709551616}"#.into()),
            422,
        ),
        (
            Method::POST,
            "/api/analysis".into(),
            body(json!({"iterations": 4_294_967_295u64, "samples": 4_294_967_295u64})),
            422,
        ),
        (Method::POST, "/api/analysis".into(), body(json!({"iterations": 4_294_967_296u64})), 422),
    ];
    for (method, path, body, status) in cases {
        let reply = api.send(method.clone(), &path, body).await;
        assert_eq!(reply.status.as_u16(), status, "{method} {path}: {}", reply.text);
        if status >= 400 {
            reply.assert_problem(status, "");
        }
    }
    // The largest seed is a fine seed.
    let seeded = api
        .post("/api/graph/seed", json!({"employees": 3, "avg_reports": 1, "seed": u64::MAX}))
        .await;
    assert_eq!(seeded.status, 201, "{}", seeded.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_jobs_and_open_proposals_are_capped() {
    let api =
        TestApi::start(&[("API_MAX_QUEUED_JOBS", "3"), ("API_MAX_OPEN_PROPOSALS", "3")]).await;
    api.post("/api/graph/seed", json!({"employees": 20, "avg_reports": 3, "seed": 2})).await;
    let pending = |kind: &str| {
        api.sql(&format!("SELECT count(*) FROM jobs WHERE kind = '{kind}' AND status = 'pending'"))
    };

    // Three analyses are taken, the fourth is a 429 that says which cap and how full.
    for _ in 0..3 {
        let reply = api.post("/api/analysis", json!({})).await;
        assert_eq!(reply.status, 202, "{}", reply.text);
    }
    let full = api.post("/api/analysis", json!({"iterations": 5})).await;
    full.assert_problem(
        429,
        "the analysis job queue is full: 3 analysis jobs are pending and at most 3 may be \
         (API_MAX_QUEUED_JOBS)",
    );
    let wait: u64 = full.header("retry-after").parse().expect("Retry-After in seconds");
    assert!(wait >= 1, "Retry-After {wait}");
    assert_eq!(pending("analysis"), "3");
    // Every job row still has its queue entry, and the refused one has neither.
    assert_eq!(api.sql("SELECT count(*) FROM jobs"), "3");
    assert_eq!(api.sql("SELECT count(*) FROM apalis.jobs"), "3");

    // The cap is per kind: exports are still taken, ten at once leave exactly three pending.
    let exports = all_at_once(10, || {
        api.post("/api/exports", json!({"kind": "employee_metrics", "format": "csv"}))
    })
    .await;
    let accepted = exports.iter().filter(|r| r.status == 202).count();
    let refused = exports.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        (accepted, refused),
        (3, 7),
        "{:?}",
        exports.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(pending("export"), "3");

    // The queue drains (a worker takes a job): there is room again.
    api.sql("UPDATE jobs SET status = 'running' WHERE id = (SELECT id FROM jobs WHERE kind = 'analysis' LIMIT 1)");
    assert_eq!(api.post("/api/analysis", json!({})).await.status, 202);
    assert_eq!(api.post("/api/analysis", json!({})).await.status, 429);

    // Proposals: eight at once, three are recorded, the others are 409s naming the cap.
    let proposals = all_at_once(8, || api.post("/api/interventions", proposal(10, 2, "cap"))).await;
    let created: Vec<&str> = proposals
        .iter()
        .filter(|r| r.status == 201)
        .filter_map(|r| r.body["id"].as_str())
        .collect();
    assert_eq!(created.len(), 3, "{:?}", proposals.iter().map(|r| &r.text).collect::<Vec<_>>());
    for refused in proposals.iter().filter(|r| r.status != 201) {
        refused.assert_problem(
            409,
            "too many open intervention proposals: 3 are proposed and at most 3 may be \
             (API_MAX_OPEN_PROPOSALS)",
        );
    }
    assert_eq!(api.sql("SELECT count(*) FROM interventions WHERE state = 'proposed'"), "3");

    // An intervention's jobs count against their own kind's cap.
    for id in &created {
        let reply = api.post(&format!("/api/interventions/{id}/execute"), json!({})).await;
        assert_eq!(reply.status, 202, "{}", reply.text);
    }
    // One proposal executed (by the worker): a fourth may be proposed, but its execution waits.
    api.sql(&format!("UPDATE interventions SET state = 'executed' WHERE id = '{}'", created[0]));
    let fourth = api.post("/api/interventions", proposal(11, 2, "room again")).await;
    assert_eq!(fourth.status, 201, "{}", fourth.text);
    let id = fourth.body["id"].as_str().expect("id");
    let reply = api.post(&format!("/api/interventions/{id}/execute"), json!({})).await;
    reply.assert_problem(429, "the intervention_execute job queue is full: 3 intervention_execute");
    assert!(reply.header("retry-after").parse::<u64>().is_ok_and(|s| s >= 1), "{reply:?}");
    assert_eq!(pending("intervention_execute"), "3");
}

/// Sends `n` requests made by `request` at once and returns their replies.
async fn all_at_once<F, Fut>(n: usize, request: F) -> Vec<support::Reply>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = support::Reply>,
{
    futures_util::future::join_all((0..n).map(|_| request())).await
}
