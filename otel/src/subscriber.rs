//! The `tracing` subscriber [`crate::init`] installs, composed in one place so tests (here and
//! in other crates) can build the very same one with a writer of their own.
//!
//! `tracing` carries the logs, and one thing more: sqlx's per-statement events, which
//! [`crate::trace::sql`] turns into Postgres client spans. The log output has `RUST_LOG` as its
//! own (per-layer) filter, so it logs exactly what it did before; the span layer, outermost,
//! enables a statement event while the current trace is sampled or when that same `RUST_LOG`
//! wants it. A global `RUST_LOG` filter would hide the statements from the span layer or put
//! every statement in the log.

use crate::InitError;
use crate::config::LogFormat;
use crate::trace::log_ids::WithTraceIds;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layer, SubscriberExt};

/// The subscriber: logs in `format` to `writer`, filtered by `log_filter` (`RUST_LOG`
/// directives), plus the Postgres client span layer when `sql_spans` (traces are on).
pub fn build<W>(
    log_filter: &str,
    format: LogFormat,
    sql_spans: bool,
    writer: W,
) -> Result<impl Subscriber + Send + Sync + 'static, InitError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let parse = || {
        EnvFilter::try_new(log_filter).map_err(|e| InitError::LogFilter {
            value: log_filter.to_string(),
            reason: e.to_string(),
        })
    };
    let filter = parse()?;
    let sql = if sql_spans { Some(crate::trace::sql::layer(parse()?)) } else { None };
    let (json, pretty) = match format {
        LogFormat::Json => {
            let json = tracing_subscriber::fmt::layer()
                .json()
                .event_format(WithTraceIds(tracing_subscriber::fmt::format().json()))
                .with_writer(writer);
            (Some(json.with_filter(filter)), None)
        }
        LogFormat::Pretty => {
            let pretty = tracing_subscriber::fmt::layer().pretty().with_writer(writer);
            (None, Some(pretty.with_filter(filter)))
        }
    };
    Ok(tracing_subscriber::registry().with(json).with(pretty).with(sql))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use std::sync::{Arc, Mutex};

    /// Everything written, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<serde_json::Value> {
            let bytes = self.0.lock().expect("not poisoned").clone();
            String::from_utf8(bytes)
                .expect("utf-8")
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect()
        }
    }

    fn logs(rust_log: &str, sql_spans: bool, f: impl FnOnce()) -> Vec<serde_json::Value> {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber =
            build(rust_log, LogFormat::Json, sql_spans, move || writer.clone()).expect("filter");
        tracing::subscriber::with_default(subscriber, f);
        captured.lines()
    }

    #[test]
    fn json_lines_carry_the_ids_of_the_current_span_and_only_then() {
        let trace_id = TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736_u128);
        let span_id = SpanId::from(0x00f067aa0ba902b7_u64);
        let lines = logs("info", false, || {
            tracing::info!(answer = 42, "outside");
            let context = SpanContext::new(
                trace_id,
                span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            );
            let _attached =
                opentelemetry::Context::new().with_remote_span_context(context).attach();
            tracing::info!(answer = 43, "inside");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let (outside, inside) = (&lines[0], &lines[1]);
        assert_eq!(outside["fields"]["message"], "outside");
        assert!(outside.get("trace_id").is_none() && outside.get("span_id").is_none());
        assert_eq!(inside["fields"]["message"], "inside");
        assert_eq!(inside["fields"]["answer"], 43);
        assert_eq!(inside["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(inside["span_id"], "00f067aa0ba902b7");
        assert_eq!(inside["level"], "INFO");
    }

    #[test]
    fn rust_log_filters_the_log_as_before_with_the_sql_layer_present() {
        let lines = logs("warn,otel=debug", true, || {
            tracing::info!(target: "app", "hidden");
            tracing::warn!(target: "app", "shown");
            tracing::debug!(target: "otel::x", "debug of otel");
            tracing::debug!(target: "sqlx::query", summary = "SELECT 1", "a statement");
            // The span layer turns on nothing else: no trace, no statement either.
            assert!(!tracing::enabled!(target: "app", tracing::Level::INFO));
            assert!(!tracing::enabled!(target: "sqlx::query", tracing::Level::DEBUG));
        });
        let messages: Vec<&str> =
            lines.iter().filter_map(|l| l["fields"]["message"].as_str()).collect();
        assert_eq!(messages, ["shown", "debug of otel"]);
        let lines = logs("sqlx=debug", true, || {
            tracing::debug!(target: "sqlx::query", summary = "SELECT 1", "a statement");
        });
        assert_eq!(lines.len(), 1, "RUST_LOG=sqlx=debug still logs statements: {lines:?}");
    }
}
