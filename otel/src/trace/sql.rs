//! Postgres client spans for every sqlx statement, without touching a call site.
//!
//! sqlx logs each statement when it finishes: a `tracing` event with target `sqlx::query` and the
//! fields `summary`, `db.statement` (the text when longer than the summary), `elapsed_secs`,
//! `rows_returned` (sqlx-core's `logger.rs`). [`layer`] turns that event into a `Client` span that
//! started `elapsed_secs` ago and ends now, child of the current OpenTelemetry context (the
//! request's or the job's span). Its name and `db.query.summary` come from
//! [`super::sql_summary`]: operation and table, never the statement text.
//!
//! The layer has its own filter: the event is enabled for it only when traces are on and the
//! current span is sampled. sqlx asks whether the event is enabled before it formats anything,
//! so a statement of an unsampled request costs one atomic load and a context look-up. The log
//! output keeps its own `RUST_LOG` filter (a per-layer filter too), so sqlx's statement events
//! reach the log exactly when they did before.

use super::sql_summary::summarise;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _};
use opentelemetry_semantic_conventions::attribute as semconv;
use std::time::{Duration, SystemTime};
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The target of sqlx's per-statement events.
const TARGET: &str = "sqlx::query";

/// The layer that makes a Postgres client span of each sqlx statement of a sampled trace.
pub fn layer<S>() -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    SqlSpans.with_filter(WhenSampled)
}

struct SqlSpans;

impl<S: Subscriber> Layer<S> for SqlSpans {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = StatementFields::default();
        event.record(&mut fields);
        let sql =
            if fields.statement.trim().is_empty() { &fields.summary } else { &fields.statement };
        let query = summarise(sql);
        let now = SystemTime::now();
        let elapsed = Duration::try_from_secs_f64(fields.elapsed_secs).unwrap_or_default();
        let tracer = super::tracer();
        let mut span = tracer
            .span_builder(query.summary.clone())
            .with_kind(SpanKind::Client)
            .with_start_time(now.checked_sub(elapsed).unwrap_or(now))
            .with_attributes([
                KeyValue::new(semconv::DB_SYSTEM_NAME, "postgresql"),
                KeyValue::new(semconv::DB_OPERATION_NAME, query.operation),
                KeyValue::new(semconv::DB_QUERY_SUMMARY, query.summary),
                KeyValue::new(semconv::DB_RESPONSE_RETURNED_ROWS, fields.rows_returned as i64),
            ])
            .start_with_context(&tracer, &opentelemetry::Context::current());
        span.end_with_timestamp(now);
    }
}

/// The fields of a sqlx statement event this layer reads.
#[derive(Default)]
struct StatementFields {
    summary: String,
    statement: String,
    elapsed_secs: f64,
    rows_returned: u64,
}

impl Visit for StatementFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_string(),
            "db.statement" => self.statement = value.to_string(),
            _ => {}
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed_secs = value;
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "rows_returned" {
            self.rows_returned = value;
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

/// Enables sqlx's statement events, and nothing else, while the current span is sampled.
struct WhenSampled;

impl<S> Filter<S> for WhenSampled {
    fn enabled(&self, metadata: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        metadata.target() == TARGET && super::enabled() && super::current_is_sampled()
    }

    fn callsite_enabled(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Decided per event (the sampling decision changes with the context), and only for sqlx.
        if metadata.target() == TARGET { Interest::sometimes() } else { Interest::never() }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // sqlx's statement level is configurable (DEBUG by default, WARN when slow).
        Some(LevelFilter::TRACE)
    }
}
