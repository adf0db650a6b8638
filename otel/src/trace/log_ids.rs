//! Log lines that name their trace: every JSON line written while a valid span context is
//! current gets top-level `trace_id` and `span_id` fields (lower-case hex, as Jaeger and Grafana
//! show them), so a log line leads to its trace and back. The pretty format is for people at a
//! terminal and is left as it is.
//!
//! [`WithTraceIds`] wraps `tracing-subscriber`'s JSON event format: the line is formatted as usual,
//! then the two fields are put first in its object. The ids come from the OpenTelemetry context
//! (the spans of [`crate::trace`]), not from `tracing` spans.

use opentelemetry::trace::TraceContextExt;
use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// A JSON event format with the current trace's ids added; see the module doc.
pub struct WithTraceIds<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ids = opentelemetry::Context::map_current(|cx| {
            let span = cx.span();
            let context = span.span_context();
            context.is_valid().then(|| (context.trace_id(), context.span_id()))
        });
        let Some((trace_id, span_id)) = ids else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => {
                let separator = if rest.starts_with('}') { "" } else { "," };
                write!(
                    writer,
                    r#"{{"trace_id":"{trace_id}","span_id":"{span_id}"{separator}{rest}"#
                )
            }
            // Not a JSON object: written unchanged.
            None => writer.write_str(&line),
        }
    }
}
