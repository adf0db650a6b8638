//! The liveness answer Prometheus can scrape. Prometheus probes each service's `/health/live`
//! itself (scrape jobs `probe/api` and `probe/worker` in prometheus/prometheus.yml), so that `up`
//! of those jobs says whether the service answers HTTP, whatever happens to its OTLP export. A
//! scrape needs the text exposition format, so `?format=prometheus` asks for an empty document in
//! that format; without it the answer stays JSON.

/// The content type of the answer to `?format=prometheus`.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The answer to `?format=prometheus`: a comment, no samples (Prometheus' own `up` is the probe).
pub const BODY: &str = "# the process answers: Prometheus' `up` of this scrape job is the probe\n";

/// The formats `/health/live` answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `{"status":"ok"}`.
    Json,
    /// [`BODY`] as [`CONTENT_TYPE`].
    Prometheus,
}

/// The format a `format` query parameter asks for; an unknown one is an error that says which
/// formats exist.
pub fn format(param: Option<&str>) -> Result<Format, String> {
    match param {
        None | Some("json") => Ok(Format::Json),
        Some("prometheus") => Ok(Format::Prometheus),
        Some(other) => Err(format!("unknown format {other:?}: use json or prometheus")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(format(None), Ok(Format::Json));
        assert_eq!(format(Some("json")), Ok(Format::Json));
        assert_eq!(format(Some("prometheus")), Ok(Format::Prometheus));
        assert_eq!(
            format(Some("xml")),
            Err("unknown format \"xml\": use json or prometheus".into())
        );
    }
}
