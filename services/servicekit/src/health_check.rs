//! `--health-check`: a container health check without an HTTP client in the image. Both services
//! take the flag; it does a GET of `/health/live` on the port the service listens on (over
//! loopback when it listens on every interface), with the blocking `reqwest` client the binaries
//! already link for OTLP over HTTP, 2 s in all, and exits 0 on a 200, else 1 with a one-line
//! reason. Liveness, not readiness: a Postgres
//! outage must not get the process restarted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

/// The bound on the whole check: connecting, sending, reading the status line.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The path probed.
pub const PATH: &str = "/health/live";

/// Probes the service listening on `listen` and says how it went, on one line.
pub fn run(name: &str, listen: Result<SocketAddr, String>) -> ExitCode {
    match listen.and_then(|addr| probe(target(addr), TIMEOUT)) {
        Ok(url) => {
            println!("{name}: healthy ({url} answered 200)");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("{name}: unhealthy: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// Where to connect: the listen address itself, or loopback if it is the unspecified one.
pub fn target(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, listen.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, listen.port()).into(),
        _ => listen,
    }
}

/// `Ok(url)` if a GET of [`PATH`] at `addr` answers 200 within `timeout`; otherwise the reason,
/// on one line.
pub fn probe(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let url = format!("http://{addr}{PATH}");
    let client = reqwest::blocking::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
        .map_err(|e| format!("{url}: no HTTP client: {}", chain(&e)))?;
    let response = client.get(&url).send().map_err(|e| {
        // The URL leads the reason already.
        let e = e.without_url();
        if e.is_timeout() {
            format!("{url}: no answer within {}s", timeout.as_secs_f32())
        } else if e.is_connect() {
            format!("{url}: connecting: {}", chain(&e))
        } else {
            format!("{url}: {}", chain(&e))
        }
    })?;
    match response.status().as_u16() {
        200 => Ok(url),
        status => Err(format!("{url} answered {status}")),
    }
}

/// `error` and its sources, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    #[test]
    fn status_lines_are_read() {
        let answered = |line: &'static str| {
            let (addr, _) = server(Some(line));
            probe(addr, TIMEOUT)
        };
        assert!(answered("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_ok());
        for (line, status) in
            [("HTTP/1.0 503 Service Unavailable\r\n\r\n", 503), ("HTTP/1.1 204\r\n\r\n", 204)]
        {
            let err = answered(line).unwrap_err();
            assert!(err.ends_with(&format!("answered {status}")), "{line:?}: {err}");
            assert!(err.starts_with("http://127.0.0.1:"), "{err}");
        }
        let bad = [
            "",
            "SSH-2.0-OpenSSH_9.2\r\n",
            "HTTP/2 200\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 2x0\r\n\r\n",
        ];
        for bad in bad {
            let err = answered(bad).unwrap_err();
            assert!(!err.contains('\n'), "one line: {err}");
        }
    }

    #[test]
    fn the_unspecified_address_is_probed_over_loopback() {
        let addr = |s: &str| s.parse::<SocketAddr>().ok();
        assert_eq!(Some(target("0.0.0.0:8000".parse().unwrap())), addr("127.0.0.1:8000"));
        assert_eq!(Some(target("[::]:8000".parse().unwrap())), addr("[::1]:8000"));
        assert_eq!(Some(target("10.1.2.3:8000".parse().unwrap())), addr("10.1.2.3:8000"));
    }

    /// A one-connection server that answers `answer` (or nothing) and hands back the request.
    fn server(answer: Option<&'static str>) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 256];
            while !request.ends_with(b"\r\n\r\n") {
                match conn.read(&mut buf).unwrap() {
                    0 => break,
                    n => request.extend_from_slice(&buf[..n]),
                }
            }
            match answer {
                Some(answer) => conn.write_all(answer.as_bytes()).unwrap(),
                None => std::thread::sleep(Duration::from_millis(800)),
            }
            String::from_utf8(request).unwrap()
        });
        (addr, handle)
    }

    #[test]
    fn a_200_is_healthy_and_anything_else_names_the_reason() {
        let (addr, request) = server(Some("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"));
        assert_eq!(probe(addr, TIMEOUT), Ok(format!("http://{addr}/health/live")));
        assert!(request.join().unwrap().starts_with("GET /health/live HTTP/1.1\r\n"));

        let (addr, _) = server(Some("HTTP/1.1 503 Service Unavailable\r\n\r\n"));
        let err = probe(addr, TIMEOUT).unwrap_err();
        assert!(err.ends_with("/health/live answered 503"), "{err}");

        let (addr, _) = server(None);
        let started = Instant::now();
        let err = probe(addr, Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("no answer within 0.3s"), "{err}");
        assert!(started.elapsed() < Duration::from_millis(700), "{:?}", started.elapsed());
    }

    #[test]
    fn a_closed_port_is_unhealthy() {
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let err = probe(addr, TIMEOUT).unwrap_err();
        assert!(err.contains("connecting"), "{err}");
    }
}
