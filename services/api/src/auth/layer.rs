//! The authentication middleware: the route's required role ([`super::required_role`]), the
//! `Authorization: Bearer <token>` header, the token's caller, the role check, in that order,
//! before anything else of the request runs. Refusals are problems with a `WWW-Authenticate`
//! header (RFC 6750): 401 when there is no valid token, 403 when the token's role is too low.
//! The verified [`Caller`] goes into the request's extensions for the rate limit.

use super::policy::required_role;
use super::tokens::{Caller, Tokens};
use crate::error::problem;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

/// Checks the request's token against `tokens` (the route's role, when it needs one).
pub async fn authenticate(
    State(tokens): State<Arc<Tokens>>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = match request.extensions().get::<MatchedPath>() {
        Some(matched) => matched.as_str(),
        None => request.uri().path(),
    };
    let Some(needed) = required_role(request.method(), route) else {
        return next.run(request).await;
    };
    let caller = match bearer(request.headers()) {
        Some(token) => tokens.verify(token),
        None => {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "this route needs a token: send `Authorization: Bearer <token>`",
                "Bearer realm=\"orgraph\"",
            );
        }
    };
    let Some(caller) = caller else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the bearer token is not valid",
            "Bearer realm=\"orgraph\", error=\"invalid_token\"",
        );
    };
    if caller.role < needed {
        let detail = format!(
            "this token's role is `{}`; {} {route} needs `{needed}`",
            caller.role,
            request.method()
        );
        return refuse(
            StatusCode::FORBIDDEN,
            detail,
            "Bearer realm=\"orgraph\", error=\"insufficient_scope\"",
        );
    }
    request.extensions_mut().insert::<Caller>(caller);
    next.run(request).await
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

fn refuse(status: StatusCode, detail: impl Into<String>, challenge: &'static str) -> Response {
    let mut response = problem(status, detail);
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_header_with_a_token_is_read() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
            bearer(&headers).map(str::to_owned)
        };
        assert_eq!(with("Bearer abc"), Some("abc".into()));
        assert_eq!(with("bearer  abc "), Some("abc".into()));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
