//! The webhook sink Alertmanager's receivers post to (`127.0.0.1:9099/alerts` for the default
//! receiver, `/watchdog` for the Watchdog's): it keeps every notification body with its path and
//! arrival time, so the live proof can see an alert travel all the way to its receiver, or not.
//! It can also refuse the notifications of one path (a receiver that is down), so Alertmanager's
//! failed deliveries are real.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// One notification: the path it was posted to, when it arrived, its JSON body.
type Received = (String, Instant, serde_json::Value);

/// The address in `alertmanager/alertmanager.yml`.
pub const ADDR: &str = "127.0.0.1:9099";

/// Notifications received so far (JSON bodies).
#[derive(Clone, Default)]
pub struct Sink {
    received: Arc<Mutex<Vec<Received>>>,
    /// The path whose notifications are refused (500, not kept), if any.
    refusing: Arc<Mutex<Option<String>>>,
}

impl Sink {
    /// Listens on [`ADDR`] in a background thread for the rest of the process.
    pub fn start() -> anyhow::Result<Sink> {
        Sink::start_on(ADDR)
    }

    /// Listens on `addr` (the HA proof's own sink, on a free port) in a background thread for the
    /// rest of the process.
    pub fn start_on(addr: &str) -> anyhow::Result<Sink> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| anyhow::anyhow!("the webhook sink cannot listen on {addr}: {e}"))?;
        let sink = Sink::default();
        let (received, refusing) = (sink.received.clone(), sink.refusing.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                line.clear();
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0; length.min(1 << 20)];
                let refused = refusing.lock().unwrap_or_else(PoisonError::into_inner).as_deref()
                    == Some(path.as_str());
                if reader.read_exact(&mut body).is_ok()
                    && !refused
                    && let Ok(json) = serde_json::from_slice(&body)
                {
                    let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
                    received.push((path, Instant::now(), json));
                }
                let answer: &[u8] = if refused {
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"
                } else {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                };
                let _ = reader.get_mut().write_all(answer);
            }
        });
        Ok(sink)
    }

    /// From now on answers the notifications posted to `path` with a 500 and forgets them (`None`:
    /// accepts every path again).
    pub fn refuse(&self, path: Option<&str>) {
        *self.refusing.lock().unwrap_or_else(PoisonError::into_inner) = path.map(str::to_string);
    }

    /// How many notifications of `group` arrived (firing or resolved).
    pub fn posts(&self, group: &str) -> usize {
        let received = self.received.lock().unwrap_or_else(PoisonError::into_inner);
        received.iter().filter(|(_, _, n)| n["groupKey"] == group).count()
    }

    /// Every alert notified with `status` to the receiver at `path` (any, if `None`), in the order
    /// they arrived.
    pub fn notified(&self, path: Option<&str>, status: &str) -> Vec<Notified> {
        let received = self.received.lock().unwrap_or_else(PoisonError::into_inner);
        received
            .iter()
            .filter(|(p, _, _)| path.is_none_or(|path| p == path))
            .flat_map(|(_, at, n)| {
                let group = n["groupKey"].as_str().unwrap_or_default().to_string();
                let alerts = n["alerts"].as_array().cloned().unwrap_or_default();
                alerts.into_iter().map(move |a| (a, *at, group.clone()))
            })
            .filter(|(a, _, _)| a["status"] == status)
            .filter_map(|(a, at, group)| {
                let name = a["labels"]["alertname"].as_str()?.to_string();
                Some(Notified { name, labels: a["labels"].clone(), at, group })
            })
            .collect()
    }
}

/// One alert of a notification.
pub struct Notified {
    /// Its `alertname`.
    pub name: String,
    pub labels: serde_json::Value,
    /// When the notification arrived.
    pub at: Instant,
    /// The notification's group (Alertmanager's `groupKey`): the notifications of one group are
    /// one thread, one PagerDuty incident.
    pub group: String,
}
