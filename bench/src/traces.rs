//! What the traced throughput runs add to the instrumented ones: the proof that a traced run
//! really exported spans while the others exported none ([`account`]), and the count of spans the
//! service itself lost before export ([`check_run`], through [`super::lost_spans`]). The proof
//! reads the benchmark collector's own counters (`otelcol_receiver_accepted_spans`,
//! `otelcol_exporter_sent_spans`, `otelcol_exporter_send_failed_spans`), so it holds whatever
//! exporter the collector config's `traces` pipeline names (Jaeger's, in the benchmarks), and
//! fails when that exporter cannot deliver. Spans the service dropped (its bounded queue full) or
//! failed to export never reach the collector: only the service's own counters say so.

use super::lost_spans::{self, LostSpans};
use super::services::{Stopped, Telemetry};
use std::collections::BTreeMap;
use std::time::Duration;
use testkit::Collector;
use testkit::exposition::Exposition;

/// Spans the collector's OTLP receiver accepted (by transport).
const ACCEPTED: &str = "otelcol_receiver_accepted_spans";
/// Spans an exporter delivered (by `exporter`).
const SENT: &str = "otelcol_exporter_sent_spans";
/// Spans an exporter gave up on (by `exporter`).
const FAILED: &str = "otelcol_exporter_send_failed_spans";

/// How long the collector gets, after the traced service has stopped (and flushed its spans), to
/// pass every span on: its `batch` processor holds spans for up to 1 s, then the exporter sends.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(20);

/// The collector's span counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanCounts {
    /// Spans the `otlp` receiver accepted, all transports.
    accepted: f64,
    /// Spans sent, by exporter.
    sent: BTreeMap<String, f64>,
    /// Spans that failed to send, by exporter.
    failed: BTreeMap<String, f64>,
}

impl SpanCounts {
    /// Reads the counters from the collector's own telemetry.
    pub fn read(collector: &Collector) -> anyhow::Result<SpanCounts> {
        let text = collector.scrape_telemetry()?;
        let exposition = Exposition::parse(&text)
            .map_err(|e| anyhow::anyhow!("the collector's own telemetry does not parse: {e}"))?;
        Ok(SpanCounts::from_exposition(&exposition))
    }

    /// The counters of a parsed scrape; a counter not served yet (nothing counted) is 0.
    fn from_exposition(exposition: &Exposition) -> SpanCounts {
        let by_exporter = |name: &str| {
            let mut counts = BTreeMap::<String, f64>::new();
            for sample in exposition.samples_of(name) {
                let exporter = sample.labels.get("exporter").cloned().unwrap_or_default();
                *counts.entry(exporter).or_default() += sample.value;
            }
            counts
        };
        SpanCounts {
            accepted: exposition
                .samples_of(ACCEPTED)
                .filter(|s| s.labels.get("receiver").map(String::as_str) == Some("otlp"))
                .map(|s| s.value)
                .sum(),
            sent: by_exporter(SENT),
            failed: by_exporter(FAILED),
        }
    }

    /// What happened between `before` and `self`.
    fn since(&self, before: &SpanCounts) -> SpanCounts {
        let minus = |now: &BTreeMap<String, f64>, then: &BTreeMap<String, f64>| {
            now.iter().map(|(k, v)| (k.clone(), v - then.get(k).copied().unwrap_or(0.0))).collect()
        };
        SpanCounts {
            accepted: self.accepted - before.accepted,
            sent: minus(&self.sent, &before.sent),
            failed: minus(&self.failed, &before.failed),
        }
    }
}

/// How far the spans of one run have got, from the counters' difference over the run.
#[derive(Debug, PartialEq)]
enum Progress {
    /// Every accepted span was sent by every exporter that handles spans: the count.
    Exported(u64),
    /// Spans still on their way (or none arrived yet): why it is not over.
    Pending(String),
}

/// Judges a traced run's difference: an exporter that failed to send is an error at once.
fn progress(run: &SpanCounts) -> anyhow::Result<Progress> {
    if let Some((exporter, n)) = run.failed.iter().find(|(_, n)| **n > 0.0) {
        anyhow::bail!(
            "the collector's `{exporter}` exporter failed to send {n} spans: is the trace \
             backend its `traces` pipeline exports to running?"
        );
    }
    if run.accepted <= 0.0 {
        return Ok(Progress::Pending(
            "the collector accepted no span: does the service create spans and export them with \
             OTEL_TRACES_EXPORTER=otlp?"
                .to_string(),
        ));
    }
    let behind: Vec<String> = run
        .sent
        .iter()
        .filter(|(_, sent)| **sent < run.accepted)
        .map(|(exporter, sent)| format!("`{exporter}` sent {sent}"))
        .collect();
    if run.sent.is_empty() || !behind.is_empty() {
        let detail = if behind.is_empty() {
            "no exporter has sent any yet (is the trace backend up?)".into()
        } else {
            behind.join(", ")
        };
        return Ok(Progress::Pending(format!(
            "the collector accepted {} spans; {detail}",
            run.accepted
        )));
    }
    Ok(Progress::Exported(run.accepted as u64))
}

/// Checks the spans of one finished run (its service stopped, so flushed), from the counters
/// read just before it started: a traced run must have had at least one span accepted and every
/// one of them sent on by the collector (waiting up to [`EXPORT_TIMEOUT`]); any other run must
/// have sent none. Returns the traced run's span count (0 for the others).
pub fn account(
    collector: &Collector,
    telemetry: Telemetry,
    before: &SpanCounts,
) -> anyhow::Result<u64> {
    if telemetry != Telemetry::Traced {
        let run = SpanCounts::read(collector)?.since(before);
        anyhow::ensure!(
            run.accepted == 0.0,
            "the {} run sent {} spans: only the traced run may (its environment must differ \
             only by the trace variables)",
            telemetry.name(),
            run.accepted
        );
        return Ok(0);
    }
    testkit::wait_for("the collector to export the traced run's spans", EXPORT_TIMEOUT, || {
        let run = SpanCounts::read(collector)?.since(before);
        match progress(&run)? {
            Progress::Exported(n) => Ok(Some(n)),
            Progress::Pending(why) => anyhow::bail!("{why}"),
        }
    })
}

/// The spans of one finished run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSpans {
    /// Spans the collector received and passed on (0 unless traced).
    pub exported: u64,
    /// Spans the service lost before export (none unless traced).
    pub lost: LostSpans,
}

/// [`account`] and, for a traced run, the spans its service lost ([`lost_spans::after_stop`]):
/// `stopped` is how the run's service ended.
pub fn check_run(
    collector: &Collector,
    telemetry: Telemetry,
    before: &SpanCounts,
    stopped: &Stopped,
) -> anyhow::Result<RunSpans> {
    let exported = account(collector, telemetry, before)?;
    let lost = match telemetry {
        Telemetry::Traced => lost_spans::after_stop(collector, stopped)?,
        Telemetry::Instrumented | Telemetry::Disabled => LostSpans::default(),
    };
    Ok(RunSpans { exported, lost })
}

/// The spans of the traced runs of one benchmark, summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TracedTotals {
    exported: u64,
    lost: u64,
}

impl TracedTotals {
    /// Adds one traced run.
    pub fn add(&mut self, run: RunSpans) {
        self.exported += run.exported;
        self.lost += run.lost.total();
    }

    /// Checks the spans of `service`'s finished run `run` of `total` ([`check_run`]) and, when it
    /// was traced, says what it exported and lost and adds it.
    pub fn record(
        &mut self,
        collector: &Collector,
        (telemetry, before, stopped): (Telemetry, &SpanCounts, &Stopped),
        service: &str,
        (run, total): (usize, usize),
    ) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let spans = check_run(collector, telemetry, before, stopped)
            .with_context(|| format!("{service} run {run}/{total} ({})", telemetry.name()))?;
        if telemetry == Telemetry::Traced {
            eprintln!(
                "[bench] {service} run {run}/{total} (traced): {} spans exported; lost by the \
                 {service}: {} dropped (queue full), {} in failed exports",
                spans.exported, spans.lost.dropped, spans.lost.failed
            );
            self.add(spans);
        }
        Ok(())
    }

    /// Spans lost before export (dropped by the queue, or in failed exports).
    pub fn lost(self) -> u64 {
        self.lost
    }

    /// The lost spans' share of every span the traced runs finished: lost over exported plus
    /// lost (0 when there were none).
    pub fn lost_share(self) -> f64 {
        let finished = self.exported + self.lost;
        if finished == 0 { 0.0 } else { self.lost as f64 / finished as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::Jaeger;

    #[test]
    fn the_lost_share_is_of_every_finished_span() {
        let mut totals = TracedTotals::default();
        assert_eq!(totals.lost_share(), 0.0);
        let run =
            |exported, dropped, failed| RunSpans { exported, lost: LostSpans { dropped, failed } };
        totals.add(run(700, 200, 0));
        totals.add(run(80, 0, 20));
        assert_eq!(totals.lost(), 220);
        assert_eq!(totals.lost_share(), 0.22);
    }

    fn counts(accepted: f64, sent: &[(&str, f64)], failed: &[(&str, f64)]) -> SpanCounts {
        let map = |v: &[(&str, f64)]| v.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        SpanCounts { accepted, sent: map(sent), failed: map(failed) }
    }

    #[test]
    fn counters_are_read_from_the_collectors_telemetry() -> anyhow::Result<()> {
        let text = "\
otelcol_receiver_accepted_spans{receiver=\"otlp\",transport=\"grpc\"} 40
otelcol_receiver_accepted_spans{receiver=\"otlp\",transport=\"http\"} 2
otelcol_receiver_accepted_spans{receiver=\"other\",transport=\"grpc\"} 1000
otelcol_exporter_sent_spans{exporter=\"otlp/jaeger\"} 42
otelcol_exporter_send_failed_spans{exporter=\"otlp/jaeger\"} 0
otelcol_exporter_sent_metric_points{exporter=\"prometheus\"} 7
";
        let exposition = Exposition::parse(text).map_err(anyhow::Error::msg)?;
        let read = SpanCounts::from_exposition(&exposition);
        assert_eq!(read, counts(42.0, &[("otlp/jaeger", 42.0)], &[("otlp/jaeger", 0.0)]));
        Ok(())
    }

    #[test]
    fn a_run_counts_only_what_happened_during_it() {
        let before = counts(10.0, &[("debug", 10.0)], &[]);
        let after = counts(25.0, &[("debug", 20.0), ("otlp/jaeger", 15.0)], &[]);
        assert_eq!(
            after.since(&before),
            counts(15.0, &[("debug", 10.0), ("otlp/jaeger", 15.0)], &[])
        );
    }

    #[test]
    fn a_traced_run_is_over_when_every_exporter_sent_every_span() -> anyhow::Result<()> {
        let done = counts(15.0, &[("debug", 15.0), ("otlp/jaeger", 15.0)], &[("debug", 0.0)]);
        assert_eq!(progress(&done)?, Progress::Exported(15));
        let behind = counts(15.0, &[("debug", 15.0), ("otlp/jaeger", 3.0)], &[]);
        assert!(
            matches!(progress(&behind)?, Progress::Pending(why) if why.contains("otlp/jaeger"))
        );
        assert!(matches!(progress(&counts(15.0, &[], &[]))?, Progress::Pending(_)));
        assert!(matches!(progress(&counts(0.0, &[], &[]))?, Progress::Pending(_)));
        Ok(())
    }

    #[test]
    fn a_failed_export_is_an_error_naming_the_exporter() {
        let failed = counts(15.0, &[("debug", 15.0)], &[("otlp/jaeger", 15.0)]);
        let error = progress(&failed).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("`otlp/jaeger` exporter failed to send 15 spans"), "{error}");
    }

    /// The trace of [`otlp_json`].
    const TRACE_ID: &str = "5b8efff798038103d269b633813fc60c";

    /// `count` spans of one trace ([`TRACE_ID`]), just ended, as OTLP/JSON, as an SDK would send
    /// them.
    fn otlp_json(count: usize) -> anyhow::Result<String> {
        let end = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let start = end - 1_000_000;
        let spans: Vec<String> = (0..count)
            .map(|i| {
                format!(
                    r#"{{"traceId":"{TRACE_ID}","spanId":"eee19b7ec3c1b17{i}",
                    "name":"GET /api/graph/stats","kind":2,
                    "startTimeUnixNano":"{start}","endTimeUnixNano":"{end}"}}"#
                )
            })
            .collect();
        Ok(format!(
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name",
            "value":{{"stringValue":"bench-test"}}}}]}},
            "scopeSpans":[{{"scope":{{"name":"bench"}},"spans":[{}]}}]}}]}}"#,
            spans.join(",")
        ))
    }

    /// The number of spans Jaeger's query API returns for [`TRACE_ID`]; 0 while it has none.
    fn spans_in_jaeger(jaeger: &Jaeger) -> anyhow::Result<usize> {
        let url = format!("{}/api/traces/{TRACE_ID}", jaeger.query_url());
        let (status, body) = testkit::http_get(&url)?;
        if status == 404 {
            return Ok(0);
        }
        anyhow::ensure!(status == 200, "GET {url}: {status} {body}");
        let json: serde_json::Value = serde_json::from_str(&body)?;
        let traces = json["data"].as_array().map(Vec::as_slice).unwrap_or_default();
        Ok(traces.iter().filter_map(|t| t["spans"].as_array()).map(Vec::len).sum())
    }

    /// Against the real collector (the repo's config) exporting to a real Jaeger, as in the
    /// benchmarks: the counter names are the ones it serves, spans it passed on are accounted to
    /// the traced run (and are in Jaeger), and a run that was not traced may not have sent any.
    #[test]
    fn a_real_collector_accounts_the_spans_of_a_run() -> anyhow::Result<()> {
        let jaeger = Jaeger::start()?;
        let collector =
            Collector::start_with(&[("JAEGER_OTLP_ENDPOINT", &jaeger.otlp_grpc_endpoint())])?;
        let before = SpanCounts::read(&collector)?;
        let url = format!("{}/v1/traces", collector.otlp_http_endpoint());
        let agent: ureq::Agent = ureq::Agent::config_builder().proxy(None).build().into();
        let response = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(otlp_json(3)?.as_str())
            .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(account(&collector, Telemetry::Traced, &before)?, 3);
        testkit::wait_for("the 3 spans in Jaeger", Duration::from_secs(20), || {
            Ok((spans_in_jaeger(&jaeger)? == 3).then_some(()))
        })?;

        let error = account(&collector, Telemetry::Disabled, &before)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("the disabled run sent 3 spans"), "{error}");
        let after = SpanCounts::read(&collector)?;
        assert_eq!(account(&collector, Telemetry::Instrumented, &after)?, 0);
        Ok(())
    }
}
