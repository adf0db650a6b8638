//! Every error the API answers with is an RFC 9457 problem (`application/problem+json`) with a
//! `detail` that says what was wrong. Handlers return [`ApiError`]; rejections of axum's
//! extractors are mapped by [`crate::extract`]; responses produced outside the handlers (timeouts,
//! body limits, unknown methods) are rewritten by [`ensure_problem`].
//!
//! 5xx is for real server faults only; those are logged with their cause. A dependency that is
//! down or whose breaker is open is a 503 with `Retry-After`, answered at once. A database error
//! caused by the request's data (SQLSTATE classes 22, 23, 54, and the deadlocks and serialization
//! failures of class 40) is a 4xx whose detail says what kind of value was wrong, never the SQL
//! or the value ([`db_refusal`]).

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
    /// A queue is full for now: try again after `retry_after` (429 with `Retry-After`).
    #[error("{detail}")]
    TooManyRequests {
        /// Which limit, and how full.
        detail: String,
        /// When to try again.
        retry_after: Duration,
    },
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
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable { .. } | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A database error as the client sees it: lost connections and pool timeouts are
    /// "unavailable", a refusal of the request's data is a 4xx ([`db_refusal`]), anything else is
    /// a server fault.
    pub fn from_db(error: sqlx::Error) -> ApiError {
        if is_db_outage(&error) {
            tracing::warn!(error = %error, "postgres unavailable");
            return ApiError::Unavailable {
                dependency: "postgres",
                retry_after: Duration::from_secs(1),
            };
        }
        let code = error.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned());
        if let Some(refusal) = code.as_deref().and_then(db_refusal) {
            // The database's own message (which may quote the value) is for the log only.
            tracing::info!(error = %error, status = %refusal.status(), "postgres refused the request's data");
            return refusal;
        }
        ApiError::Internal(anyhow::Error::new(error).context("database query"))
    }
}

/// What a database error with SQLSTATE `code` means for the client, when the request's data
/// caused it; `None` when it is a server fault (a wrong query, a missing table, a full disk...).
///
/// * class 22, data exception: 422 (a value the database cannot store or convert);
/// * class 23, integrity constraint violation: 409 when the request collides with existing data
///   (a unique or exclusion violation, or records still depending on it), 422 when its values
///   break a rule (a reference to a missing record: every foreign key of the schema cascades
///   on delete, so a violation can only be an insert naming a record that does not exist; a
///   missing required value; a failed check);
/// * class 54, program limit exceeded: 422 (a value larger than the database can handle);
/// * 40001 and 40P01, a serialization failure or a deadlock with a concurrent request: 409, the
///   same request may succeed when sent again.
///
/// The detail names the kind of problem and the SQLSTATE, never the statement or the value.
pub fn db_refusal(code: &str) -> Option<ApiError> {
    let invalid = |what: &str| Some(ApiError::Invalid(format!("{what} (SQLSTATE {code})")));
    let conflict = |what: &str| Some(ApiError::Conflict(format!("{what} (SQLSTATE {code})")));
    match code {
        "22001" => invalid("a text value of the request is longer than the database allows"),
        "22003" => invalid("a number of the request is out of the range the database stores"),
        "22008" => invalid("a date or time of the request is out of range"),
        "22021" | "22P05" => invalid(
            "a text value of the request holds a character the database cannot store, such as U+0000",
        ),
        "22P02" => invalid("a value of the request is not valid for its type"),
        c if c.starts_with("22") => invalid("a value of the request is not valid data"),
        "23505" => conflict("a record with the same identity already exists"),
        "23P01" => conflict("the request overlaps an existing record"),
        "23001" => conflict("other records still depend on this one"),
        "23503" => invalid("the request refers to a record that does not exist"),
        "23502" => invalid("the request leaves out a required value"),
        "23514" => invalid("a value of the request is outside what the data allows"),
        c if c.starts_with("23") => conflict("the request breaks an integrity rule of the data"),
        c if c.starts_with("54") => {
            invalid("a value of the request is larger than the database can handle")
        }
        "40001" | "40P01" => {
            conflict("a concurrent request changed the same data; send the request again")
        }
        _ => None,
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
            ApiError::TooManyRequests { detail, retry_after } => {
                return retry_later(status, detail.clone(), *retry_after);
            }
            other => other.to_string(),
        };
        problem(status, detail)
    }
}

/// A problem (503 or 429) with `Retry-After`, the wait also said in the detail.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(code: &str) -> Option<(u16, String)> {
        db_refusal(code).map(|e| (e.status().as_u16(), e.to_string()))
    }

    #[test]
    fn data_exceptions_are_422_naming_the_kind_of_value() {
        for (code, says) in [
            ("22001", "text value"),
            ("22003", "out of the range"),
            ("22021", "U+0000"),
            ("22P05", "U+0000"),
            ("22P02", "not valid for its type"),
            ("22008", "date or time"),
            ("22012", "not valid data"),
            ("2200D", "not valid data"),
        ] {
            let (status, detail) = answer(code).unwrap_or_else(|| panic!("{code} is refused"));
            assert_eq!(status, 422, "{code}");
            assert!(detail.contains(says) && detail.contains(code), "{code}: {detail}");
        }
    }

    #[test]
    fn integrity_violations_are_409_for_collisions_and_422_for_bad_values() {
        for (code, status) in [
            ("23505", 409),
            ("23P01", 409),
            ("23001", 409),
            ("23000", 409),
            ("23503", 422),
            ("23502", 422),
            ("23514", 422),
            ("54000", 422),
            ("54001", 422),
            ("40001", 409),
            ("40P01", 409),
        ] {
            assert_eq!(answer(code).map(|a| a.0), Some(status), "{code}");
        }
        assert!(answer("23505").is_some_and(|(_, d)| d.contains("already exists")));
        assert!(answer("23503").is_some_and(|(_, d)| d.contains("does not exist")));
    }

    #[test]
    fn real_faults_stay_server_faults() {
        // Syntax error, undefined table, undefined column, insufficient privilege, disk full,
        // internal error, out of memory, a constraint violation only found at commit.
        for code in ["42601", "42P01", "42703", "42501", "53100", "XX000", "53200", "40002"] {
            assert!(db_refusal(code).is_none(), "{code}");
        }
        let e = ApiError::from_db(sqlx::Error::RowNotFound);
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn a_full_queue_is_a_429_with_retry_after() {
        let e = ApiError::TooManyRequests {
            detail: "the analysis queue is full".into(),
            retry_after: Duration::from_secs(5),
        };
        let response = e.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
