//! The spans a traced service lost before they reached the collector, as the service counts them
//! itself (`otel::trace::pipeline`): spans its bounded span queue refused
//! (`otel_sdk_processor_span_processed_total` with an `error_type`: `queue_full`, or
//! `already_shutdown`) and the spans of exports that failed
//! (`otel_sdk_exporter_span_exported_total` with an `error_type`). The collector never sees these
//! spans, so only the service's own counters can say how many: they travel with its metrics to
//! the benchmark's collector, and are read from its `prometheus` exporter by the run's `instance`
//! once the service has stopped, so that its final metric flush is included.

use super::services::Stopped;
use anyhow::Context;
use std::time::{Duration, Instant};
use testkit::Collector;
use testkit::exposition::Exposition;

/// Finished spans, by what the span processor did with them (`error_type` when dropped).
const PROCESSED: &str = "otel_sdk_processor_span_processed_total";
/// Spans the exporter tried to send (`error_type` when the export failed).
const EXPORTED: &str = "otel_sdk_exporter_span_exported_total";

/// How long after a service's exit its final metrics may take to reach the scrape. When it has
/// exited cleanly its final flush is in the collector (the flush waits for the collector's
/// answer); from there the collector's `batch` processor holds them for up to its `timeout` (1 s)
/// before the `prometheus` exporter serves them. Three times that, for a busy machine.
const SETTLE: Duration = Duration::from_secs(3);

/// What `otel::ShutdownError` prints (on stderr, in the log) when the final flush failed or
/// timed out, and what the telemetry guard logs when it fails on drop.
const SHUTDOWN_FAILED: [&str; 3] = [
    "telemetry shutdown failed",
    "telemetry shutdown did not finish",
    "telemetry shutdown on drop",
];

/// The spans one service run lost before export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LostSpans {
    /// Refused by the service's span queue (full, or already shut down).
    pub dropped: u64,
    /// In exports that failed.
    pub failed: u64,
}

impl LostSpans {
    /// Every span lost, dropped or failed.
    pub fn total(self) -> u64 {
        self.dropped + self.failed
    }

    /// The counts of `instance` in a scrape of the collector's `prometheus` exporter; `None`
    /// when it has no [`PROCESSED`] series at all (its span pipeline never exported its metrics).
    fn of_instance(exposition: &Exposition, instance: &str) -> Option<LostSpans> {
        let of = |name: &'static str| {
            exposition
                .samples_of(name)
                .filter(move |s| s.labels.get("instance").map(String::as_str) == Some(instance))
        };
        let lost = |name: &'static str| {
            of(name)
                .filter(|s| s.labels.get("error_type").is_some_and(|e| !e.is_empty()))
                .map(|s| s.value)
                .sum::<f64>() as u64
        };
        of(PROCESSED).next()?;
        Some(LostSpans { dropped: lost(PROCESSED), failed: lost(EXPORTED) })
    }
}

/// The spans the service of `stopped` lost, read from `collector`'s scrape once its final metrics
/// are there. The service must have exited by itself, successfully, without logging a failed
/// telemetry shutdown: otherwise its final metrics (or its last spans) may never have left, and
/// the count would understate the loss.
pub fn after_stop(collector: &Collector, stopped: &Stopped) -> anyhow::Result<LostSpans> {
    clean_exit(stopped)?;
    std::thread::sleep((stopped.at + SETTLE).saturating_duration_since(Instant::now()));
    let text = collector.scrape()?;
    let exposition = Exposition::parse(&text)
        .map_err(anyhow::Error::msg)
        .context("the collector's scrape does not parse")?;
    LostSpans::of_instance(&exposition, &stopped.instance).ok_or_else(|| {
        anyhow::anyhow!(
            "the collector's scrape has no {PROCESSED} of instance {}: does the traced service \
             count its span pipeline and export its metrics at shutdown? (log: {})",
            stopped.instance,
            stopped.log.display()
        )
    })
}

/// Fails unless the service exited with success and its log shows no failed telemetry shutdown.
fn clean_exit(stopped: &Stopped) -> anyhow::Result<()> {
    let log = &stopped.log;
    match stopped.status {
        Some(status) if status.success() => {}
        Some(status) => anyhow::bail!(
            "{} ended with {status}, not a clean exit after SIGTERM: its final telemetry flush \
             cannot be relied on (log: {})",
            stopped.instance,
            log.display()
        ),
        None => anyhow::bail!("{} had been stopped before: no exit to judge", stopped.instance),
    }
    let text =
        std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    shutdown_failure(&text).map_or(Ok(()), |line| {
        anyhow::bail!(
            "{}'s final telemetry flush failed, so its last metrics or spans are missing: {line} \
             (log: {})",
            stopped.instance,
            log.display()
        )
    })
}

/// The first line of `log` that reports a failed telemetry shutdown.
fn shutdown_failure(log: &str) -> Option<&str> {
    log.lines().find(|line| SHUTDOWN_FAILED.iter().any(|m| line.contains(m)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn the_loss_of_one_instance_is_read_from_its_error_series() -> anyhow::Result<()> {
        let text = "\
otel_sdk_processor_span_processed_total{instance=\"03-api-traced\",otel_component_type=\"batching_span_processor\"} 9000
otel_sdk_processor_span_processed_total{instance=\"03-api-traced\",otel_component_type=\"batching_span_processor\",error_type=\"queue_full\"} 40
otel_sdk_processor_span_processed_total{instance=\"03-api-traced\",otel_component_type=\"batching_span_processor\",error_type=\"already_shutdown\"} 2
otel_sdk_exporter_span_exported_total{instance=\"03-api-traced\",otel_component_type=\"otlp_grpc_span_exporter\"} 8900
otel_sdk_exporter_span_exported_total{instance=\"03-api-traced\",otel_component_type=\"otlp_grpc_span_exporter\",error_type=\"timeout\"} 12
otel_sdk_processor_span_processed_total{instance=\"09-api-traced\",otel_component_type=\"batching_span_processor\",error_type=\"queue_full\"} 500
";
        let exposition = Exposition::parse(text).map_err(anyhow::Error::msg)?;
        let lost = LostSpans::of_instance(&exposition, "03-api-traced");
        assert_eq!(lost, Some(LostSpans { dropped: 42, failed: 12 }));
        assert_eq!(lost.map(LostSpans::total), Some(54));
        assert_eq!(LostSpans::of_instance(&exposition, "00-api-instrumented"), None);
        Ok(())
    }

    #[test]
    fn a_failed_final_flush_is_found_in_the_log() {
        let clean = "{\"level\":\"INFO\",\"fields\":{\"message\":\"shutdown signal received\"}}\n";
        assert_eq!(shutdown_failure(clean), None);
        let failed = format!("{clean}api: telemetry shutdown failed: traces: export timed out\n");
        assert_eq!(
            shutdown_failure(&failed),
            Some("api: telemetry shutdown failed: traces: export timed out")
        );
        let late = "worker: telemetry shutdown did not finish within 11s";
        assert_eq!(shutdown_failure(late), Some(late));
    }

    /// One OTLP/JSON sum data point of the span pipeline counters.
    fn point(now: u128, value: u64, attributes: &[(&str, &str)]) -> String {
        let attributes: Vec<String> = attributes
            .iter()
            .map(|(k, v)| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#))
            .collect();
        format!(
            r#"{{"attributes":[{}],"startTimeUnixNano":"{}","timeUnixNano":"{now}","asInt":"{value}"}}"#,
            attributes.join(","),
            now - 1_000_000_000
        )
    }

    /// The span pipeline counters of `instance` as the services' OTLP metric exporter sends them
    /// (semantic-convention names, unit `{span}`, cumulative monotonic sums).
    fn otlp_metrics(instance: &str, dropped: u64, failed: u64) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
        let processor = ("otel.component.type", "batching_span_processor");
        let exporter = ("otel.component.type", "otlp_grpc_span_exporter");
        let sum = |name: &str, points: Vec<String>| {
            format!(
                r#"{{"name":"{name}","unit":"{{span}}","sum":{{"aggregationTemporality":2,
                "isMonotonic":true,"dataPoints":[{}]}}}}"#,
                points.join(",")
            )
        };
        let processed = sum(
            "otel.sdk.processor.span.processed",
            vec![
                point(now, 1000, &[processor]),
                point(now, dropped, &[processor, ("error.type", "queue_full")]),
            ],
        );
        let exported = sum(
            "otel.sdk.exporter.span.exported",
            vec![
                point(now, 990, &[exporter]),
                point(now, failed, &[exporter, ("error.type", "timeout")]),
            ],
        );
        Ok(format!(
            r#"{{"resourceMetrics":[{{"resource":{{"attributes":[
            {{"key":"service.name","value":{{"stringValue":"api"}}}},
            {{"key":"service.namespace","value":{{"stringValue":"orgraph"}}}},
            {{"key":"service.instance.id","value":{{"stringValue":"{instance}"}}}}]}},
            "scopeMetrics":[{{"scope":{{"name":"orgraph"}},"metrics":[{processed},{exported}]}}]}}]}}"#
        ))
    }

    /// Against the real collector (the repo's config): the service's counters, sent the way the
    /// services send them, are served under the names and labels [`LostSpans`] reads, by instance;
    /// an exit that was not clean is refused.
    #[test]
    fn a_real_collector_serves_the_counts_of_each_instance() -> anyhow::Result<()> {
        let collector = Collector::start()?;
        let url = format!("{}/v1/metrics", collector.otlp_http_endpoint());
        let agent: ureq::Agent = ureq::Agent::config_builder().proxy(None).build().into();
        for (instance, dropped, failed) in [("03-api-traced", 40, 12), ("09-api-traced", 7, 0)] {
            let response = agent
                .post(&url)
                .header("content-type", "application/json")
                .send(otlp_metrics(instance, dropped, failed)?.as_str())
                .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?;
            assert_eq!(response.status().as_u16(), 200);
        }
        let dir = testkit::ScratchDir::new("bench-lost-spans")?;
        let log = dir.path().join("03-api-traced.log");
        std::fs::write(&log, "{\"level\":\"INFO\",\"fields\":{\"message\":\"bye\"}}\n")?;
        let stopped = |instance: &str, raw_status: i32| Stopped {
            instance: instance.to_string(),
            log: log.clone(),
            status: Some(ExitStatus::from_raw(raw_status)),
            at: Instant::now(),
        };
        assert_eq!(
            after_stop(&collector, &stopped("03-api-traced", 0))?,
            LostSpans { dropped: 40, failed: 12 }
        );
        assert_eq!(
            after_stop(&collector, &stopped("09-api-traced", 0))?,
            LostSpans { dropped: 7, failed: 0 }
        );
        let missing = after_stop(&collector, &stopped("10-api-traced", 0));
        assert!(missing.is_err_and(|e| e.to_string().contains("no otel_sdk_processor")));
        // SIGKILL (signal 9): killed after the grace, so its final flush may not have run.
        let killed = after_stop(&collector, &stopped("03-api-traced", 9));
        assert!(killed.is_err_and(|e| e.to_string().contains("not a clean exit")));
        Ok(())
    }
}
