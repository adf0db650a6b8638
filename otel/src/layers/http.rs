//! The HTTP server layer: metrics and, when traces are on, the server span of every request. It
//! exists so that no service builds an HTTP attribute itself: every request is recorded through
//! [`HttpServerMetrics`] with the attributes the semantic conventions and our cardinality rules
//! allow: the method (unknown ones as `_OTHER`), the route *template* axum matched (never the raw
//! path, absent when no route matched), the scheme and the status code.
//!
//! The span (`http_span`) continues the caller's trace when the request carries a W3C
//! `traceparent`, is named `{method} {route template}` (just the method without a route), and
//! carries the same attributes as the metrics. The inner service runs with the span's context
//! current (in `call` and in every poll), so the spans made while handling the request are its
//! children. It ends where the request is recorded (below). With traces off, the layer does no
//! span work beyond one flag check.
//!
//! A request counts as active from the moment it reaches the layer until its response body is
//! complete, and its duration and response size are measured up to that moment too, not just to
//! the response head: the response body is wrapped in [`MeteredBody`], which counts the bytes of
//! its frames and records the request when the body ends, or when it is dropped unfinished (a
//! client that disconnects is still recorded, and the active count always comes back down). The
//! span ends at the same moment.

use super::http_span;
use crate::catalogue::Scheme;
use crate::metrics::{HttpServerMetrics, InFlightRequest, RequestOutcome};
use bytes::Buf;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tower::{Layer, Service};

/// Records `http.server.*` metrics for every request of the services it wraps.
///
/// Add it to an axum router with `Router::layer`, which wraps each route and the fallback, so the
/// layer sees axum's `MatchedPath` (enable this crate's `axum` feature). Wrapping the whole router
/// from outside instead would run the layer before routing: requests would be recorded without
/// `http.route`.
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{Router, routing::get};
/// use otel::layers::http::HttpMetricsLayer;
/// use otel::metrics::HttpServerMetrics;
///
/// async fn node() -> &'static str { "{}" }
/// let app: Router = Router::new()
///     .route("/api/graph/nodes/{id}", get(node))
///     .layer(HttpMetricsLayer::new(HttpServerMetrics::new(&otel::meter())));
/// # }
/// ```
#[derive(Clone)]
pub struct HttpMetricsLayer {
    metrics: HttpServerMetrics,
}

impl HttpMetricsLayer {
    /// A layer recording through `metrics` (build them from [`crate::meter`] in a service, from a
    /// test recorder's meter in tests).
    pub fn new(metrics: HttpServerMetrics) -> Self {
        HttpMetricsLayer { metrics }
    }
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetrics<S>;

    fn layer(&self, inner: S) -> HttpMetrics<S> {
        HttpMetrics { inner, metrics: self.metrics.clone() }
    }
}

/// The service [`HttpMetricsLayer`] wraps around an `http::Request` → `http::Response` service.
///
/// When the inner service returns an error instead of a response (never for axum, whose error
/// type is `Infallible`), or when the request is abandoned before its response is ready, the
/// request is recorded without a status code and with `error.type` `_OTHER`
/// ([`InFlightRequest::fail`]); the error itself is passed on unchanged.
#[derive(Clone)]
pub struct HttpMetrics<S> {
    inner: S,
    metrics: HttpServerMetrics,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpMetrics<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Body,
    ResBody: Body,
{
    type Response = Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let scheme =
            if request.uri().scheme_str() == Some("https") { Scheme::Https } else { Scheme::Http };
        let in_flight = self.metrics.start(request.method().as_str(), scheme);
        let route = route_of(&request);
        let trace = crate::trace::enabled()
            .then(|| http_span::start(&request, scheme, route.as_ref().map(route_str)));
        let recording = Recording {
            in_flight: Some(in_flight),
            route,
            request_bytes: request_bytes(&request),
            status: None,
            response_bytes: 0,
            trace,
        };
        let inner = {
            let _current = recording.trace.as_ref().map(|cx| cx.clone().attach());
            self.inner.call(request)
        };
        ResponseFuture { inner, recording: Some(recording) }
    }
}

/// Request body size without touching the body: its exact size hint (hyper derives it from
/// `Content-Length`), else the `Content-Length` header, else 0 (a chunked upload of unknown size).
fn request_bytes<B: Body>(request: &Request<B>) -> u64 {
    request
        .body()
        .size_hint()
        .exact()
        .or_else(|| {
            let length = request.headers().get(http::header::CONTENT_LENGTH)?;
            length.to_str().ok()?.parse().ok()
        })
        .unwrap_or(0)
}

pin_project! {
    /// The future of [`HttpMetrics`]: the inner service's response with its body metered.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        recording: Option<Recording>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<MeteredBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let trace = this.recording.as_ref().and_then(|r| r.trace.as_ref());
            let _current = trace.map(|trace| trace.clone().attach());
            this.inner.poll(cx)
        };
        let response = match ready!(polled) {
            Ok(response) => response,
            Err(error) => {
                // No response: dropping the recording records the request as failed.
                this.recording.take();
                return Poll::Ready(Err(error));
            }
        };
        let mut recording = this.recording.take();
        if let Some(recording) = &mut recording {
            recording.status = Some(response.status().as_u16());
        }
        let (parts, body) = response.into_parts();
        if body.is_end_stream() {
            // Nothing follows the head: the request is complete now.
            recording = None;
        }
        Poll::Ready(Ok(Response::from_parts(parts, MeteredBody { inner: body, recording })))
    }
}

pin_project! {
    /// A response body that counts its bytes and records its request when it ends or is dropped.
    /// Size hint and end of stream are the inner body's, so `Content-Length` is unaffected.
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        recording: Option<Recording>,
    }
}

impl<B: Body> Body for MeteredBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = ready!(this.inner.as_mut().poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let (Some(recording), Some(data)) = (this.recording.as_mut(), frame.data_ref()) {
                    recording.response_bytes += data.remaining() as u64;
                }
                if this.inner.is_end_stream() {
                    *this.recording = None;
                }
            }
            // The end, or a body that failed part-way: either way nothing more will be sent.
            Some(Err(_)) | None => *this.recording = None,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What is known about a request until it ends; dropping it records the request: completed when
/// a status is known, failed otherwise, and ends its span.
struct Recording {
    in_flight: Option<InFlightRequest>,
    route: Option<RouteTemplate>,
    request_bytes: u64,
    status: Option<u16>,
    response_bytes: u64,
    /// The server span's context; `None` when traces are off.
    trace: Option<opentelemetry::Context>,
}

impl Drop for Recording {
    fn drop(&mut self) {
        if let Some(trace) = self.trace.take() {
            http_span::end(&trace, self.status);
        }
        let Some(in_flight) = self.in_flight.take() else { return };
        let route = self.route.as_ref().map(route_str);
        match self.status {
            Some(status) => in_flight.finish(RequestOutcome {
                route,
                status,
                request_bytes: self.request_bytes,
                response_bytes: self.response_bytes,
            }),
            None => in_flight.fail(route, self.request_bytes),
        }
    }
}

/// The route template of a request: axum's `MatchedPath`, which routing puts in the request's
/// extensions before the layers of the matched route run (absent for the fallback).
#[cfg(feature = "axum")]
type RouteTemplate = axum::extract::MatchedPath;

#[cfg(feature = "axum")]
fn route_of<B>(request: &Request<B>) -> Option<RouteTemplate> {
    request.extensions().get::<RouteTemplate>().cloned()
}

#[cfg(feature = "axum")]
fn route_str(route: &RouteTemplate) -> &str {
    route.as_str()
}

/// Without axum there is no router to tell the template, and the raw path must never be used:
/// no request has a route.
#[cfg(not(feature = "axum"))]
enum RouteTemplate {}

#[cfg(not(feature = "axum"))]
fn route_of<B>(_request: &Request<B>) -> Option<RouteTemplate> {
    None
}

#[cfg(not(feature = "axum"))]
fn route_str(route: &RouteTemplate) -> &str {
    match *route {}
}
