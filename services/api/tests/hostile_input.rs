//! Hostile input, end to end against real Postgres: control characters in text fields are a 422
//! naming the field (Postgres would refuse a NUL with a 500).

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
