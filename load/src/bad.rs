//! The bad requests: each one the API must refuse with a 4xx (the status it answers today is
//! beside each case), none of which can change data. Ids that cannot exist are negative; unknown
//! routes carry a random segment (a flood of unique URLs must not create new label values on the
//! server). The report counts their answers by status and names any that was not refused.

use super::mix::Kind;
use super::scenario::{Body, Credentials, Planned, Then};
use rand::Rng;
use reqwest::Method;
use serde_json::json;
use std::sync::LazyLock;

/// Bytes of the oversized body: above the API's default 64 KiB limit (413); a larger limit would
/// still refuse it (a 256 KiB name: 422). It is announced, not pushed: see [`super::announced`].
const OVERSIZED_BYTES: usize = 256 * 1024;

static OVERSIZED: LazyLock<Vec<u8>> = LazyLock::new(|| {
    format!(r#"{{"name": "{}", "team": "a"}}"#, "x".repeat(OVERSIZED_BYTES)).into_bytes()
});

/// JSON nested deeper than any parser should follow (serde_json stops at 128 levels: 400).
static DEEP: LazyLock<Vec<u8>> =
    LazyLock::new(|| format!("{}{}", "[".repeat(5_000), "]".repeat(5_000)).into_bytes());

/// How many cases [`plan`] draws from: the arms of its `match`.
const CASES: u32 = 28;

/// One bad request, drawn uniformly from the cases.
pub fn plan(rng: &mut impl Rng) -> Planned {
    let unknown_id = -rng.random_range(1..1_000_000_000i64);
    let uuid = random_uuid(rng);
    let raw = |path: &str, route, content_type, bytes| Planned {
        body: Body::Raw(content_type, bytes),
        ..Planned::simple(Some(Kind::Bad), Method::POST, path.to_string(), route)
    };
    let json = |path: &str, route, body| Planned {
        body: Body::Json(body),
        ..Planned::simple(Some(Kind::Bad), Method::POST, path.to_string(), route)
    };
    let bare = |method, path: String, route| Planned::simple(Some(Kind::Bad), method, path, route);
    const NODES: &str = "POST /api/graph/nodes";
    const JSON: &str = "application/json";
    let planned = match rng.random_range(0..CASES) {
        // Malformed JSON: 400.
        0 => raw("/api/graph/nodes", NODES, JSON, br#"{"name": "#),
        1 => raw("/api/graph/nodes", NODES, JSON, br#"{"name": "a",,}"#),
        // Wrong types and shapes: 422.
        2 => json("/api/graph/nodes", NODES, json!({"name": 5, "team": "a"})),
        3 => raw("/api/graph/nodes", NODES, JSON, b"[1, 2]"),
        4 => json("/api/graph/nodes", NODES, json!({"team": "a"})),
        5 => json("/api/analysis", "POST /api/analysis", json!({"iterations": "many"})),
        6 => json(
            "/api/exports",
            "POST /api/exports",
            json!({"kind": "employee_metrics", "format": "xml"}),
        ),
        7 => json(
            "/api/graph/edges",
            "POST /api/graph/edges",
            json!({"source_id": 1, "target_id": 2, "kind": "friends"}),
        ),
        8 => json(
            "/api/interventions",
            "POST /api/interventions",
            json!({"kind": "reassign", "employee_id": 1, "new_manager_id": 1, "reason": "x"}),
        ),
        // Not JSON at all: 415. Too big: 413.
        9 => raw("/api/graph/nodes", NODES, "text/plain", b"hello"),
        10 => Planned {
            body: Body::Announced(JSON, OVERSIZED.as_slice()),
            ..raw("/api/graph/nodes", NODES, JSON, b"")
        },
        // Unknown ids: 404. A path parameter that does not parse: 400.
        11 => {
            bare(Method::GET, format!("/api/graph/nodes/{unknown_id}"), "GET /api/graph/nodes/{id}")
        }
        12 => bare(
            Method::DELETE,
            format!("/api/graph/edges/{unknown_id}"),
            "DELETE /api/graph/edges/{id}",
        ),
        13 => bare(Method::GET, "/api/graph/nodes/abc".into(), "GET /api/graph/nodes/{id}"),
        14 => {
            bare(Method::GET, format!("/api/interventions/{uuid}"), "GET /api/interventions/{id}")
        }
        15 => bare(
            Method::POST,
            format!("/api/interventions/{uuid}/execute"),
            "POST /api/interventions/{id}/execute",
        ),
        16 => bare(Method::GET, format!("/api/jobs/{uuid}"), "GET /api/jobs/{id}"),
        // A query out of range: 400.
        17 => bare(Method::GET, "/api/graph/nodes?limit=0".into(), "GET /api/graph/nodes"),
        // An unknown route: 404.
        18 => bare(
            Method::GET,
            format!("/api/unknown/{:x}", rng.random::<u64>()),
            "GET /api/unknown/{random}",
        ),
        // A method the route does not have: 405.
        19 => bare(Method::PUT, "/api/graph/stats".into(), "PUT /api/graph/stats"),
        20 => bare(Method::PATCH, "/api/graph/nodes".into(), "PATCH /api/graph/nodes"),
        // No token, or one the API does not know: 401, before anything else happens.
        21 => Planned {
            credentials: Credentials::Missing,
            ..bare(Method::GET, "/api/graph/stats".into(), "GET /api/graph/stats")
        },
        22 => Planned {
            credentials: Credentials::Wrong,
            ..json("/api/graph/nodes", NODES, json!({"name": "intruder", "team": "a"}))
        },
        // Control characters in text (Postgres refuses NUL in text): 422.
        23 => json("/api/graph/nodes", NODES, json!({"name": "a\u{0}b", "team": "t"})),
        24 => json(
            "/api/interventions",
            "POST /api/interventions",
            json!({"kind": "reassign", "employee_id": 1, "new_manager_id": 2, "reason": "a\u{7}\u{0}"}),
        ),
        // Numbers beyond any range: 422 in a body, 400 in a query.
        25 => raw("/api/analysis", "POST /api/analysis", JSON, br#"{"iterations": 1e400}"#),
        26 => bare(
            Method::GET,
            "/api/graph/nodes?limit=99999999999999999999999".into(),
            "GET /api/graph/nodes",
        ),
        // Nested far too deep: 400.
        _ => raw("/api/graph/nodes", NODES, JSON, DEEP.as_slice()),
    };
    Planned { then: Then::Nothing, ..planned }
}

/// A random UUID-shaped id (no such intervention or job exists).
fn random_uuid(rng: &mut impl Rng) -> String {
    let hex = format!("{:032x}", rng.random::<u128>());
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    #[test]
    fn every_case_comes_up_and_none_is_a_seed_or_a_real_delete() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut paths = BTreeSet::new();
        for _ in 0..5000 {
            let planned = plan(&mut rng);
            assert!(!planned.path.contains("seed"));
            if planned.method == Method::DELETE {
                assert!(planned.path.contains("/-"), "{}", planned.path);
            }
            let shape = match &planned.body {
                Body::Empty => String::new(),
                Body::Json(v) => v.to_string(),
                Body::Raw(t, b) | Body::Announced(t, b) => format!("{t} {}", b.len()),
            };
            paths.insert(format!("{} {} {shape}", planned.route, planned.method));
        }
        assert!(paths.len() >= CASES as usize - 3, "{paths:#?}");
        assert_eq!(random_uuid(&mut rng).len(), 36);
    }
}
