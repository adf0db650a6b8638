//! alert-log as Alertmanager and its container's health check meet it: a real webhook
//! notification (version 4, as Alertmanager 0.31 posts it) becomes one JSON line per alert and a
//! 200; anything else becomes a problem and no line.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

/// A notification of the `webhook` receiver as Alertmanager sends it: one group, one firing and
/// one resolved alert.
const NOTIFICATION: &str = r#"{
  "receiver": "webhook",
  "status": "firing",
  "alerts": [
    {
      "status": "firing",
      "labels": {"alertname": "ApiDown", "service": "api", "severity": "critical",
                 "instance": "api:8000", "job": "probe/api"},
      "annotations": {"summary": "The API does not answer its liveness probe",
                      "description": "No successful probe of api:8000 for 1m.",
                      "runbook_url": "https://example.com/runbooks/ApiDown.md"},
      "startsAt": "2025-01-02T03:04:05.678Z",
      "endsAt": "0001-01-01T00:00:00Z",
      "generatorURL": "http://prometheus:9090/graph?g0.expr=up%7Bjob%3D%22probe%2Fapi%22%7D+%3D%3D+0",
      "fingerprint": "a3b0c4d5e6f70819"
    },
    {
      "status": "resolved",
      "labels": {"alertname": "QueueStalled", "service": "worker", "severity": "warning"},
      "annotations": {"summary": "A queue stopped draining"},
      "startsAt": "2025-01-02T02:00:00Z",
      "endsAt": "2025-01-02T03:00:00Z",
      "generatorURL": "http://prometheus:9090/graph",
      "fingerprint": "0819a3b0c4d5e6f7"
    }
  ],
  "groupLabels": {"alertname": "ApiDown", "service": "api"},
  "commonLabels": {"service": "api"},
  "commonAnnotations": {},
  "externalURL": "http://alertmanager:9093",
  "version": "4",
  "groupKey": "{}/{severity=\"critical\"}:{alertname=\"ApiDown\", service=\"api\"}",
  "truncatedAlerts": 0
}"#;

/// The router, and the lines it wrote.
fn app() -> (axum::Router, Arc<Mutex<Vec<String>>>) {
    let written = Arc::new(Mutex::new(Vec::new()));
    let sink = written.clone();
    let output = alert_log::Output::new(move |lines| {
        sink.lock().expect("the lines").extend(lines.iter().cloned());
        Ok(())
    });
    (alert_log::router(output), written)
}

/// Sends one request; the status, the content type and the body (as JSON, `Null` if it is not).
async fn send(
    app: axum::Router,
    method: Method,
    path: &str,
    body: impl Into<Body>,
) -> (StatusCode, String, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .expect("a request");
    let response = app.oneshot(request).await.expect("a response");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("a content type").to_string())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.expect("the body").to_bytes();
    (status, content_type, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_notification_becomes_one_json_line_per_alert() {
    for path in ["/alerts", "/watchdog"] {
        let (app, written) = app();
        let (status, _, body) = send(app, Method::POST, path, NOTIFICATION).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["alerts"], 2);
        let lines: Vec<Value> =
            written.lock().unwrap().iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(
            lines,
            [
                serde_json::json!({
                    "path": path,
                    "receiver": "webhook",
                    "status": "firing",
                    "alertname": "ApiDown",
                    "service": "api",
                    "severity": "critical",
                    "summary": "The API does not answer its liveness probe",
                    "startsAt": "2025-01-02T03:04:05.678Z",
                }),
                serde_json::json!({
                    "path": path,
                    "receiver": "webhook",
                    "status": "resolved",
                    "alertname": "QueueStalled",
                    "service": "worker",
                    "severity": "warning",
                    "summary": "A queue stopped draining",
                    "startsAt": "2025-01-02T02:00:00Z",
                }),
            ]
        );
        // One line each: a log line never spans two.
        assert!(written.lock().unwrap().iter().all(|l| !l.contains('\n')));
    }
}

#[tokio::test]
async fn a_malformed_body_is_a_400_problem_and_writes_nothing() {
    let cases = [
        ("not JSON", "alerts: firing".to_string()),
        ("truncated", NOTIFICATION[..NOTIFICATION.len() / 2].to_string()),
        ("no alerts", r#"{"version":"4","status":"firing"}"#.to_string()),
        ("alerts not a list", r#"{"version":"4","alerts":{"status":"firing"}}"#.to_string()),
        ("a label not a string", r#"{"version":"4","alerts":[{"labels":{"a":1}}]}"#.to_string()),
        ("another version", NOTIFICATION.replace(r#""version": "4""#, r#""version": "5""#)),
        ("a list", "[]".to_string()),
        ("empty", String::new()),
    ];
    for (what, body) in cases {
        let (app, written) = app();
        let (status, content_type, problem) = send(app, Method::POST, "/alerts", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{what}");
        assert_eq!(problem["status"], 400, "{what}");
        assert!(!problem["detail"].as_str().unwrap_or_default().is_empty(), "{what}: {problem}");
        assert!(written.lock().unwrap().is_empty(), "{what}");
    }
}

#[tokio::test]
async fn a_body_above_the_limit_is_a_413_problem() {
    let (app, written) = app();
    let body = format!(r#"{{"version":"4","alerts":[],"pad":"{}"}}"#, "x".repeat(1 << 20));
    let (status, content_type, problem) = send(app, Method::POST, "/alerts", body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    assert_eq!(content_type, "application/problem+json");
    assert!(written.lock().unwrap().is_empty());
}

#[tokio::test]
async fn health_answers_and_other_requests_get_problems() {
    let (status, _, body) = send(app().0, Method::GET, "/health", Body::empty()).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, content_type, _) = send(app().0, Method::GET, "/alerts", Body::empty()).await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "application/problem+json")
    );
    let (status, content_type, problem) = send(app().0, Method::POST, "/other", NOTIFICATION).await;
    assert_eq!(
        (status, content_type.as_str()),
        (StatusCode::NOT_FOUND, "application/problem+json")
    );
    assert!(problem["detail"].as_str().unwrap().contains("/alerts or /watchdog"), "{problem}");
}

#[tokio::test]
async fn the_health_check_probes_a_running_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let output = alert_log::Output::new(|_| Ok(()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(alert_log::serve(listener, output, async {
        let _ = stopped.await;
    }));
    // As the container runs it: on the unspecified address, probed over loopback.
    let unspecified = std::net::SocketAddr::from(([0, 0, 0, 0], addr.port()));
    let probed =
        tokio::task::spawn_blocking(move || alert_log::probe(unspecified, Duration::from_secs(2)))
            .await
            .unwrap();
    assert_eq!(probed, Ok(format!("http://{addr}/health")));
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    // Stopped: the probe fails and says why.
    let err = tokio::task::spawn_blocking(move || alert_log::probe(addr, Duration::from_secs(2)))
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.contains("connecting"), "{err}");
}
