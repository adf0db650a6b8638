//! `--health-check`: a container health check without an HTTP client in the image. Both services
//! take the flag; it does a GET of `/health/live` on the port the service listens on (over
//! loopback when it listens on every interface), HTTP/1.0 over a plain `TcpStream`, 2 s in all,
//! and exits 0 on a 200, else 1 with a one-line reason. Liveness, not readiness: a Postgres
//! outage must not get the process restarted.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

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

/// `Ok(url)` if a GET of [`PATH`] at `addr` answers 200 within `timeout`.
pub fn probe(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let url = format!("http://{addr}{PATH}");
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
    let request = format!("GET {PATH} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| failed("sending the request", e))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 1024 {
        stream.set_read_timeout(Some(left())).map_err(|e| failed("reading", e))?;
        match stream.read(&mut buf).map_err(|e| failed("reading the answer", e))? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    match status_code(line).map_err(|e| format!("{url}: {e}"))? {
        200 => Ok(url),
        status => Err(format!("{url} answered {status}")),
    }
}

/// The status code of an HTTP/1.x status line, e.g. `HTTP/1.1 200 OK`.
pub fn status_code(line: &str) -> Result<u16, String> {
    let mut parts = line.trim_end().splitn(3, ' ');
    match (parts.next(), parts.next()) {
        (Some(version), Some(code))
            if version.starts_with("HTTP/1.")
                && code.len() == 3
                && code.bytes().all(|b| b.is_ascii_digit()) =>
        {
            code.parse().map_err(|_| format!("bad status code in {line:?}"))
        }
        _ if line.is_empty() => Err("the connection closed without an answer".to_string()),
        _ => Err(format!("not an HTTP/1.x status line: {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn status_lines_are_read() {
        assert_eq!(status_code("HTTP/1.1 200 OK"), Ok(200));
        assert_eq!(status_code("HTTP/1.0 503 Service Unavailable\r"), Ok(503));
        assert_eq!(status_code("HTTP/1.1 204"), Ok(204));
        for bad in ["", "SSH-2.0-OpenSSH_9.2", "HTTP/2 200", "HTTP/1.1 2000 OK", "HTTP/1.1 2x0"] {
            assert!(status_code(bad).is_err(), "{bad:?}");
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
        assert!(request.join().unwrap().starts_with("GET /health/live HTTP/1.0\r\n"));

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
