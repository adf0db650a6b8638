//! A tiny blocking HTTP client for loopback servers. It is `ureq`, not `reqwest::blocking`, because
//! tests call it from inside tokio runtimes, where `reqwest::blocking` panics.

use anyhow::Context;
use std::sync::OnceLock;
use std::time::Duration;

/// Bound on a whole request, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(5);

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(TIMEOUT))
            // Only loopback servers are asked; a proxy from the environment must not intervene.
            .proxy(None)
            .build()
            .into()
    })
}

/// GETs `url` and returns the status code and body. A non-2xx status is a normal answer, not an
/// error; connection failures, timeouts (5 s) and unreadable bodies are errors.
pub fn http_get(url: &str) -> anyhow::Result<(u16, String)> {
    http_request(url, &[], None)
}

/// POSTs `body` as `application/json` to `url` and returns the status code and body, with
/// [`http_get`]'s rules (a non-2xx status is an answer; transport failures are errors).
pub fn http_post_json(url: &str, body: &str) -> anyhow::Result<(u16, String)> {
    http_request(url, &[], Some(body))
}

/// GETs `url`, or with a `json` body POSTs it as `application/json`, with the extra `headers`
/// (e.g. `authorization`, `traceparent`), and returns the status code and body, with
/// [`http_get`]'s rules.
pub fn http_request(
    url: &str,
    headers: &[(&str, &str)],
    json: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let (method, sent) = match json {
        None => {
            let request = headers.iter().fold(agent().get(url), |r, (k, v)| r.header(*k, *v));
            ("GET", request.call())
        }
        Some(body) => {
            let request = agent().post(url).header("content-type", "application/json");
            let request = headers.iter().fold(request, |r, (k, v)| r.header(*k, *v));
            ("POST", request.send(body))
        }
    };
    let mut response = sent.with_context(|| format!("{method} {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the body of {method} {url} (status {status})"))?;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn non_2xx_is_an_answer() -> anyhow::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/x", listener.local_addr()?);
        let server = std::thread::spawn(move || -> std::io::Result<()> {
            let (mut stream, _) = listener.accept()?;
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request)?;
            stream.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 4\r\nconnection: close\r\n\r\ndown",
            )
        });
        let got = http_get(&url)?;
        assert_eq!(got, (503, "down".to_string()));
        server.join().map_err(|_| anyhow::anyhow!("server thread panicked"))??;
        Ok(())
    }

    #[test]
    fn a_request_sends_its_headers_and_json_body() -> anyhow::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/x", listener.local_addr()?);
        let server = std::thread::spawn(move || -> std::io::Result<String> {
            let (mut stream, _) = listener.accept()?;
            let mut request = [0u8; 2048];
            let n = stream.read(&mut request)?;
            stream.write_all(
                b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
            )?;
            Ok(String::from_utf8_lossy(&request[..n]).to_lowercase())
        });
        let got = http_request(&url, &[("traceparent", "00-ab-cd-01")], Some("{}"))?;
        assert_eq!(got, (202, "ok".to_string()));
        let request = server.join().map_err(|_| anyhow::anyhow!("server thread panicked"))??;
        assert!(request.starts_with("post /x "), "{request}");
        assert!(request.contains("traceparent: 00-ab-cd-01"), "{request}");
        assert!(request.contains("content-type: application/json"), "{request}");
        Ok(())
    }

    #[test]
    fn refused_connection_is_an_error() {
        let port = crate::free_port();
        let err = http_get(&format!("http://127.0.0.1:{port}/")).err().map(|e| format!("{e:#}"));
        assert!(err.is_some_and(|e| e.contains("GET http://127.0.0.1")));
    }
}
