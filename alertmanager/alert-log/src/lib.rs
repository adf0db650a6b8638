//! alert-log: the receiver at the other end of `alertmanager/alertmanager.yml`'s webhooks in
//! compose.
//!
//! Why it exists: out of the box both of Alertmanager's receivers are webhooks on
//! `http://127.0.0.1:9099` (`/alerts` for every alert, `/watchdog` for the Watchdog and the alerts
//! about the alerting path). Natively the live proof (`cargo xtask e2e`) listens there itself. In
//! compose nothing did: every notification failed, and nobody could see an alert leave
//! Alertmanager. alert-log runs in Alertmanager's network namespace (`network_mode:
//! service:alertmanager`), so the very URLs of the one config file reach it, and writes each
//! alert it is sent as one JSON line on stdout: `docker compose logs -f alert-log` shows every
//! notification, firing and resolved. It is a log, not a pager: to be woken up, point the
//! receivers at email, Slack, PagerDuty and a dead man's switch (`alertmanager/README.md`).
//!
//! Routes: `POST /alerts` and `POST /watchdog` take Alertmanager's webhook JSON (version `4`) and
//! answer 200 once the lines are written; `GET /health` answers 200. A body that is not such a
//! document gets a 400 RFC 9457 problem (`application/problem+json`) saying what is wrong, one
//! above [`BODY_LIMIT_BYTES`] a 413; every other error is a problem too, and nothing a client
//! sends makes it panic.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_http::limit::RequestBodyLimitLayer;

/// The environment variable naming the listen address.
pub const ADDR_VAR: &str = "ALERT_LOG_ADDR";

/// The listen address unless [`ADDR_VAR`] says otherwise: the host and port of the webhook URLs
/// in `alertmanager/alertmanager.yml`. Loopback, because alert-log shares Alertmanager's network
/// namespace: nothing else needs to reach it.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9099";

/// The paths Alertmanager's webhook receivers post to, one per receiver of alertmanager.yml.
pub const RECEIVERS: [&str; 2] = ["/alerts", "/watchdog"];

/// The health endpoint (the container's health check, `--health-check`).
pub const HEALTH_PATH: &str = "/health";

/// The largest body accepted. Alertmanager sends one group per notification, bounded by the
/// receiver's `max_alerts` (0, unlimited, by default); a megabyte holds some thousand alerts.
pub const BODY_LIMIT_BYTES: usize = 1 << 20;

/// The webhook format version alert-log reads (Alertmanager's since 0.15). Another version is
/// refused with a 400, so that a format change shows as failing notifications (which the
/// alerting-path alerts watch) rather than as empty lines.
pub const WEBHOOK_VERSION: &str = "4";

/// The media type of problem responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Where the lines go: all the lines of one notification in one call, so that two notifications
/// never interleave. An error fails the request with a 500, and Alertmanager retries.
#[derive(Clone)]
pub struct Output(Arc<WriteLines>);

/// What an [`Output`] does with the lines of one notification.
type WriteLines = dyn Fn(&[String]) -> std::io::Result<()> + Send + Sync;

impl Output {
    /// Lines to stdout (one lock, then a flush), where `docker compose logs` reads them.
    pub fn stdout() -> Output {
        Output::new(|lines| {
            let mut out = std::io::stdout().lock();
            for line in lines {
                writeln!(out, "{line}")?;
            }
            out.flush()
        })
    }

    /// Lines to `write` (the tests collect them).
    pub fn new(write: impl Fn(&[String]) -> std::io::Result<()> + Send + Sync + 'static) -> Output {
        Output(Arc::new(write))
    }
}

/// The service: the receivers, the health endpoint, the body limit, problems for every error.
pub fn router(output: Output) -> Router {
    let mut router = Router::new().route(HEALTH_PATH, get(health));
    for path in RECEIVERS {
        router = router.route(
            path,
            post(move |State(output): State<Output>, body: Result<Bytes, BytesRejection>| async move {
                receive(&output, path, body)
            }),
        );
    }
    router
        .with_state(output)
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES))
        // Outermost, so that the limit's own 413 becomes a problem too.
        .layer(axum::middleware::map_response(ensure_problem))
}

/// The listen address from the value of [`ADDR_VAR`] (unset or empty: [`DEFAULT_ADDR`]).
pub fn listen_addr(value: Option<&str>) -> Result<SocketAddr, String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty()).unwrap_or(DEFAULT_ADDR);
    value.parse().map_err(|_| format!("{ADDR_VAR}=`{value}` is not an address like {DEFAULT_ADDR}"))
}

/// Serves [`router`] on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    output: Output,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(output)).with_graceful_shutdown(shutdown).await
}

/// `--health-check`: `Ok(url)` if a GET of [`HEALTH_PATH`] on `listen` (over loopback when it is
/// the unspecified address) answers 200 within `timeout`. HTTP/1.0 over a plain `TcpStream`: the
/// image has no HTTP client.
pub fn probe(listen: SocketAddr, timeout: Duration) -> Result<String, String> {
    let addr = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, listen.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, listen.port()).into(),
        _ => listen,
    };
    let url = format!("http://{addr}{HEALTH_PATH}");
    let deadline = Instant::now() + timeout;
    // What is left of the budget (never zero: a zero timeout means "none" to the socket).
    let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let failed = |what: &str, e: std::io::Error| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("{url}: no answer within {}s ({what})", timeout.as_secs_f32())
        }
        _ => format!("{url}: {what}: {e}"),
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| failed("connecting", e))?;
    stream.set_write_timeout(Some(left())).map_err(|e| failed("connecting", e))?;
    let request =
        format!("GET {HEALTH_PATH} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| failed("sending the request", e))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        stream.set_read_timeout(Some(left())).map_err(|e| failed("reading", e))?;
        match stream.read(&mut buf).map_err(|e| failed("reading the answer", e))? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let line = head.lines().next().unwrap_or_default().trim_end();
    match line.split(' ').nth(1) {
        Some("200") if line.starts_with("HTTP/1.") => Ok(url),
        _ if line.is_empty() => Err(format!("{url}: the connection closed without an answer")),
        _ => Err(format!("{url} answered `{line}`")),
    }
}

/// One webhook notification: Alertmanager's JSON, the parts alert-log reads.
#[derive(Deserialize)]
struct Notification {
    version: String,
    /// The receiver's name in alertmanager.yml.
    #[serde(default)]
    receiver: String,
    /// The group's status, for an alert without its own.
    #[serde(default)]
    status: String,
    alerts: Vec<Alert>,
}

#[derive(Deserialize)]
struct Alert {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, rename = "startsAt")]
    starts_at: Option<String>,
}

/// `POST` of a receiver path: the lines of the notification, written, or a problem.
fn receive(output: &Output, path: &str, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return problem(rejection.status(), rejection.body_text()),
    };
    let lines = match lines(path, &body) {
        Ok(lines) => lines,
        Err(detail) => return problem(StatusCode::BAD_REQUEST, detail),
    };
    match (output.0)(&lines) {
        Ok(()) => (StatusCode::OK, axum::Json(json!({ "alerts": lines.len() }))).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, format!("writing the alerts: {e}")),
    }
}

/// The JSON lines of a notification posted to `path`, or why the body is not one.
fn lines(path: &str, body: &[u8]) -> Result<Vec<String>, String> {
    let notification: Notification = serde_json::from_slice(body)
        .map_err(|e| format!("the body is not an Alertmanager webhook notification: {e}"))?;
    if notification.version != WEBHOOK_VERSION {
        return Err(format!(
            "webhook version `{}`: alert-log reads version {WEBHOOK_VERSION}",
            notification.version
        ));
    }
    Ok(notification
        .alerts
        .iter()
        .map(|alert| {
            let label = |name: &str| alert.labels.get(name).map(String::as_str);
            let line = Line {
                path,
                receiver: &notification.receiver,
                status: alert.status.as_deref().unwrap_or(&notification.status),
                alertname: label("alertname"),
                service: label("service"),
                severity: label("severity"),
                summary: alert.annotations.get("summary").map(String::as_str),
                starts_at: alert.starts_at.as_deref(),
            };
            // A struct of strings always serialises; the fallback is never used.
            serde_json::to_string(&line).unwrap_or_default()
        })
        .collect())
}

/// One line of the log: one alert of a notification, its fields in this order (a label or
/// annotation the alert lacks is `null`).
#[derive(Serialize)]
struct Line<'a> {
    /// The receiver path it was posted to (`/alerts`, `/watchdog`).
    path: &'a str,
    /// The receiver's name in alertmanager.yml.
    receiver: &'a str,
    /// `firing` or `resolved`.
    status: &'a str,
    alertname: Option<&'a str>,
    service: Option<&'a str>,
    severity: Option<&'a str>,
    summary: Option<&'a str>,
    #[serde(rename = "startsAt")]
    starts_at: Option<&'a str>,
}

async fn health() -> Response {
    (StatusCode::OK, axum::Json(json!({ "status": "ok" }))).into_response()
}

/// An RFC 9457 problem.
fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body: Value = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail.into(),
    });
    (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], body.to_string()).into_response()
}

/// Rewrites the error responses made outside the handlers (axum's 404 and 405, tower-http's 413)
/// into problems.
async fn ensure_problem(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if status.as_u16() < 400 || is_problem {
        return response;
    }
    let detail = match status {
        StatusCode::NOT_FOUND => {
            format!("no such path: Alertmanager posts to {}", RECEIVERS.join(" or "))
        }
        StatusCode::METHOD_NOT_ALLOWED => "this path does not take the request's method".into(),
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("the body is larger than the limit of {BODY_LIMIT_BYTES} bytes")
        }
        _ => "the request could not be processed".into(),
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

    #[test]
    fn the_listen_address_defaults_to_the_webhook_urls_and_names_its_variable() {
        assert_eq!(listen_addr(None), Ok("127.0.0.1:9099".parse().unwrap()));
        assert_eq!(listen_addr(Some(" ")), Ok("127.0.0.1:9099".parse().unwrap()));
        assert_eq!(listen_addr(Some("0.0.0.0:9100")), Ok("0.0.0.0:9100".parse().unwrap()));
        let err = listen_addr(Some("localhost")).unwrap_err();
        assert!(err.starts_with("ALERT_LOG_ADDR=`localhost`"), "{err}");
    }

    #[test]
    fn an_alert_without_its_own_status_takes_the_groups() {
        let body = br#"{"version":"4","status":"firing","alerts":[{"labels":{}}]}"#;
        let lines = lines("/alerts", body).unwrap();
        let line: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["status"], "firing");
        assert_eq!(line["alertname"], Value::Null);
    }
}
