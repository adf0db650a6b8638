//! The HTTP metrics layer on a real axum router: what reaches the meter for matched routes, the
//! fallback, errors, odd methods and bodies, and that random paths cannot create series. Every
//! collection is checked against the catalogue.

#![cfg(feature = "axum")]
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Method, Request, Response, StatusCode};
use axum::routing::{get, post};
use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use otel::layers::HttpMetricsLayer;
use otel::metrics::HttpServerMetrics;
use otel::metrics::testing::{Points, Recorder};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, ServiceExt};

const DURATION: &str = "http.server.request.duration";
const ACTIVE: &str = "http.server.active_requests";
const NODE_ROUTE: &str = "/api/graph/nodes/{id}";

async fn node(Path(id): Path<u64>) -> String {
    format!(r#"{{"id":{id},"label":"node"}}"#)
}

/// Answers with the request body twice.
async fn echo(body: Bytes) -> Vec<u8> {
    [body.as_ref(), body.as_ref()].concat()
}

/// A response body of several frames and no known length.
struct Chunks(VecDeque<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}

fn routes() -> Router {
    Router::new()
        .route(NODE_ROUTE, get(node))
        .route("/api/echo", post(echo))
        .route("/api/fail", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }))
        .route("/api/empty", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/hang", get(std::future::pending::<()>))
        .route(
            "/api/stream",
            get(|| async {
                let chunks = [&b"abc"[..], b"defgh", b"ij"].into_iter().map(Bytes::from_static);
                Body::new(Chunks(chunks.collect()))
            }),
        )
}

fn layer(recorder: &Recorder) -> HttpMetricsLayer {
    HttpMetricsLayer::new(HttpServerMetrics::new(recorder.meter()))
}

/// The router with axum's default fallback, metered.
fn app(recorder: &Recorder) -> Router {
    routes().layer(layer(recorder))
}

fn request(method: Method, uri: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder().method(method).uri(uri).body(body.into()).unwrap()
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Bytes) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes())
}

fn collect(recorder: &Recorder) -> Points {
    let points = recorder.collect();
    points.assert_conforms();
    points
}

#[tokio::test]
async fn matched_route_is_recorded_as_its_template() {
    let recorder = Recorder::new();
    let app = app(&recorder);
    let (status, body) = send(&app, request(Method::GET, "/api/graph/nodes/42", ())).await;
    assert_eq!(status, StatusCode::OK);

    let points = collect(&recorder);
    let point = points.only(DURATION);
    assert_eq!(point.count, 1);
    assert_eq!(point.attributes["http.route"], NODE_ROUTE);
    assert_eq!(point.attributes["http.request.method"], "GET");
    assert_eq!(point.attributes["http.response.status_code"], "200");
    assert_eq!(point.attributes["url.scheme"], "http");
    assert!(!point.attributes.contains_key("error.type"));
    assert_eq!(points.sum("http.server.response.body.size", &[]), body.len() as f64);
    for point in &points.0 {
        assert!(point.attributes.values().all(|v| !v.contains("42")), "raw path in {point:?}");
    }
}

#[tokio::test]
async fn unknown_paths_have_no_route_with_default_and_custom_fallback() {
    let recorder = Recorder::new();
    let default_fallback = app(&recorder);
    let custom_fallback = routes()
        .fallback(|| async { (StatusCode::NOT_FOUND, "nothing here") })
        .layer(layer(&recorder));
    send(&default_fallback, request(Method::GET, "/nope", ())).await;
    let (status, body) = send(&custom_fallback, request(Method::GET, "/nope/either", ())).await;
    assert_eq!((status, body.as_ref()), (StatusCode::NOT_FOUND, b"nothing here".as_ref()));

    let points = collect(&recorder);
    let point = points.only(DURATION);
    assert_eq!(point.count, 2);
    assert_eq!(point.attributes["http.response.status_code"], "404");
    assert!(!point.attributes.contains_key("http.route"));
    assert!(!point.attributes.contains_key("error.type"));
    assert_eq!(points.sum("http.server.response.body.size", &[]), 12.0);
}

#[tokio::test]
async fn server_errors_carry_error_type() {
    let recorder = Recorder::new();
    let (status, _) = send(&app(&recorder), request(Method::GET, "/api/fail", ())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let points = collect(&recorder);
    let point = points.only(DURATION);
    assert_eq!(point.attributes["error.type"], "503");
    assert_eq!(point.attributes["http.response.status_code"], "503");
    assert_eq!(point.attributes["http.route"], "/api/fail");
}

#[tokio::test]
async fn unknown_methods_are_recorded_as_other() {
    let recorder = Recorder::new();
    let brew = Method::from_bytes(b"BREW").unwrap();
    let (status, _) = send(&app(&recorder), request(brew, "/api/graph/nodes/1", ())).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    let points = collect(&recorder);
    let point = points.only(DURATION);
    assert_eq!(point.attributes["http.request.method"], "_OTHER");
    assert_eq!(point.attributes["http.route"], NODE_ROUTE);
    assert_eq!(points.only(ACTIVE).attributes["http.request.method"], "_OTHER");
}

#[tokio::test]
async fn https_requests_are_recorded_with_their_scheme() {
    let recorder = Recorder::new();
    let uri = "https://api.example.com/api/graph/nodes/3";
    send(&app(&recorder), request(Method::GET, uri, ())).await;
    assert_eq!(collect(&recorder).only(DURATION).attributes["url.scheme"], "https");
}

#[tokio::test]
async fn body_sizes_are_the_bytes_sent() {
    let recorder = Recorder::new();
    let app = app(&recorder);
    let payload = "x".repeat(1234);
    let (_, echoed) = send(&app, request(Method::POST, "/api/echo", payload.clone())).await;
    assert_eq!(echoed.len(), 2468);
    let (_, streamed) = send(&app, request(Method::GET, "/api/stream", ())).await;
    assert_eq!(streamed.as_ref(), b"abcdefghij");

    let points = collect(&recorder);
    let echo = [("http.route", "/api/echo")];
    assert_eq!(points.sum("http.server.request.body.size", &echo), 1234.0);
    assert_eq!(points.sum("http.server.response.body.size", &echo), 2468.0);
    let stream = [("http.route", "/api/stream")];
    assert_eq!(points.sum("http.server.request.body.size", &stream), 0.0);
    assert_eq!(points.sum("http.server.response.body.size", &stream), 10.0);
    assert_eq!(points.count("http.server.response.body.size", &stream), 1);
}

#[tokio::test]
async fn a_request_stays_active_until_its_body_is_consumed() {
    let recorder = Recorder::new();
    let app = app(&recorder);
    let response = app.clone().oneshot(request(Method::GET, "/api/graph/nodes/9", ())).await;
    let body = response.unwrap().into_body();

    let during = collect(&recorder);
    assert_eq!(during.value(ACTIVE, &[]), 1.0);
    assert_eq!(during.count(DURATION, &[]), 0);

    let bytes = body.collect().await.unwrap().to_bytes();
    let after = collect(&recorder);
    assert_eq!(after.value(ACTIVE, &[]), 0.0);
    assert_eq!(after.count(DURATION, &[]), 1);
    assert_eq!(after.sum("http.server.response.body.size", &[]), bytes.len() as f64);
}

#[tokio::test]
async fn a_dropped_body_still_records_its_request() {
    let recorder = Recorder::new();
    let app = app(&recorder);
    let response = app.clone().oneshot(request(Method::GET, "/api/stream", ())).await.unwrap();
    assert_eq!(collect(&recorder).value(ACTIVE, &[]), 1.0);
    drop(response);

    let points = collect(&recorder);
    assert_eq!(points.value(ACTIVE, &[]), 0.0);
    assert_eq!(points.count(DURATION, &[("http.response.status_code", "200")]), 1);
    assert_eq!(points.sum("http.server.response.body.size", &[]), 0.0);
}

#[tokio::test]
async fn an_empty_response_is_complete_with_its_head() {
    let recorder = Recorder::new();
    let app = app(&recorder);
    let response = app.clone().oneshot(request(Method::GET, "/api/empty", ())).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    let points = collect(&recorder);
    assert_eq!(points.value(ACTIVE, &[]), 0.0);
    assert_eq!(points.count(DURATION, &[("http.response.status_code", "204")]), 1);
}

#[tokio::test]
async fn random_unknown_paths_add_no_series() {
    let recorder = Recorder::new();
    let app = app(&recorder);
    send(&app, request(Method::GET, "/api/graph/nodes/1", ())).await;
    send(&app, request(Method::GET, "/x/first", ())).await;
    let before = collect(&recorder);
    let series = before.series(DURATION);
    assert_eq!(series, 2);

    for _ in 0..10_000 {
        let path = format!("/x/{}", uuid::Uuid::new_v4());
        let (status, _) = send(&app, request(Method::GET, &path, ())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    let after = collect(&recorder);
    assert_eq!(after.series(DURATION), series);
    assert_eq!(after.series("http.server.request.body.size"), series);
    assert_eq!(after.series("http.server.response.body.size"), series);
    assert_eq!(after.series(ACTIVE), before.series(ACTIVE));
    assert_eq!(after.count(DURATION, &[("http.response.status_code", "404")]), 10_001);
    assert_eq!(after.value(ACTIVE, &[]), 0.0);
}

// The two tests below end a request without a response. The layer records it with
// `error.type=_OTHER` and, as the semantic conventions say, no status code; the catalogue still
// declares `http.response.status_code` as always present, so `assert_conforms` would reject these
// points until that attribute is made conditional. They are checked attribute by attribute.

/// Checks the one failed request: no status, `error.type=_OTHER`, no longer active.
fn assert_failed(points: &Points, route: Option<&str>) {
    let point = points.only(DURATION);
    assert_eq!(point.count, 1);
    assert_eq!(point.attributes["error.type"], "_OTHER");
    assert!(!point.attributes.contains_key("http.response.status_code"));
    assert_eq!(point.attributes.get("http.route").map(String::as_str), route);
    assert_eq!(points.value(ACTIVE, &[]), 0.0);
}

#[tokio::test]
async fn an_inner_service_error_is_recorded_as_failed() {
    let recorder = Recorder::new();
    let failing = tower::service_fn(|_: Request<Body>| async {
        Err::<Response<Body>, _>(std::io::Error::other("connection reset"))
    });
    let service = layer(&recorder).layer(failing);
    let result = service.oneshot(request(Method::GET, "/anything", ())).await;
    assert_eq!(result.err().map(|e| e.to_string()), Some("connection reset".to_string()));
    assert_failed(&recorder.collect(), None);
}

#[tokio::test]
async fn an_abandoned_request_is_recorded_as_failed() {
    let recorder = Recorder::new();
    let call = app(&recorder).oneshot(request(Method::GET, "/api/hang", ()));
    let outcome = tokio::time::timeout(Duration::from_millis(20), call).await;
    assert!(outcome.is_err(), "the handler never answers");
    assert_failed(&recorder.collect(), Some("/api/hang"));
}
