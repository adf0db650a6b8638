//! Each token's request rate limit: tower_governor (governor's GCRA) keyed by the verified
//! caller's name, `API_RATE_LIMIT_PER_S` requests per second with bursts of up to
//! `API_RATE_LIMIT_BURST`. Over it, a 429 problem with `Retry-After` (at least 1 s). It runs
//! after [`super::layer::authenticate`], which refuses every request without a caller first.

use super::tokens::Caller;
use crate::error::problem;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use governor::middleware::NoOpMiddleware;
use std::sync::Arc;
use std::time::Duration;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;

/// The rate-limit key: the name of the request's verified token.
#[derive(Debug, Clone, Copy)]
pub struct CallerKey;

impl KeyExtractor for CallerKey {
    type Key = Arc<str>;

    fn extract<T>(&self, request: &Request<T>) -> Result<Arc<str>, GovernorError> {
        request
            .extensions()
            .get::<Caller>()
            .map(|c| c.name.clone())
            .ok_or(GovernorError::UnableToExtractKey)
    }
}

/// The per-token limit: `per_second` requests per second on average, `burst` at once.
pub fn layer(per_second: u32, burst: u32) -> GovernorLayer<CallerKey, NoOpMiddleware, Body> {
    let period = Duration::from_nanos(1_000_000_000 / u64::from(per_second.max(1)))
        .max(Duration::from_nanos(1));
    let config = GovernorConfigBuilder::default()
        .period(period)
        .burst_size(burst.max(1))
        .key_extractor(CallerKey)
        .finish()
        .unwrap_or_else(|| unreachable!("the period and the burst are positive"));
    GovernorLayer::new(config).error_handler(refusal)
}

fn refusal(error: GovernorError) -> Response<Body> {
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            let seconds = wait_time.max(1);
            let mut response = problem(
                StatusCode::TOO_MANY_REQUESTS,
                format!("this token is over its request rate limit; retry after {seconds} s"),
            );
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
        // Only a request without a verified caller has no key, and authentication refuses
        // those before this layer.
        other => {
            tracing::error!(error = %other, "rate limit without a caller");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "an internal error occurred; it has been logged",
            )
        }
    }
}
