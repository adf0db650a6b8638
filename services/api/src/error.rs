//! Every error the API answers with is an RFC 9457 problem (`application/problem+json`) with a
//! `detail` that says what was wrong. Handlers return [`ApiError`]; rejections of axum's
//! extractors are mapped by [`crate::extract`]; responses produced outside the handlers (timeouts,
//! body limits, unknown methods) are rewritten by [`ensure_problem`].
//!
//! 5xx is for real server faults only; those are logged with their cause. A dependency that is
//! down or whose breaker is open is a 503 with `Retry-After`, answered at once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Duration;
use utoipa::ToSchema;

/// The media type of problem responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, PartialEq)]
pub struct Problem {
    /// A URI reference naming the kind of problem (relative: `/problems/<kind>`).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What exactly went wrong with this request.
    pub detail: String,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (syntax, parameters).
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but its values are not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the limit.
    #[error("{0}")]
    TooLarge(String),
    /// The body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A dependency is down, or its breaker is open.
    #[error("{dependency} is unavailable")]
    Unavailable {
        /// `postgres` or `redis`.
        dependency: &'static str,
        /// When to try again.
        retry_after: Duration,
    },
    /// The dependency answers, but every pooled connection stayed in use for the pool's
    /// timeout (long queries, locks): not an outage, and not a breaker failure.
    #[error("{dependency} is busy: every pooled connection stayed in use")]
    Busy {
        /// `postgres`.
        dependency: &'static str,
    },
    /// A server fault.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A database error as the client sees it: lost connections and pool timeouts are
    /// "unavailable", anything else is a server fault.
    pub fn from_db(error: sqlx::Error) -> ApiError {
        if is_db_outage(&error) {
            tracing::warn!(error = %error, "postgres unavailable");
            ApiError::Unavailable { dependency: "postgres", retry_after: Duration::from_secs(1) }
        } else {
            ApiError::Internal(anyhow::Error::new(error).context("database query"))
        }
    }
}

/// Whether a database error means Postgres is unreachable (rather than the query being wrong),
/// or the pool is closed (the API is stopping). Only these count as failures for the breaker. A
/// `PoolTimedOut` reaching here is one while Postgres did not answer a fresh connection either
/// ([`crate::db::Db::run`] tells a busy pool apart).
pub fn is_db_outage(error: &sqlx::Error) -> bool {
    servicekit::unreachable::is_unreachable(error) || matches!(error, sqlx::Error::PoolClosed)
}

/// A problem response with `status` and `detail`.
pub fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let title = status.canonical_reason().unwrap_or("Error").to_string();
    let kind = format!("/problems/{}", title.to_ascii_lowercase().replace(' ', "-"));
    let body = Problem { kind, title, status: status.as_u16(), detail: detail.into() };
    let json = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = (status, json).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "request failed");
                "an internal error occurred; it has been logged".to_string()
            }
            ApiError::Unavailable { dependency, retry_after } => {
                let detail = format!("{dependency} is unavailable");
                return retry_later(status, detail, *retry_after);
            }
            ApiError::Busy { .. } => {
                return retry_later(status, self.to_string(), Duration::from_secs(1));
            }
            other => other.to_string(),
        };
        problem(status, detail)
    }
}

/// A 503 problem with `Retry-After`, the wait also said in the detail.
fn retry_later(status: StatusCode, detail: String, retry_after: Duration) -> Response {
    let seconds = retry_after.as_secs().max(1);
    let mut response = problem(status, format!("{detail}; retry after {seconds} s"));
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// Rewrites error responses made outside the handlers (axum's 405, tower-http's 413 and
/// timeout) into problems, so every 4xx/5xx the API sends is `application/problem+json`.
pub async fn ensure_problem(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if status.as_u16() < 400 || is_problem {
        return response;
    }
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => "this route does not support the request's method",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is larger than the limit",
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
            "the request took longer than the server's time limit"
        }
        StatusCode::NOT_FOUND => "no such resource",
        _ => "the request could not be processed",
    };
    let mut rewritten = problem(status, detail);
    if let Some(allow) = response.headers().get(header::ALLOW) {
        rewritten.headers_mut().insert(header::ALLOW, allow.clone());
    }
    rewritten
}
