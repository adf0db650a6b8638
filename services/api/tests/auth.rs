//! The authorization matrix: every route of the API, read from its own OpenAPI document (so a new
//! route is covered without touching this file), × {no token, a wrong token, read, write, admin}.
//! Open routes answer everyone; no token or a wrong one is a 401 problem with `WWW-Authenticate`;
//! a role below the route's is a 403; a role high enough gets the handler's own answer to a valid
//! request on existing rows. A refused change leaves every table (its rows, its sequences)
//! exactly as it was, and refusals are decided without the database: with Postgres stopped they
//! still answer 401/403 at once. The per-token rate limit answers 429 with `Retry-After` to one
//! token while another is still served.

mod support;

use api::auth::{Role, required_role};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::{Reply, TestApi};

/// Who a request comes as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    Stranger,
    As(Role),
}

const EVERYONE: [Who; 5] =
    [Who::Nobody, Who::Stranger, Who::As(Role::Read), Who::As(Role::Write), Who::As(Role::Admin)];

/// A route of the document: a method and a path template.
#[derive(Debug, Clone)]
struct Route {
    method: Method,
    template: String,
    /// The operation's OpenAPI object.
    operation: Value,
}

impl Route {
    fn mutates(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    fn needs(&self) -> Option<Role> {
        let method = api_method(&self.method);
        required_role(&method, &self.template)
    }
}

fn api_method(method: &Method) -> axum::http::Method {
    axum::http::Method::from_bytes(method.as_str().as_bytes()).expect("a method")
}

/// Every (path, method) of the document, and the document's own route, which it does not list.
fn routes(doc: &Value) -> Vec<Route> {
    let mut routes = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "options", "head", "patch", "trace"] {
            if let Some(operation) = item.get(method) {
                routes.push(Route {
                    method: Method::from_bytes(method.to_ascii_uppercase().as_bytes())
                        .expect("method"),
                    template: template.clone(),
                    operation: operation.clone(),
                });
            }
        }
    }
    if !routes.iter().any(|r| r.template == "/api/openapi.json") {
        routes.push(Route {
            method: Method::GET,
            template: "/api/openapi.json".into(),
            operation: json!({}),
        });
    }
    routes
}

/// Rows to point at, fresh for every request: two employees with a relation between them, an
/// intervention proposed between them, and an analysis and an export job.
struct Fixtures {
    employee: i64,
    other: i64,
    relation: i64,
    intervention: String,
    analysis: String,
    export: String,
}

async fn fixtures(api: &TestApi) -> Fixtures {
    let created = async |path: &str, body: Value| -> Value {
        let reply = api.post(path, body).await;
        assert!(reply.status.is_success(), "fixture {path}: {}", reply.text);
        reply.body["id"].clone()
    };
    let employee = created("/api/graph/nodes", json!({"name": "e", "team": "t"})).await;
    let other = created("/api/graph/nodes", json!({"name": "m", "team": "t"})).await;
    let (employee, other) = (employee.as_i64().expect("id"), other.as_i64().expect("id"));
    let relation = created(
        "/api/graph/edges",
        json!({"source_id": employee, "target_id": other, "kind": "collaborates"}),
    )
    .await;
    let intervention = created(
        "/api/interventions",
        json!({"kind": "reassign", "employee_id": employee, "new_manager_id": other,
               "reason": "matrix"}),
    )
    .await;
    let analysis = created("/api/analysis", json!({})).await;
    let export =
        created("/api/exports", json!({"kind": "employee_metrics", "format": "csv"})).await;
    let text = |v: Value| v.as_str().expect("uuid").to_string();
    Fixtures {
        employee,
        other,
        relation: relation.as_i64().expect("id"),
        intervention: text(intervention),
        analysis: text(analysis),
        export: text(export),
    }
}

/// A valid request for `route` on `f`'s rows: the path, the JSON body, and the status a caller
/// allowed to make it gets (`None`: a route this table does not know yet, whose answer must only
/// be the handler's: not a refusal, not a fault).
fn request(route: &Route, f: &Fixtures, doc: &Value) -> (String, Option<Value>, Option<u16>) {
    let (a, b) = (f.employee, f.other);
    let iv = &f.intervention;
    let known = match (route.method.as_str(), route.template.as_str()) {
        ("GET", "/health/live" | "/health/ready" | "/api/openapi.json") => Some((None, 200)),
        ("GET", "/api/graph/stats" | "/api/graph/nodes") => Some((None, 200)),
        ("GET", "/api/graph/nodes/{id}") => Some((None, 200)),
        ("DELETE", "/api/graph/nodes/{id}" | "/api/graph/edges/{id}") => Some((None, 204)),
        ("POST", "/api/graph/nodes") => {
            Some((Some(json!({"name": "new", "team": "t", "title": "x"})), 201))
        }
        ("POST", "/api/graph/edges") => {
            Some((Some(json!({"source_id": b, "target_id": a, "kind": "mentors"})), 201))
        }
        ("POST", "/api/graph/seed") => {
            Some((Some(json!({"employees": 5, "avg_reports": 2, "seed": 1})), 201))
        }
        ("POST", "/api/analysis") => Some((Some(json!({"iterations": 3})), 202)),
        ("GET", "/api/analysis/{id}" | "/api/exports/{id}" | "/api/jobs/{id}") => Some((None, 200)),
        ("POST", "/api/exports") => {
            Some((Some(json!({"kind": "employee_metrics", "format": "jsonl"})), 202))
        }
        ("POST", "/api/interventions") => Some((
            Some(json!({"kind": "reassign", "employee_id": b, "new_manager_id": a,
                        "reason": "matrix"})),
            201,
        )),
        ("GET", "/api/interventions/{id}") => Some((None, 200)),
        ("POST", "/api/interventions/{id}/execute") => Some((Some(json!({})), 202)),
        // It is proposed, not executed: the handler's own refusal.
        ("POST", "/api/interventions/{id}/rollback") => Some((Some(json!({})), 409)),
        _ => None,
    };
    // The `{id}` of a path: a row of the kind the route is about.
    let id = if route.template.starts_with("/api/graph/nodes/") {
        a.to_string()
    } else if route.template.starts_with("/api/graph/edges/") {
        f.relation.to_string()
    } else if route.template.starts_with("/api/analysis/")
        || route.template.starts_with("/api/jobs/")
    {
        f.analysis.clone()
    } else if route.template.starts_with("/api/exports/") {
        f.export.clone()
    } else if route.template.starts_with("/api/interventions/") {
        iv.clone()
    } else {
        a.to_string()
    };
    let path = route.template.replace("{id}", &id);
    match known {
        Some((body, status)) => (path, body, Some(status)),
        None => {
            let body = route.operation["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|s| example(&Value::Object(s.clone()), doc));
            let body = body.or_else(|| route.mutates().then(|| json!({})));
            (path, body, None)
        }
    }
}

/// A plausible value of `schema`, for routes the table does not know.
fn example(schema: &Value, doc: &Value) -> Value {
    let schema = match schema["$ref"].as_str() {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap_or(schema),
        None => schema,
    };
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    let kind = match &schema["type"] {
        Value::String(t) => t.as_str(),
        Value::Array(t) => t.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or(""),
        _ => "",
    };
    match kind {
        "object" => {
            let mut object = serde_json::Map::new();
            for (name, property) in schema["properties"].as_object().into_iter().flatten() {
                object.insert(name.clone(), example(property, doc));
            }
            Value::Object(object)
        }
        "integer" => json!(1),
        "number" => json!(1.0),
        "boolean" => json!(true),
        "array" => json!([]),
        _ => json!("x"),
    }
}

fn token<'a>(api: &'a TestApi, who: Who, stranger: &'a str) -> Option<&'a str> {
    match who {
        Who::Nobody => None,
        Who::Stranger => Some(stranger),
        Who::As(Role::Read) => Some(&api.tokens.read),
        Who::As(Role::Write) => Some(&api.tokens.write),
        Who::As(Role::Admin) => Some(&api.tokens.admin),
    }
}

async fn send(
    api: &TestApi,
    who: Who,
    stranger: &str,
    method: &Method,
    path: &str,
    body: &Option<Value>,
) -> Reply {
    let body = body.as_ref().map(|b| ("application/json", b.to_string().into_bytes()));
    api.send_as(token(api, who, stranger), method.clone(), path, body).await
}

/// Every table's rows (count and checksum of its ordered rows) and every sequence's position.
struct Snapshot {
    query: String,
}

impl Snapshot {
    fn new(api: &TestApi) -> Snapshot {
        let tables = api.sql(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        );
        let tables: Vec<&str> = tables.lines().collect();
        for expected in [
            "public.employees",
            "public.relations",
            "public.interventions",
            "public.jobs",
            "apalis.jobs",
        ] {
            assert!(tables.contains(&expected), "{expected} in {tables:?}");
        }
        let mut parts: Vec<String> = tables
            .iter()
            .map(|t| {
                format!(
                    "SELECT '{t}' || ' ' || count(*) || ' ' || \
                     md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} x"
                )
            })
            .collect();
        parts.push(
            "SELECT 'sequences ' || coalesce(string_agg(schemaname || '.' || sequencename || '=' \
             || coalesce(last_value::text, '-'), ',' ORDER BY sequencename), '') FROM pg_sequences"
                .into(),
        );
        Snapshot { query: parts.join(" UNION ALL ") }
    }

    fn take(&self, api: &TestApi) -> String {
        let mut lines: Vec<String> = api.sql(&self.query).lines().map(str::to_owned).collect();
        lines.sort();
        lines.join("\n")
    }
}

fn assert_refused(reply: &Reply, status: u16, challenge: &str, what: &str) {
    assert_eq!(reply.status.as_u16(), status, "{what}: {}", reply.text);
    reply.assert_problem(status, "");
    let header = reply.header("www-authenticate");
    assert!(header.starts_with("Bearer realm=\"orgraph\""), "{what}: WWW-Authenticate {header:?}");
    assert!(header.contains(challenge), "{what}: WWW-Authenticate {header:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_caller_as_documented() {
    // Hundreds of requests as fast as they go (the rate limit has its own test).
    let mut api =
        TestApi::start(&[("API_RATE_LIMIT_PER_S", "1000000"), ("API_RATE_LIMIT_BURST", "1000000")])
            .await;
    let doc = api.get("/api/openapi.json").await.body;
    let routes = routes(&doc);
    let stranger = testkit::tokens::random().expect("a random token");
    let snapshot = Snapshot::new(&api);

    // The document lists the API's routes (the open ones too), each under /api or /health.
    let templates: BTreeSet<&str> = routes.iter().map(|r| r.template.as_str()).collect();
    assert!(routes.len() >= 19, "{} routes: {templates:?}", routes.len());
    assert!(templates.iter().all(|t| t.starts_with("/api/") || t.starts_with("/health/")));
    for open in ["/health/live", "/health/ready", "/api/openapi.json"] {
        assert!(templates.contains(open), "{open}");
    }

    let mut cells = 0;
    let mut unknown = Vec::new();
    for route in &routes {
        let needs = route.needs();
        if route.template.starts_with("/health/") || route.template == "/api/openapi.json" {
            assert_eq!(needs, None, "{} {} is open", route.method, route.template);
        } else {
            // The policy as documented: reads need `read`, replacing the graph `admin`, any
            // other change `write`.
            let documented = match (&route.method, route.template.as_str()) {
                (&Method::GET, _) => Role::Read,
                (_, "/api/graph/seed") => Role::Admin,
                _ => Role::Write,
            };
            assert_eq!(needs, Some(documented), "{} {}", route.method, route.template);
        }
        for who in EVERYONE {
            let what = format!("{} {} as {who:?}", route.method, route.template);
            let f = fixtures(&api).await;
            let (path, body, status) = request(route, &f, &doc);
            let name = format!("{} {}", route.method, route.template);
            if status.is_none() && !unknown.contains(&name) {
                unknown.push(name);
            }
            let refused = match (needs, who) {
                (None, _) => None,
                (Some(_), Who::Nobody) => Some((401, "Bearer realm=\"orgraph\"")),
                (Some(_), Who::Stranger) => Some((401, "error=\"invalid_token\"")),
                (Some(needed), Who::As(role)) if role < needed => {
                    Some((403, "error=\"insufficient_scope\""))
                }
                (Some(_), Who::As(_)) => None,
            };
            let before = route.mutates().then(|| snapshot.take(&api));
            let reply = send(&api, who, &stranger, &route.method, &path, &body).await;
            cells += 1;
            match refused {
                Some((401, challenge)) => {
                    assert_refused(&reply, 401, challenge, &what);
                    let detail = reply.body["detail"].as_str().unwrap_or_default();
                    let says = if who == Who::Nobody { "needs a token" } else { "not valid" };
                    assert!(detail.contains(says), "{what}: {detail}");
                }
                Some((status, challenge)) => {
                    assert_refused(&reply, status, challenge, &what);
                    let Who::As(role) = who else { unreachable!("a 403 has a role") };
                    let needed = needs.expect("a refused route needs a role");
                    let detail = reply.body["detail"].as_str().unwrap_or_default();
                    assert!(
                        detail.contains(&format!("role is `{role}`"))
                            && detail.contains(&format!("needs `{needed}`")),
                        "{what}: {detail}"
                    );
                }
                None => {
                    let got = reply.status.as_u16();
                    match status {
                        Some(expected) => assert_eq!(got, expected, "{what}: {}", reply.text),
                        None => assert!(
                            [200, 201, 202, 204, 404, 409, 422].contains(&got),
                            "{what}: the handler's answer, not {got}: {}",
                            reply.text
                        ),
                    }
                    assert!(reply.header("www-authenticate").is_empty(), "{what}");
                }
            }
            if let Some(before) = before {
                let after = snapshot.take(&api);
                if refused.is_some() {
                    assert_eq!(after, before, "{what} was refused but changed the database");
                } else if reply.status.is_success() {
                    // The snapshot sees changes: the same check would catch a refused one.
                    assert_ne!(after, before, "{what} succeeded but the snapshot did not change");
                }
            }
        }
    }
    assert_eq!(cells, routes.len() * EVERYONE.len());
    eprintln!(
        "authorization matrix: {} routes × {} callers = {cells} cells; routes without a known answer: {unknown:?}",
        routes.len(),
        EVERYONE.len()
    );

    // Refusals never need the database: with Postgres stopped, every refusal still answers at
    // once, while a request let through gets the 503 of a database that is down.
    let f = fixtures(&api).await;
    tokio::task::block_in_place(|| api.pg.stop()).expect("postgres stops");
    let down = api.get("/api/graph/nodes").await;
    down.assert_problem(503, "postgres");
    for route in routes.iter().filter(|r| r.needs().is_some()) {
        let needs = route.needs();
        let (path, body, _) = request(route, &f, &doc);
        for who in EVERYONE {
            let status = match who {
                Who::Nobody | Who::Stranger => 401,
                Who::As(role) if Some(role) < needs => 403,
                Who::As(_) => continue,
            };
            let started = Instant::now();
            let reply = send(&api, who, &stranger, &route.method, &path, &body).await;
            let took = started.elapsed();
            let what = format!("{} {} as {who:?} with Postgres down", route.method, route.template);
            assert_eq!(reply.status.as_u16(), status, "{what}: {}", reply.text);
            assert!(!reply.header("www-authenticate").is_empty(), "{what}");
            // At once: well under the 1 s a request waits for a pooled connection.
            assert!(took < Duration::from_millis(900), "{what} took {took:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_over_its_rate_gets_429_while_another_is_served() {
    let api = TestApi::start(&[("API_RATE_LIMIT_PER_S", "1"), ("API_RATE_LIMIT_BURST", "3")]).await;
    let read = api.tokens.read.clone();
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..8 {
        let reply = api.send_as(Some(&read), Method::GET, "/api/graph/stats", None).await;
        statuses.push(reply.status.as_u16());
        if reply.status == 429 {
            limited = Some(reply);
            break;
        }
    }
    let limited = limited.unwrap_or_else(|| panic!("no 429 in a burst of 8: {statuses:?}"));
    // The burst of 3 is served (a 4th may be, if a second passed meanwhile).
    assert!(statuses.len() >= 4 && statuses[..3].iter().all(|s| *s == 200), "{statuses:?}");
    limited.assert_problem(429, "this token is over its request rate limit");
    let wait: u64 = limited.header("retry-after").parse().expect("Retry-After in seconds");
    assert!(wait >= 1, "Retry-After {wait}");

    // Other tokens have budgets of their own.
    let write = api.tokens.write.clone();
    let other = api.send_as(Some(&write), Method::GET, "/api/graph/stats", None).await;
    assert_eq!(other.status, 200, "{}", other.text);
    // Authentication comes first: a wrong token is a 401, never a 429.
    for _ in 0..5 {
        let reply = api.send_as(Some("not-a-token"), Method::GET, "/api/graph/stats", None).await;
        assert_eq!(reply.status, 401, "{}", reply.text);
    }
    // And the limited token is served again once its wait is over.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let again = api.send_as(Some(&read), Method::GET, "/api/graph/stats", None).await;
    assert_eq!(again.status, 200, "{}", again.text);
}
