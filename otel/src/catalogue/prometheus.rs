//! What the collector's `prometheus` exporter makes of each catalogue instrument.
//!
//! The rules are those of `prometheus/otlptranslator` v1.0.0, which the pinned collector (0.161.0)
//! uses with `translation_strategy: UnderscoreEscapingWithSuffixes` (set in
//! `collector-config.yaml`): the name is split on every character outside `[a-zA-Z0-9:]` and the
//! pieces joined with `_`; the unit becomes a suffix (`s` → `seconds`, `By` → `bytes`, `{…}`
//! annotations dropped, `A/B` → `A_per_B`) unless the name already has that word; monotonic sums
//! end in `_total`; gauges of unit `1` end in `_ratio`. The translation proof
//! (`otel/tests/translation.rs`) checks every rule used here against the real collector, so an
//! upgrade that changes a name fails a test instead of blanking a dashboard.
//!
//! It also lists the collector's own metrics the rules read ([`COLLECTOR_SELF_METRICS`]), named by
//! the collector's internal telemetry rather than by this translation.

use super::{ALL, Instrument, Kind};

/// Labels the exporter puts on every series of a service: `job` is
/// `service.namespace/service.name`, `instance` is `service.instance.id`.
pub const RESOURCE_LABELS: &[&str] = &["job", "instance"];
/// Labels naming the instrumentation scope (the meter) on every series. Collector 0.161 writes
/// `otel_scope_schema_url` even when the scope has none (as an empty value, which Prometheus
/// drops at ingestion), so it is part of the exposition's label set.
pub const SCOPE_LABELS: &[&str] =
    &["otel_scope_name", "otel_scope_schema_url", "otel_scope_version"];
/// The series carrying a service's other resource attributes, one per service instance.
pub const TARGET_INFO: &str = "target_info";

/// A Prometheus metric type, as in the `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// `counter`: monotonic sums.
    Counter,
    /// `gauge`: gauges and non-monotonic sums.
    Gauge,
    /// `histogram`: explicit-bucket histograms.
    Histogram,
}

impl MetricType {
    /// The word in the `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// The Prometheus metric family one instrument becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family name (the name in `# HELP` and `# TYPE`).
    pub name: String,
    /// The `# TYPE` the exporter writes: from the instrument's kind and monotonicity.
    pub metric_type: MetricType,
    /// The `# HELP` text: the instrument's description.
    pub help: &'static str,
    /// Names of the sample lines (`_bucket`, `_sum`, `_count` for histograms).
    pub series: Vec<String>,
    /// Label names from the instrument's attributes, sorted (`le` on buckets and the resource
    /// and scope labels come on top).
    pub labels: Vec<String>,
}

impl Family {
    /// Every label key a fully attributed sample of `series` carries, sorted.
    pub fn all_labels(&self, series: &str) -> Vec<String> {
        let mut labels: Vec<String> = self
            .labels
            .iter()
            .cloned()
            .chain(RESOURCE_LABELS.iter().chain(SCOPE_LABELS).map(|s| s.to_string()))
            .collect();
        if series.ends_with("_bucket") && self.metric_type == MetricType::Histogram {
            labels.push("le".to_string());
        }
        labels.sort();
        labels
    }
}

/// The family of one instrument.
pub fn family(instrument: &Instrument) -> Family {
    let name = metric_name(instrument.name, instrument.unit, instrument.kind);
    let metric_type = match instrument.kind {
        Kind::Counter => MetricType::Counter,
        Kind::UpDownCounter | Kind::Gauge => MetricType::Gauge,
        Kind::Histogram => MetricType::Histogram,
    };
    let series = match metric_type {
        MetricType::Histogram => {
            ["_bucket", "_sum", "_count"].iter().map(|s| format!("{name}{s}")).collect()
        }
        _ => vec![name.clone()],
    };
    let mut labels: Vec<String> = instrument.attributes.iter().map(|a| label_name(a.key)).collect();
    labels.sort();
    Family { name, metric_type, help: instrument.description, series, labels }
}

/// The families of the whole catalogue, in catalogue order.
pub fn families() -> Vec<Family> {
    ALL.iter().map(|i| family(i)).collect()
}

/// When one of the collector's own metrics is on its telemetry endpoint, with
/// `collector-config.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appears {
    /// From start-up.
    Always,
    /// For a receiver, once it got data: the OTLP receiver's series once it got a request, at 0
    /// until something happens (it records accepted, refused and failed points of every request,
    /// whatever the outcome); the infrastructure receivers' from their first scrape.
    OnData,
    /// Once data went all the way through to the `prometheus` exporter: the first OTLP request,
    /// or the first scrape of an infrastructure receiver, whichever comes first.
    OnExport,
    /// Only after the memory limiter refused data (created by the first refusal).
    OnRefusal,
    /// Once a scraping receiver (`redis`, `host_metrics`: those built on the collector's scraper
    /// helper; `prometheus/postgres` is not) ran its first scrape, about a second after start-up,
    /// whether the scrape worked or not. From then on every scrape adds to it.
    OnScrape,
    /// Never with this config, for the reason given: the name is real (collector 0.161 declares
    /// it), but nothing in this pipeline can record it.
    Never(&'static str),
}

/// One of the collector's own metrics, as its internal Prometheus endpoint (`:8888`) serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectorMetric {
    /// The exact sample and family name (no `_total`, no unit suffix: see
    /// `service.telemetry.metrics` in `collector-config.yaml`).
    pub name: &'static str,
    /// The `# TYPE`.
    pub metric_type: MetricType,
    /// When it exists.
    pub appears: Appears,
    /// Its label keys, sorted (the rules select and aggregate by them).
    pub labels: &'static [&'static str],
}

const fn collector_metric(
    name: &'static str,
    metric_type: MetricType,
    appears: Appears,
    labels: &'static [&'static str],
) -> CollectorMetric {
    CollectorMetric { name, metric_type, appears, labels }
}

/// The labels of a receiver's counts of points.
const RECEIVER: &[&str] = &["receiver", "transport"];
/// The labels of an exporter's counts of points.
const EXPORTER: &[&str] = &["exporter"];
/// The labels of a scraper's counts of points: the receiver and which of its scrapers.
const SCRAPER: &[&str] = &["receiver", "scraper"];

/// The collector's own metrics the alert and recording rules, their promtool tests, the runbooks
/// and the Infrastructure dashboard read, with the exact names and types collector 0.161 serves
/// with `collector-config.yaml` (which pins the naming). `otel/tests/collector_telemetry.rs`
/// starts the real collector, pushes data, provokes a memory-limiter refusal and checks every
/// entry: present with this `# TYPE` and these labels when it should be, absent when it cannot
/// be; `otel/tests/infrastructure.rs` checks the scrapers' against a real Redis.
pub const COLLECTOR_SELF_METRICS: &[CollectorMetric] = &[
    collector_metric(
        "otelcol_receiver_accepted_metric_points",
        MetricType::Counter,
        Appears::OnData,
        RECEIVER,
    ),
    collector_metric(
        "otelcol_receiver_refused_metric_points",
        MetricType::Counter,
        Appears::OnData,
        RECEIVER,
    ),
    collector_metric(
        "otelcol_receiver_failed_metric_points",
        MetricType::Counter,
        Appears::OnData,
        RECEIVER,
    ),
    collector_metric(
        "otelcol_processor_memory_limiter_refused_metric_points",
        MetricType::Counter,
        Appears::OnRefusal,
        &["processor"],
    ),
    collector_metric(
        "otelcol_exporter_sent_metric_points",
        MetricType::Counter,
        Appears::OnExport,
        EXPORTER,
    ),
    collector_metric(
        "otelcol_exporter_send_failed_metric_points",
        MetricType::Counter,
        Appears::Never(
            "the prometheus exporter only stores points for the next scrape; its ConsumeMetrics \
             never returns an error, and the exporter helper records send failures only for errors",
        ),
        EXPORTER,
    ),
    collector_metric(
        "otelcol_exporter_enqueue_failed_metric_points",
        MetricType::Counter,
        Appears::Never(
            "the prometheus exporter has no sending_queue in collector-config.yaml, and the \
             instrument exists only on an exporter with a queue",
        ),
        EXPORTER,
    ),
    collector_metric("otelcol_process_memory_rss", MetricType::Gauge, Appears::Always, &[]),
    // RedisUnreachable judges only a collector that has run for 90 s (a crash-looping one scrapes
    // Redis once per process, so its scraped points never seem to grow).
    collector_metric("otelcol_process_uptime", MetricType::Counter, Appears::Always, &[]),
    // "Redis unreachable from the collector": the redis scraper's scraped points stop growing.
    // Its errored points stay at 0 then: a failed scrape counts as neither, only a partial one
    // counts errored points (the scraper helper of 0.161; otel/tests/infrastructure.rs shows it).
    collector_metric(
        "otelcol_scraper_scraped_metric_points",
        MetricType::Counter,
        Appears::OnScrape,
        SCRAPER,
    ),
    collector_metric(
        "otelcol_scraper_errored_metric_points",
        MetricType::Counter,
        Appears::OnScrape,
        SCRAPER,
    ),
];

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

/// The Prometheus name of an instrument (otlptranslator's `normalizeName`).
pub fn metric_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut tokens: Vec<String> =
        name.split(|c| !is_metric_char(c)).filter(|t| !t.is_empty()).map(String::from).collect();

    let (main_unit, per_unit) = unit_suffixes(unit);
    let main_unit = clean_up_unit(&main_unit);
    let per_unit = clean_up_unit(&per_unit);
    let main_unit = if tokens.contains(&main_unit) { String::new() } else { main_unit };
    let per_unit = match per_unit.as_str() {
        "per_" => String::new(),
        p => {
            let p = p.trim_end_matches('_').to_string();
            if tokens.contains(&p) { String::new() } else { p }
        }
    };
    let main_unit =
        if per_unit.is_empty() { main_unit } else { main_unit.trim_end_matches('_').to_string() };
    for suffix in [main_unit, per_unit] {
        if !suffix.is_empty() {
            tokens.push(suffix);
        }
    }
    if kind == Kind::Counter {
        tokens.retain(|t| t != "total");
        tokens.push("total".into());
    }
    if unit == "1" && kind == Kind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".into());
    }
    let joined = tokens.join("_");
    if joined.starts_with(|c: char| c.is_ascii_digit()) { format!("_{joined}") } else { joined }
}

/// The Prometheus label name of an attribute key (otlptranslator's `LabelNamer`).
pub fn label_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' };
        // Runs of underscores collapse to one, as in `sanitizeLabelName`.
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) { format!("key_{out}") } else { out }
}

fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or_default().trim();
    let main = if main.is_empty() || main.contains(['{', '}']) {
        String::new()
    } else {
        unit_word(main).to_string()
    };
    let per = match parts.next().map(str::trim) {
        Some(p) if !p.is_empty() && !p.contains(['{', '}']) => format!("per_{}", per_unit_word(p)),
        _ => String::new(),
    };
    (main, per)
}

fn clean_up_unit(unit: &str) -> String {
    let mapped: String = unit.chars().map(|c| if is_metric_char(c) { c } else { '_' }).collect();
    let mut collapsed = String::with_capacity(mapped.len());
    for c in mapped.chars() {
        if !(c == '_' && collapsed.ends_with('_')) {
            collapsed.push(c);
        }
    }
    collapsed.trim_start_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    // Cases from otlptranslator's own tests (metric_namer_test.go) for the rules we rely on.
    #[test]
    fn names_follow_otlptranslator() {
        let cases = [
            (
                "http.server.request.duration",
                "s",
                Kind::Histogram,
                "http_server_request_duration_seconds",
            ),
            ("system.io", "By", Kind::Counter, "system_io_bytes_total"),
            ("queue.jobs", "{job}", Kind::Gauge, "queue_jobs"),
            ("cpu.utilization", "1", Kind::Gauge, "cpu_utilization_ratio"),
            ("cpu.utilization", "1", Kind::UpDownCounter, "cpu_utilization"),
            ("requests.total", "{request}", Kind::Counter, "requests_total"),
            ("transfer.rate", "By/s", Kind::Gauge, "transfer_rate_bytes_per_second"),
            ("latency.seconds", "s", Kind::Histogram, "latency_seconds"),
            ("2xx.requests", "1", Kind::Counter, "_2xx_requests_total"),
            ("disk.free", "MiBy", Kind::Gauge, "disk_free_mebibytes"),
            ("wait_time", "ms", Kind::Histogram, "wait_time_milliseconds"),
        ];
        for (name, unit, kind, want) in cases {
            assert_eq!(metric_name(name, unit, kind), want, "{name} [{unit}] {kind:?}");
        }
    }

    #[test]
    fn collector_self_metrics_are_distinct_unsuffixed_otelcol_names() {
        let mut seen = HashSet::new();
        for m in COLLECTOR_SELF_METRICS {
            assert!(seen.insert(m.name), "{} listed twice", m.name);
            assert!(m.name.starts_with("otelcol_"), "{}", m.name);
            assert!(!m.name.ends_with("_total"), "{}: the collector adds no _total", m.name);
            assert!(m.labels.windows(2).all(|w| w[0] < w[1]), "{}: labels unsorted", m.name);
        }
    }

    #[test]
    fn labels_replace_dots_and_collapse_underscores() {
        assert_eq!(label_name("http.request.method"), "http_request_method");
        assert_eq!(label_name("db.client.connection.pool.name"), "db_client_connection_pool_name");
        assert_eq!(label_name("a..b"), "a_b");
        assert_eq!(label_name("9lives"), "key_9lives");
    }

    #[test]
    fn families_cover_the_catalogue_with_distinct_series() {
        let families = families();
        assert_eq!(families.len(), ALL.len());
        let mut seen = HashSet::new();
        for f in &families {
            for s in &f.series {
                assert!(seen.insert(s.clone()), "two instruments map to {s}");
            }
        }
        let http = family(&crate::catalogue::HTTP_SERVER_REQUEST_DURATION);
        assert_eq!(http.name, "http_server_request_duration_seconds");
        assert_eq!(http.metric_type, MetricType::Histogram);
        assert_eq!(
            http.series,
            [
                "http_server_request_duration_seconds_bucket",
                "http_server_request_duration_seconds_sum",
                "http_server_request_duration_seconds_count"
            ]
        );
        assert!(http.all_labels(&http.series[0]).contains(&"le".to_string()));
        assert!(!http.all_labels(&http.series[1]).contains(&"le".to_string()));
    }
}
