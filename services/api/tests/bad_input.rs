//! Thousands of malformed requests, generated from the API's own OpenAPI document: for every
//! operation, bodies with each field of the wrong type, missing, out of range or unknown, bodies
//! that are not JSON or not declared as JSON, path parameters that are not ids, query parameters
//! that are not numbers, and methods the route does not take. Every answer must be a 4xx problem
//! (never a 5xx), and once every kind of mistake has been seen, more mistakes add no HTTP series.

mod support;

use otel::metrics::testing::Recorder;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::Method;
use serde_json::{Value, json};
use support::TestApi;

/// One malformed request.
struct Case {
    method: Method,
    path: String,
    body: Option<(&'static str, Vec<u8>)>,
}

/// Values no field of `schema`'s type accepts: other JSON types, and out of every range the
/// API allows (a negative id names no employee, no string field takes 3,000 characters, no number
/// field takes 1e300).
fn wrong_values(schema: &Value, doc: &Value, rng: &mut ChaCha8Rng) -> Vec<Value> {
    let schema = resolve(schema, doc);
    let long = json!("x".repeat(rng.random_range(3000..4000)));
    let nullable = schema["type"].as_array().is_some_and(|t| t.contains(&json!("null")));
    let values = match type_of(schema) {
        "integer" => vec![
            json!("abc"),
            json!(null),
            json!(true),
            json!(1.5),
            json!([]),
            json!({}),
            json!(-1),
        ],
        "number" => vec![
            json!("abc"),
            json!(null),
            json!(true),
            json!([]),
            json!({}),
            json!(-1),
            json!(1e300),
        ],
        _ if schema["enum"].is_array() => {
            vec![
                json!(null),
                json!(true),
                json!(7),
                json!([]),
                json!({}),
                json!("not-a-valid-value"),
                long,
            ]
        }
        _ => vec![json!(null), json!(true), json!(7), json!([]), json!({}), long],
    };
    // `null` is an absent optional field, which is fine.
    values.into_iter().filter(|v| !(nullable && v.is_null())).collect()
}

/// The JSON type of a schema (`type` may be a list with `null` in OpenAPI 3.1).
fn type_of(schema: &Value) -> &str {
    match &schema["type"] {
        Value::String(t) => t,
        Value::Array(types) => {
            types.iter().filter_map(Value::as_str).find(|t| *t != "null").unwrap_or("null")
        }
        _ => "",
    }
}

/// A valid-looking body for a schema, so one field at a time can be broken.
fn example(schema: &Value, doc: &Value) -> Value {
    let schema = resolve(schema, doc);
    match Some(type_of(schema)) {
        Some("object") => {
            let mut out = serde_json::Map::new();
            for (name, prop) in schema["properties"].as_object().into_iter().flatten() {
                out.insert(name.clone(), example(prop, doc));
            }
            Value::Object(out)
        }
        Some("integer") => json!(1),
        Some("number") => json!(1.0),
        Some("boolean") => json!(true),
        Some("array") => json!([]),
        _ => match schema["enum"].as_array().and_then(|e| e.first()) {
            Some(first) => first.clone(),
            None => json!("text"),
        },
    }
}

fn resolve<'a>(schema: &'a Value, doc: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &doc["components"]["schemas"][name],
        None => schema,
    }
}

/// Malformed requests for every operation of the document.
fn corpus(doc: &Value, rng: &mut ChaCha8Rng) -> Vec<Case> {
    let mut cases = Vec::new();
    let json_body = |v: &Value| Some(("application/json", v.to_string().into_bytes()));
    for (template, item) in doc["paths"].as_object().into_iter().flatten() {
        let methods: Vec<&str> =
            item.as_object().into_iter().flatten().map(|(m, _)| m.as_str()).collect();
        let bad_ids = ["abc", "-1", "1.5", "%20", "99999999999999999999", "null", "🦀"];
        let paths: Vec<String> = if template.contains('{') {
            bad_ids.iter().map(|id| template.replace("{id}", id)).collect()
        } else {
            vec![template.clone()]
        };
        for (method, op) in item.as_object().into_iter().flatten() {
            let Ok(m) = method.to_uppercase().parse::<Method>() else { continue };
            for path in &paths {
                if path != template {
                    cases.push(Case {
                        method: m.clone(),
                        path: path.clone(),
                        body: json_body(&json!({})),
                    });
                }
            }
            if let Some(params) = op["parameters"].as_array() {
                for p in params.iter().filter(|p| p["in"] == "query") {
                    let name = p["name"].as_str().unwrap_or_default();
                    for v in ["abc", "-5", "1e999", "", "%00", "99999999999999999999"] {
                        cases.push(Case {
                            method: m.clone(),
                            path: format!("{template}?{name}={v}"),
                            body: None,
                        });
                    }
                }
            }
            let Some(schema) =
                op["requestBody"]["content"]["application/json"]["schema"].as_object()
            else {
                continue;
            };
            let schema = Value::Object(schema.clone());
            let valid = example(&schema, doc);
            cases.push(Case {
                method: m.clone(),
                path: template.clone(),
                body: Some(("application/json", b"{\"oops\": ".to_vec())),
            });
            cases.push(Case {
                method: m.clone(),
                path: template.clone(),
                body: Some(("text/plain", valid.to_string().into_bytes())),
            });
            cases.push(Case {
                method: m.clone(),
                path: template.clone(),
                body: Some(("application/json", vec![0xff, 0xfe, 0x00])),
            });
            cases.push(Case {
                method: m.clone(),
                path: template.clone(),
                body: json_body(&json!([valid.clone()])),
            });
            let mut unknown = valid.clone();
            unknown["unexpected_field"] = json!(1);
            cases.push(Case {
                method: m.clone(),
                path: template.clone(),
                body: json_body(&unknown),
            });
            let properties = resolve(&schema, doc)["properties"].clone();
            let required: Vec<&str> = resolve(&schema, doc)["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            for (field, prop) in properties.as_object().into_iter().flatten() {
                if required.contains(&field.as_str()) {
                    let mut missing = valid.clone();
                    missing.as_object_mut().map(|o| o.remove(field));
                    cases.push(Case {
                        method: m.clone(),
                        path: template.clone(),
                        body: json_body(&missing),
                    });
                }
                for wrong in wrong_values(prop, doc, rng) {
                    let mut body = valid.clone();
                    body[field] = wrong;
                    cases.push(Case {
                        method: m.clone(),
                        path: template.clone(),
                        body: json_body(&body),
                    });
                }
            }
            // Methods this route does not take.
            for other in ["PUT", "PATCH", "DELETE", "GET", "POST"] {
                if !methods.contains(&other.to_lowercase().as_str())
                    && let Ok(other) = other.parse::<Method>()
                {
                    cases.push(Case { method: other, path: template.clone(), body: None });
                }
            }
        }
    }
    for _ in 0..400 {
        let random: String =
            (0..rng.random_range(1..40)).map(|_| rng.random_range(b'a'..=b'z') as char).collect();
        cases.push(Case { method: Method::GET, path: format!("/api/{random}"), body: None });
    }
    cases
}

/// Distinct attribute sets of every HTTP server instrument.
fn http_series(recorder: &Recorder) -> usize {
    let points = recorder.collect();
    points.assert_conforms();
    points.0.iter().filter(|p| p.name.starts_with("http.server.")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_4xx_and_add_no_series() {
    let recorder = Recorder::global();
    // Thousands of requests as fast as they go: above the default rate limit, whose 429s are
    // another test's subject.
    let api = TestApi::start(&[
        ("BODY_LIMIT_BYTES", "2048"),
        ("API_RATE_LIMIT_PER_S", "1000000"),
        ("API_RATE_LIMIT_BURST", "1000000"),
    ])
    .await;
    api.post("/api/graph/seed", json!({"employees": 50, "avg_reports": 4, "seed": 1})).await;
    let doc = api.get("/api/openapi.json").await.body;

    let mut total = 0;
    let mut series = Vec::new();
    for seed in 1..=5 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let cases = corpus(&doc, &mut rng);
        for case in cases {
            let reply = api.send(case.method.clone(), &case.path, case.body).await;
            let status = reply.status.as_u16();
            assert!(
                (400..500).contains(&status),
                "{} {} answered {status}: {}",
                case.method,
                case.path,
                reply.text
            );
            assert_eq!(
                reply.header("content-type"),
                "application/problem+json",
                "{} {}",
                case.method,
                case.path
            );
            total += 1;
        }
        series.push(http_series(recorder));
    }
    assert!(total > 3000, "thousands of malformed requests: {total}");
    // Later rounds repeat the mistakes of the first with other values: no new series.
    assert!(series.iter().all(|n| *n == series[0]), "HTTP series grew between rounds: {series:?}");
    assert_eq!(api.get("/health/ready").await.status, 200, "the service is unharmed");
}
