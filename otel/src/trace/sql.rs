//! Postgres client spans for every sqlx statement, without touching a call site.
//!
//! sqlx logs each statement when it finishes: a `tracing` event with target `sqlx::query` and the
//! fields `summary`, `db.statement` (the text when longer than the summary), `elapsed_secs`,
//! `rows_returned` (sqlx-core's `logger.rs`). [`layer`] turns that event into a `Client` span that
//! started `elapsed_secs` ago and ends now, child of the current OpenTelemetry context (the
//! request's or the job's span). Its name and `db.query.summary` come from
//! [`super::sql_summary`]: operation and table, never the statement text.
//!
//! Unsampled statements cost nothing: sqlx asks `tracing` whether the event is enabled before it
//! formats anything, and this layer, the outermost of the subscriber ([`crate::subscriber`]),
//! answers: for sqlx's statements, yes while the current span is sampled (and traces are on) or
//! when `RUST_LOG` wants them in the log; for everything else, what `RUST_LOG` says (`logs`, the
//! same directives as the log output's own filter). A no here is a no for the whole subscriber,
//! so sqlx skips the event: an unsampled statement costs an atomic load and a context look-up.
//! (A per-layer filter cannot refuse for the whole subscriber: `tracing-subscriber` 0.3 still
//! dispatches an event every per-layer filter refused, so sqlx would format each statement; and
//! a layer that let every other callsite through would turn on every `debug!` in the process.)

use super::sql_summary::summarise;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _};
use opentelemetry_semantic_conventions::attribute as semconv;
use std::time::{Duration, SystemTime};
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber, span};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The target of sqlx's per-statement events.
const TARGET: &str = "sqlx::query";

/// The layer that makes a Postgres client span of each sqlx statement of a sampled trace. `logs`
/// is the log output's filter (built from the same `RUST_LOG`): a statement it wants stays
/// enabled in unsampled traces too, for the log.
pub fn layer(logs: EnvFilter) -> SqlSpans {
    SqlSpans { logs }
}

/// See [`layer`].
pub struct SqlSpans {
    logs: EnvFilter,
}

/// Whether a span is made for the statement being reported now.
fn wanted() -> bool {
    super::enabled() && super::current_is_sampled()
}

impl<S> Layer<S> for SqlSpans
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.target() == TARGET {
            // Decided per event: sampling changes with the context.
            Interest::sometimes()
        } else {
            <EnvFilter as Layer<S>>::register_callsite(&self.logs, metadata)
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        (metadata.target() == TARGET && wanted())
            || <EnvFilter as Layer<S>>::enabled(&self.logs, metadata, ctx)
    }

    // `RUST_LOG` directives on span fields (`[span{field=x}]=debug`) need the spans' comings and
    // goings, as the log output's filter sees them.
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_new_span(&self.logs, attrs, id, ctx);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_record(&self.logs, id, values, ctx);
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_enter(&self.logs, id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_exit(&self.logs, id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        <EnvFilter as Layer<S>>::on_close(&self.logs, id, ctx);
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // sqlx's statement level is configurable (DEBUG by default, WARN when slow); other
        // callsites below `RUST_LOG`'s level are refused in `register_callsite`, once.
        Some(LevelFilter::TRACE)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != TARGET || !wanted() {
            return;
        }
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
