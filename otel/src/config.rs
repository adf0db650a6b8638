//! Telemetry configuration from the standard `OTEL_*` variables (and `RUST_LOG`/`LOG_FORMAT` for
//! logs), read once at start-up.
//!
//! Every value is checked here, through the one settings reader ([`crate::settings`]): a malformed
//! one is a [`ConfigError`] naming the variable, so a service with a typo in its environment
//! refuses to start instead of silently exporting nowhere or every hour.

use crate::settings::{FromEnv, SettingError, Settings};
use crate::trace::config::{SpanBatch, TraceSampler};
use std::time::Duration;

/// Which OTLP transport the exporters use (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `grpc`: OTLP over gRPC, port 4317 by default.
    Grpc,
    /// `http/protobuf`: OTLP over HTTP with protobuf bodies, port 4318 by default.
    HttpProtobuf,
}

impl Protocol {
    /// The endpoint used when `OTEL_EXPORTER_OTLP_ENDPOINT` is not set (the spec's defaults).
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::Grpc => "http://localhost:4317",
            Protocol::HttpProtobuf => "http://localhost:4318",
        }
    }
}

/// Where spans go (`OTEL_TRACES_EXPORTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TracesExporter {
    /// `none` (the default here): no tracer provider; no span is made.
    None,
    /// `otlp`: spans are exported over the same OTLP endpoint and protocol as metrics.
    Otlp,
}

/// How log lines are written to stdout (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default: what log collectors want).
    Json,
    /// Human-readable, multi-line.
    Pretty,
}

/// Everything [`crate::init`] needs, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `OTEL_SDK_DISABLED=true`: no meter or tracer provider is installed; instruments are no-ops.
    pub sdk_disabled: bool,
    /// `OTEL_SERVICE_NAME`; when unset, `service.name` from the resource attributes, then the
    /// service's own name.
    pub service_name: Option<String>,
    /// `OTEL_RESOURCE_ATTRIBUTES`, decoded, in the order given.
    pub resource_attributes: Vec<(String, String)>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: the collector's base URL (for HTTP the signal path, e.g.
    /// `/v1/metrics`, is appended).
    pub endpoint: String,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub protocol: Protocol,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` (ms): the bound of one OTLP request.
    pub otlp_timeout: Duration,
    /// `OTEL_METRIC_EXPORT_INTERVAL` (ms): time between two metric exports.
    pub export_interval: Duration,
    /// `OTEL_METRIC_EXPORT_TIMEOUT` (ms): the bound of one metric export (with
    /// `OTEL_EXPORTER_OTLP_TIMEOUT`, the lesser wins), the final flush at shutdown included.
    pub export_timeout: Duration,
    /// `OTEL_TRACES_EXPORTER`.
    pub traces: TracesExporter,
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
    pub sampler: TraceSampler,
    /// `OTEL_BSP_*`: the bounded queue of finished spans.
    pub span_batch: SpanBatch,
    /// `RUST_LOG`: the `tracing` filter directives.
    pub log_filter: String,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
}

/// A variable that is set but cannot be used.
pub type ConfigError = SettingError;

/// Default `OTEL_EXPORTER_OTLP_TIMEOUT` and `OTEL_METRIC_EXPORT_TIMEOUT` are the spec's.
const DEFAULT_OTLP_TIMEOUT_MS: u64 = 10_000;
const DEFAULT_EXPORT_INTERVAL_MS: u64 = 60_000;
const DEFAULT_EXPORT_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_LOG_FILTER: &str = "info";

impl FromEnv for Config {
    fn read(s: &Settings<'_>) -> Result<Config, ConfigError> {
        let protocol = match s.get_or("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") {
            None => Protocol::Grpc,
            Some(v) => match v.as_str() {
                "grpc" => Protocol::Grpc,
                "http/protobuf" => Protocol::HttpProtobuf,
                _ => {
                    return Err(SettingError::new(
                        "OTEL_EXPORTER_OTLP_PROTOCOL",
                        v,
                        "expected `grpc` or `http/protobuf` (`http/json` is not supported)",
                    ));
                }
            },
        };
        let endpoint = match s.get_or("OTEL_EXPORTER_OTLP_ENDPOINT", protocol.default_endpoint()) {
            None => protocol.default_endpoint().to_string(),
            Some(v) => parse_endpoint(v)?,
        };
        Ok(Config {
            sdk_disabled: s.flag("OTEL_SDK_DISABLED", false)?,
            service_name: s.get("OTEL_SERVICE_NAME"),
            resource_attributes: match s.get("OTEL_RESOURCE_ATTRIBUTES") {
                None => Vec::new(),
                Some(v) => parse_resource_attributes(v)?,
            },
            endpoint,
            protocol,
            otlp_timeout: s.millis("OTEL_EXPORTER_OTLP_TIMEOUT", DEFAULT_OTLP_TIMEOUT_MS)?,
            export_interval: s.millis("OTEL_METRIC_EXPORT_INTERVAL", DEFAULT_EXPORT_INTERVAL_MS)?,
            export_timeout: s.millis("OTEL_METRIC_EXPORT_TIMEOUT", DEFAULT_EXPORT_TIMEOUT_MS)?,
            traces: match s.get_or("OTEL_TRACES_EXPORTER", "none").as_deref() {
                None | Some("none") => TracesExporter::None,
                Some("otlp") => TracesExporter::Otlp,
                Some(v) => {
                    return Err(SettingError::new(
                        "OTEL_TRACES_EXPORTER",
                        v,
                        "expected `otlp` or `none`",
                    ));
                }
            },
            sampler: TraceSampler::read(s)?,
            span_batch: SpanBatch::read(s)?,
            log_filter: s
                .get_or("RUST_LOG", DEFAULT_LOG_FILTER)
                .unwrap_or_else(|| DEFAULT_LOG_FILTER.to_string()),
            log_format: match s.get_or("LOG_FORMAT", "json").as_deref() {
                None | Some("json") => LogFormat::Json,
                Some("pretty") => LogFormat::Pretty,
                Some(v) => {
                    return Err(SettingError::new("LOG_FORMAT", v, "expected `json` or `pretty`"));
                }
            },
        })
    }
}

impl Config {
    /// The value of `key` in `OTEL_RESOURCE_ATTRIBUTES` (the last one if given twice).
    pub fn resource_attribute(&self, key: &str) -> Option<&str> {
        self.resource_attributes.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The URL a signal is sent to: for HTTP the base endpoint plus the signal path
    /// (`/v1/metrics`, `/v1/traces`), for gRPC the endpoint itself.
    pub fn signal_endpoint(&self, path: &str) -> String {
        match self.protocol {
            Protocol::Grpc => self.endpoint.clone(),
            Protocol::HttpProtobuf => format!("{}{path}", self.endpoint.trim_end_matches('/')),
        }
    }
}

fn invalid(variable: &'static str, value: impl Into<String>, reason: &str) -> ConfigError {
    SettingError::new(variable, value, reason)
}

fn parse_endpoint(value: String) -> Result<String, ConfigError> {
    const VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
    // An error never echoes credentials (`https://user:token@host`).
    let shown = without_credentials(&value);
    let Some(rest) = value.strip_prefix("http://").or_else(|| value.strip_prefix("https://"))
    else {
        return Err(invalid(VAR, &shown, "expected an http:// or https:// URL"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:4317`.
        Some(v6) => match v6.split_once(']') {
            Some((host, rest)) => (host, rest.strip_prefix(':')),
            None => return Err(invalid(VAR, &shown, "unterminated IPv6 address")),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(invalid(VAR, &shown, "the URL has no host"));
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(invalid(VAR, &shown, "the port is not a number from 0 to 65535"));
    }
    Ok(value)
}

/// `url` with the user information of its authority (`user:password@`) replaced by `***@`.
pub(crate) fn without_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// `key=value` pairs separated by `,`, values percent-encoded (W3C Baggage octets).
fn parse_resource_attributes(value: String) -> Result<Vec<(String, String)>, ConfigError> {
    const VAR: &str = "OTEL_RESOURCE_ATTRIBUTES";
    let mut out = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, raw)) = pair.split_once('=') else {
            return Err(invalid(VAR, value.clone(), &format!("`{pair}` is not key=value")));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(invalid(VAR, value.clone(), &format!("`{pair}` has an empty key")));
        }
        let decoded = percent_decode(raw.trim()).ok_or_else(|| {
            invalid(VAR, value.clone(), &format!("`{pair}` has a bad percent-encoding"))
        })?;
        out.push((key.to_string(), decoded));
    }
    Ok(out)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_follow_the_spec_except_traces_off() {
        let c = parse(&[]).unwrap();
        assert!(!c.sdk_disabled);
        assert_eq!(c.protocol, Protocol::Grpc);
        assert_eq!(c.endpoint, "http://localhost:4317");
        assert_eq!(c.export_interval, Duration::from_secs(60));
        assert_eq!(c.export_timeout, Duration::from_secs(30));
        assert_eq!(c.otlp_timeout, Duration::from_secs(10));
        assert_eq!(c.traces, TracesExporter::None);
        assert_eq!(c.log_format, LogFormat::Json);
        let http = parse(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).unwrap();
        assert_eq!(http.signal_endpoint("/v1/metrics"), "http://localhost:4318/v1/metrics");
    }

    #[test]
    fn reads_every_variable() {
        let c = parse(&[
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_SERVICE_NAME", "api"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.namespace=orgraph, team=a%2Cb%3Dc ,x=%E2%9C%93"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
            ("OTEL_METRIC_EXPORT_TIMEOUT", "5000"),
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("LOG_FORMAT", "pretty"),
        ])
        .unwrap();
        assert!(c.sdk_disabled);
        assert_eq!(c.service_name.as_deref(), Some("api"));
        assert_eq!(c.resource_attribute("service.namespace"), Some("orgraph"));
        assert_eq!(c.resource_attribute("team"), Some("a,b=c"));
        assert_eq!(c.resource_attribute("x"), Some("✓"));
        assert_eq!(c.signal_endpoint("/v1/metrics"), "https://collector:4318/v1/metrics");
        assert_eq!(c.otlp_timeout, Duration::from_millis(2500));
        assert_eq!(c.export_interval, Duration::from_secs(15));
        assert_eq!(c.export_timeout, Duration::from_secs(5));
        assert_eq!(c.traces, TracesExporter::Otlp);
        assert_eq!(c.log_format, LogFormat::Pretty);
    }

    #[test]
    fn malformed_values_name_their_variable() {
        let cases = [
            ("OTEL_SDK_DISABLED", "yes"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.namespace"),
            ("OTEL_RESOURCE_ATTRIBUTES", "=x"),
            ("OTEL_RESOURCE_ATTRIBUTES", "a=%zz"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://:4317"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:43x7"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
            ("OTEL_METRIC_EXPORT_TIMEOUT", "-1"),
            ("OTEL_TRACES_EXPORTER", "jaeger"),
            ("LOG_FORMAT", "xml"),
        ];
        for (variable, value) in cases {
            let err = parse(&[(variable, value)]).expect_err(value);
            assert_eq!(err.variable, variable, "{value}");
            let message = err.to_string();
            assert!(message.starts_with(variable), "{message}");
        }
    }

    #[test]
    fn empty_values_count_as_unset() {
        let c = parse(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " "), ("OTEL_SERVICE_NAME", "")]).unwrap();
        assert_eq!(c.endpoint, "http://localhost:4317");
        assert_eq!(c.service_name, None);
    }

    #[test]
    fn ipv6_endpoints_are_accepted() {
        let c = parse(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1]:4317")]).unwrap();
        assert_eq!(c.endpoint, "http://[::1]:4317");
    }

    #[test]
    fn an_endpoint_error_never_echoes_credentials() {
        let err = parse_endpoint("ftp://user:hunter2@collector:4318".into()).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("***@collector:4318"), "{err}");
        assert_eq!(without_credentials("http://collector:4318/x"), "http://collector:4318/x");
    }
}
