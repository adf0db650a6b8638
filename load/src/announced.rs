//! A body announced with `Expect: 100-continue`, on a connection of its own, over plain
//! HTTP/1.1: the body is sent only if the server asks for it (`100 Continue`).
//!
//! Why: the API refuses an oversized body by its `Content-Length` (413) without reading it, and
//! then closes the connection. A client that is still writing the body gets a broken pipe or a
//! reset and may never see the 413 the server answered (and counted) — and a pooled client may
//! reuse the closed connection for the next request. Announcing the body instead is what HTTP
//! provides for exactly this: the server answers 413 before any of it is sent, closes cleanly,
//! and the client reads the answer every time. (reqwest cannot wait for `100 Continue`.)

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest response read (the rest is cut off; 413 problems are tiny).
const MAX_RESPONSE: usize = 1 << 20;

/// Sends `POST url` with `body` announced; returns the final status and body. `Err` describes
/// why no complete response arrived (within `timeout`).
pub async fn post(
    url: &str,
    content_type: &str,
    body: &[u8],
    authorization: Option<&str>,
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    match tokio::time::timeout(timeout, exchange(url, content_type, body, authorization)).await {
        Ok(result) => result,
        Err(_) => Err(format!("timed out after {} s", timeout.as_secs())),
    }
}

async fn exchange(
    url: &str,
    content_type: &str,
    body: &[u8],
    authorization: Option<&str>,
) -> Result<(u16, Vec<u8>), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let host = parsed.host_str().ok_or_else(|| format!("{url}: no host"))?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let authority = format!("{host}:{port}");
    let mut target = parsed.path().to_string();
    if let Some(query) = parsed.query() {
        target = format!("{target}?{query}");
    }
    let mut stream = TcpStream::connect(&authority)
        .await
        .map_err(|e| format!("connecting to {authority}: {e}"))?;
    let authorization =
        authorization.map(|value| format!("Authorization: {value}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\
         {authorization}User-Agent: orgraph-xtask-load\r\n\r\n",
        body.len()
    );
    let io = |what: &'static str| move |e: std::io::Error| format!("{what}: {e}");
    stream.write_all(head.as_bytes()).await.map_err(io("sending the request head"))?;
    let mut buffer = Vec::new();
    loop {
        let (status, head_len) = read_head(&mut stream, &mut buffer).await?;
        if status == 100 {
            buffer.drain(..head_len);
            stream.write_all(body).await.map_err(io("sending the body"))?;
            continue;
        }
        let length = content_length(&buffer[..head_len]);
        loop {
            let have = buffer.len() - head_len;
            if length.is_some_and(|n| have >= n) || buffer.len() >= MAX_RESPONSE {
                break;
            }
            let mut chunk = [0u8; 8192];
            let n = stream.read(&mut chunk).await.map_err(io("reading the response body"))?;
            if n == 0 {
                if let Some(n) = length {
                    return Err(format!("the connection closed after {have} of {n} body bytes"));
                }
                break;
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        let end = length.map_or(buffer.len(), |n| (head_len + n).min(buffer.len()));
        return Ok((status, buffer[head_len..end].to_vec()));
    }
}

/// Reads until `buffer` holds a complete response head; returns its status and length.
async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Result<(u16, usize), String> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]);
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("not an HTTP response: {:?}", head.lines().next()))?;
            return Ok((status, end + 4));
        }
        if buffer.len() >= MAX_RESPONSE {
            return Err("a response head larger than 1 MiB".into());
        }
        let mut chunk = [0u8; 8192];
        let n = stream.read(&mut chunk).await.map_err(|e| format!("reading the response: {e}"))?;
        if n == 0 {
            return Err("the connection closed before a response arrived".into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// The `Content-Length` of a response head, if it has one.
fn content_length(head: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(head).lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    const BEARER: Option<&str> = Some("Bearer t0ken");

    /// A one-connection server that answers the head with `answer`, optionally after a
    /// `100 Continue` and reading `expect_body` bytes.
    async fn server(answer: &'static str, continue_first: bool, expect_body: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                head.push(s.read_u8().await.unwrap());
            }
            let head = String::from_utf8_lossy(&head).to_string();
            assert!(head.contains("Expect: 100-continue"));
            assert!(head.contains("Authorization: Bearer t0ken\r\n"), "{head}");
            if continue_first {
                s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
                let mut body = vec![0u8; expect_body];
                s.read_exact(&mut body).await.unwrap();
            }
            s.write_all(answer.as_bytes()).await.unwrap();
        });
        format!("http://{addr}/api/graph/nodes")
    }

    #[tokio::test]
    async fn a_refusal_arrives_without_the_body_and_a_continue_sends_it() {
        let refused = "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 5\r\n\r\nlarge";
        let url = server(refused, false, 0).await;
        let reply =
            post(&url, "application/json", &[b'x'; 100_000], BEARER, Duration::from_secs(5)).await;
        assert_eq!(reply, Ok((413, b"large".to_vec())));

        let accepted = "HTTP/1.1 422 Unprocessable\r\nContent-Length: 2\r\n\r\nno";
        let url = server(accepted, true, 3).await;
        let reply = post(&url, "application/json", b"abc", BEARER, Duration::from_secs(5)).await;
        assert_eq!(reply, Ok((422, b"no".to_vec())));
    }
}
