//! The error side of the OpenAPI document, written once for every operation instead of in each
//! handler's annotation: the problem responses an operation can really get (which follow from
//! its shape: a JSON body, path or query parameters, the role it needs, whether it reaches
//! Postgres or Redis), each `application/problem+json` with the `Problem` schema, and the bearer
//! security scheme with, on every protected operation, the role it needs as the requirement's
//! scope. The roles come from [`required_role`], the function the authentication layer checks,
//! so the document and the checks cannot disagree. Generated clients and fuzzers (the API's own
//! fuzz test runs schemathesis against this document) rely on it being complete.
//!
//! The annotations of the handlers keep their success responses and the problems only their
//! handler can answer (409); every 4xx/5xx response of the document, those included, gets the
//! problem content here.

use crate::auth::{Role, required_role};
use crate::error::PROBLEM_JSON;
use axum::http::Method;
use utoipa::Modify;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};

/// The name of the bearer security scheme in `components.securitySchemes`.
pub const BEARER: &str = "bearer";

/// The one route that answers without Postgres or Redis (its 503 can only be the time limit).
const LIVE_PATH: &str = "/health/live";

/// The `Modify` that completes the document; it runs on the document with its paths, which
/// utoipa-axum adds only when the routers are split (see [`super::document`]).
pub struct Problems;

impl Modify for Problems {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(BEARER, bearer_scheme());
        for (path, item) in openapi.paths.paths.iter_mut() {
            let shared = has_params(item.parameters.as_deref().unwrap_or_default());
            for (method, operation) in operations(item) {
                complete(path, &method, operation, shared);
            }
        }
    }
}

fn bearer_scheme() -> SecurityScheme {
    let description = "A token in `Authorization: Bearer <token>`. Each token has a role: \
                       `read` (GET), `write` (changes, analyses, exports, interventions) or \
                       `admin` (replacing the graph); a higher role includes the lower ones. \
                       Each operation's requirement names the role it needs as its scope.";
    SecurityScheme::Http(
        HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(description)).build(),
    )
}

/// The operations of a path item, each with its method.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::OPTIONS, &mut item.options),
        (Method::HEAD, &mut item.head),
        (Method::PATCH, &mut item.patch),
        (Method::TRACE, &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|o| (method, o)))
}

/// Which kinds of parameter a list has: (path, query).
fn has_params(params: &[RefOr<utoipa::openapi::path::Parameter>]) -> (bool, bool) {
    let is = |kind: ParameterIn| {
        params.iter().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == kind))
    };
    (is(ParameterIn::Path), is(ParameterIn::Query))
}

/// Adds what `method path` can answer besides its success, and its security requirement.
fn complete(path: &str, method: &Method, operation: &mut Operation, shared: (bool, bool)) {
    let (own_path, own_query) = has_params(operation.parameters.as_deref().unwrap_or_default());
    let (path_params, query_params) = (shared.0 || own_path, shared.1 || own_query);
    let body = operation.request_body.is_some();
    let role = required_role(method, path);

    let mut problems: Vec<(u16, Vec<&str>)> = Vec::new();
    let mut add =
        |status: u16, reason: &'static str| match problems.iter_mut().find(|(s, _)| *s == status) {
            Some((_, reasons)) => reasons.push(reason),
            None => problems.push((status, vec![reason])),
        };
    if path_params || query_params {
        add(400, "a path or query parameter does not parse, or is out of range");
    }
    if body {
        add(400, "the body is not well-formed JSON");
        add(413, "the body is larger than the limit");
        add(415, "the body is not sent as `Content-Type: application/json`");
        add(
            422,
            "the body's values are not acceptable: a wrong type, a missing or unknown field, a \
             value out of range, an unknown referenced employee",
        );
    }
    if path_params {
        add(404, "nothing has this id");
    }
    if role.is_some() {
        add(
            401,
            "no `Authorization: Bearer` token, or not a valid one (`WWW-Authenticate` says which)",
        );
        add(403, "the token's role is lower than the one this operation needs");
        add(429, "this token is over its request rate limit (`Retry-After` says when to retry)");
    }
    if path != LIVE_PATH {
        add(
            503,
            "Postgres or Redis is down, busy or behind an open circuit breaker (`Retry-After` \
             says when to retry)",
        );
    }
    add(503, "the request took longer than the server's time limit");
    add(500, "a server fault (it is logged)");

    let responses = &mut operation.responses.responses;
    for (status, reasons) in problems {
        let described = capitalised(&reasons.join("; or "));
        responses.entry(status.to_string()).or_insert_with(|| RefOr::T(Response::new(described)));
    }
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response
            && status.starts_with(['4', '5'])
        {
            make_problem(status, response);
        }
    }
    if let Some(role) = role {
        operation.security = Some(vec![requirement(role)]);
    }
}

/// The problem content of an error response, and the headers that come with its status.
fn make_problem(status: &str, response: &mut Response) {
    response.content.clear();
    let problem = Content::new(Some(Ref::from_schema_name("Problem")));
    response.content.insert(PROBLEM_JSON.to_string(), RefOr::T(problem));
    let header = |description: &str, kind: Type| {
        let mut header = Header::new(Object::with_type(kind));
        header.description = Some(description.to_string());
        RefOr::T(header)
    };
    match status {
        "401" | "403" => {
            let challenge = "The RFC 6750 challenge: `Bearer realm=\"orgraph\"`, with \
                             `error=\"invalid_token\"` or `error=\"insufficient_scope\"`";
            response.headers.insert("WWW-Authenticate".into(), header(challenge, Type::String));
        }
        "429" => {
            let when = "Seconds to wait before retrying";
            response.headers.insert("Retry-After".into(), header(when, Type::Integer));
        }
        "503" => {
            let when = "Seconds to wait before retrying, when a dependency is down or busy (not \
                        after the time limit, nor on a readiness check)";
            response.headers.insert("Retry-After".into(), header(when, Type::Integer));
        }
        _ => {}
    }
}

/// The bearer requirement with `role` as its scope.
fn requirement(role: Role) -> SecurityRequirement {
    SecurityRequirement::new(BEARER, [role.as_str()])
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect::<String>() + ".",
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Every operation of the served document as (method, path, operation).
    fn operations_of(doc: &Value) -> Vec<(Method, String, Value)> {
        let paths = doc["paths"].as_object().expect("paths");
        let mut out = Vec::new();
        for (path, item) in paths {
            for (name, operation) in item.as_object().expect("path item") {
                if let Ok(method) = name.to_uppercase().parse::<Method>()
                    && operation.get("responses").is_some()
                {
                    out.push((method, path.clone(), operation.clone()));
                }
            }
        }
        out
    }

    fn document() -> Value {
        serde_json::to_value(super::super::document()).expect("document serialises")
    }

    #[test]
    fn protected_operations_name_their_role_and_open_ones_need_nothing() {
        let doc = document();
        let scheme = &doc["components"]["securitySchemes"][BEARER];
        assert_eq!(scheme["type"], "http", "{scheme}");
        assert_eq!(scheme["scheme"], "bearer", "{scheme}");
        let operations = operations_of(&doc);
        assert!(operations.len() >= 19, "{} operations", operations.len());
        let mut open = Vec::new();
        for (method, path, operation) in &operations {
            let responses = &operation["responses"];
            match required_role(method, path) {
                Some(role) => {
                    let want = serde_json::json!([{ BEARER: [role.as_str()] }]);
                    assert_eq!(operation["security"], want, "{method} {path}");
                    for status in ["401", "403", "429"] {
                        assert!(responses[status].is_object(), "{method} {path}: no {status}");
                    }
                    let challenge = &responses["401"]["headers"]["WWW-Authenticate"];
                    assert!(challenge.is_object(), "{method} {path}");
                    assert!(responses["429"]["headers"]["Retry-After"].is_object());
                }
                None => {
                    assert!(operation.get("security").is_none(), "{method} {path}");
                    assert!(responses.get("401").is_none(), "{method} {path}");
                    open.push(path.as_str());
                }
            }
        }
        open.sort_unstable();
        assert_eq!(open, ["/health/live", "/health/ready"]);
        let roles = |role: Role| {
            operations.iter().filter(|(m, p, _)| required_role(m, p) == Some(role)).count()
        };
        assert_eq!(roles(Role::Admin), 1, "only the seed needs admin");
        assert!(roles(Role::Read) >= 7 && roles(Role::Write) >= 9);
    }

    #[test]
    fn every_operation_declares_the_problems_it_can_get() {
        let doc = document();
        assert!(doc["components"]["schemas"]["Problem"].is_object());
        for (method, path, operation) in operations_of(&doc) {
            let responses = operation["responses"].as_object().expect("responses");
            let has = |status: &str| responses.contains_key(status);
            let at = format!("{method} {path}");
            assert!(has("500") && has("503"), "{at}: 500 and 503");
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(has(status), "{at}: a JSON body can get {status}");
                }
            } else {
                assert!(!has("413") && !has("415"), "{at}: no body, no 413/415");
            }
            let params = operation["parameters"].as_array().cloned().unwrap_or_default();
            let in_path = params.iter().any(|p| p["in"] == "path");
            assert_eq!(has("404"), in_path, "{at}: 404 exactly where an id is in the path");
            if !params.is_empty() {
                assert!(has("400"), "{at}: a parameter that does not parse is a 400");
            }
            for (status, response) in responses {
                let content = response["content"].as_object();
                if status.starts_with(['4', '5']) {
                    let content = content.expect("problem content");
                    assert_eq!(content.keys().collect::<Vec<_>>(), [PROBLEM_JSON], "{at} {status}");
                    let schema = &content[PROBLEM_JSON]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/Problem", "{at} {status}");
                    let description = response["description"].as_str().unwrap_or_default();
                    assert!(!description.is_empty(), "{at} {status}: described");
                } else {
                    assert!(
                        content.is_none_or(|c| !c.contains_key(PROBLEM_JSON)),
                        "{at} {status}: a success is not a problem"
                    );
                }
            }
        }
    }
}
