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
    let mut response = agent().get(url).call().with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the body of GET {url} (status {status})"))?;
    Ok((status, body))
}

/// POSTs `body` as `application/json` to `url` and returns the status code and body, with
/// [`http_get`]'s rules (a non-2xx status is an answer; transport failures are errors).
pub fn http_post_json(url: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let mut response = agent()
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .with_context(|| format!("POST {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the body of POST {url} (status {status})"))?;
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
    fn refused_connection_is_an_error() {
        let port = crate::free_port();
        let err = http_get(&format!("http://127.0.0.1:{port}/")).err().map(|e| format!("{e:#}"));
        assert!(err.is_some_and(|e| e.contains("GET http://127.0.0.1")));
    }
}
