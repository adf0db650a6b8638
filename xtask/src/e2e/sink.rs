//! The webhook sink Alertmanager's default receiver posts to (`127.0.0.1:9099/alerts`): it keeps
//! every notification body, so the live proof can see an alert travel all the way to a receiver.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};

/// The address in `alertmanager/alertmanager.yml`.
pub const ADDR: &str = "127.0.0.1:9099";

/// Notifications received so far (JSON bodies).
#[derive(Clone, Default)]
pub struct Sink {
    received: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Sink {
    /// Listens on [`ADDR`] in a background thread for the rest of the process.
    pub fn start() -> anyhow::Result<Sink> {
        let listener = TcpListener::bind(ADDR)
            .map_err(|e| anyhow::anyhow!("the webhook sink cannot listen on {ADDR}: {e}"))?;
        let sink = Sink::default();
        let received = sink.received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                let mut line = String::new();
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
                if reader.read_exact(&mut body).is_ok()
                    && let Ok(json) = serde_json::from_slice(&body)
                {
                    received.lock().unwrap_or_else(PoisonError::into_inner).push(json);
                }
                let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            }
        });
        Ok(sink)
    }

    /// The alert names notified with `status` (`firing`/`resolved`) so far.
    pub fn alert_names(&self, status: &str) -> Vec<String> {
        let received = self.received.lock().unwrap_or_else(PoisonError::into_inner);
        received
            .iter()
            .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["status"] == status)
            .filter_map(|a| a["labels"]["alertname"].as_str().map(String::from))
            .collect()
    }
}
