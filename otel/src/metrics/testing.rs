//! Test support: a meter backed by the SDK's in-memory exporter, and a flat view of what it
//! collected that checks every point against the catalogue (`assert_conforms`). Used by the
//! helpers' unit tests here and, through the `testing` feature, by the services' tests.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::catalogue::{self, Kind};
use opentelemetry::Value;
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, InMemoryMetricExporterBuilder, PeriodicReader, SdkMeterProvider,
    Temporality,
};
use std::collections::BTreeMap;

/// A private meter provider whose exports land in memory, cumulative as in production.
pub struct Recorder {
    provider: SdkMeterProvider,
    exporter: InMemoryMetricExporter,
    meter: Meter,
}

/// The shape of one collected point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Sum { monotonic: bool },
    Gauge,
    Histogram,
}

/// One collected data point.
#[derive(Debug, Clone)]
pub struct Point {
    pub name: String,
    pub unit: String,
    pub description: String,
    pub shape: Shape,
    pub attributes: BTreeMap<String, String>,
    /// Sum or gauge value; histogram sum.
    pub value: f64,
    /// Histogram count (0 otherwise).
    pub count: u64,
    /// Histogram bounds (empty otherwise).
    pub bounds: Vec<f64>,
}

/// Everything one collection returned.
#[derive(Debug, Clone)]
pub struct Points(pub Vec<Point>);

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        let exporter =
            InMemoryMetricExporterBuilder::new().with_temporality(Temporality::Cumulative).build();
        let reader = PeriodicReader::builder(exporter.clone()).build();
        let provider = SdkMeterProvider::builder().with_reader(reader).build();
        let meter = provider.meter_with_scope(crate::scope());
        Recorder { provider, exporter, meter }
    }

    /// The process-wide recorder, installed as the global meter provider on first use, so code
    /// that records through [`crate::meter`] (a whole service under test) lands in it. Call it
    /// before the code under test takes its meters. Tests sharing it should compare their own
    /// labels or use a test binary of their own.
    pub fn global() -> &'static Recorder {
        static GLOBAL: std::sync::OnceLock<Recorder> = std::sync::OnceLock::new();
        GLOBAL.get_or_init(|| {
            let recorder = Recorder::new();
            opentelemetry::global::set_meter_provider(recorder.provider.clone());
            recorder
        })
    }

    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Flushes and returns the cumulative state of every instrument.
    pub fn collect(&self) -> Points {
        self.exporter.reset();
        self.provider.force_flush().expect("flush");
        let exported = self.exporter.get_finished_metrics().expect("finished metrics");
        let mut points = Vec::new();
        for resource in exported.iter().rev().take(1) {
            for scope in resource.scope_metrics() {
                for metric in scope.metrics() {
                    flatten(metric, &mut points);
                }
            }
        }
        Points(points)
    }
}

fn flatten(metric: &opentelemetry_sdk::metrics::data::Metric, out: &mut Vec<Point>) {
    let base = |shape, attributes: BTreeMap<String, String>, value, count, bounds| Point {
        name: metric.name().to_string(),
        unit: metric.unit().to_string(),
        description: metric.description().to_string(),
        shape,
        attributes,
        value,
        count,
        bounds,
    };
    macro_rules! points {
        ($data:expr) => {
            match $data {
                MetricData::Sum(sum) => {
                    for p in sum.data_points() {
                        let shape = Shape::Sum { monotonic: sum.is_monotonic() };
                        out.push(base(shape, attrs(p.attributes()), p.value() as f64, 0, vec![]));
                    }
                }
                MetricData::Gauge(gauge) => {
                    for p in gauge.data_points() {
                        out.push(base(
                            Shape::Gauge,
                            attrs(p.attributes()),
                            p.value() as f64,
                            0,
                            vec![],
                        ));
                    }
                }
                MetricData::Histogram(h) => {
                    for p in h.data_points() {
                        let bounds = p.bounds().collect();
                        let sum = p.sum() as f64;
                        out.push(base(
                            Shape::Histogram,
                            attrs(p.attributes()),
                            sum,
                            p.count(),
                            bounds,
                        ));
                    }
                }
                MetricData::ExponentialHistogram(_) => {
                    panic!("{}: unexpected exponential histogram", metric.name())
                }
            }
        };
    }
    match metric.data() {
        AggregatedMetrics::F64(data) => points!(data),
        AggregatedMetrics::U64(data) => points!(data),
        AggregatedMetrics::I64(data) => points!(data),
    }
}

fn attrs<'a>(kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> BTreeMap<String, String> {
    kvs.map(|kv| {
        let value = match &kv.value {
            Value::String(s) => s.to_string(),
            other => other.to_string(),
        };
        (kv.key.to_string(), value)
    })
    .collect()
}

impl Points {
    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Point> {
        self.0.iter().filter(move |p| {
            p.name == name
                && labels.iter().all(|(k, v)| p.attributes.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// Sum of the values of the points of `name` carrying `labels`; panics if there is none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let matched: Vec<_> = self.matching(name, labels).collect();
        assert!(!matched.is_empty(), "no point of {name} with {labels:?} in {:#?}", self.0);
        matched.iter().map(|p| p.value).sum()
    }

    /// Histogram count over the matching points.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.matching(name, labels).map(|p| p.count).sum()
    }

    /// Histogram sum over the matching points.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|p| p.value).sum()
    }

    /// Number of distinct attribute sets (series) of `name`.
    pub fn series(&self, name: &str) -> usize {
        self.0.iter().filter(|p| p.name == name).count()
    }

    /// The one point of `name`; panics unless there is exactly one.
    pub fn only(&self, name: &str) -> &Point {
        let matched: Vec<_> = self.0.iter().filter(|p| p.name == name).collect();
        assert_eq!(matched.len(), 1, "expected one point of {name}: {matched:#?}");
        matched[0]
    }

    /// The instrument names collected.
    pub fn names(&self) -> std::collections::BTreeSet<&str> {
        self.0.iter().map(|p| p.name.as_str()).collect()
    }

    /// `name{k=v,…}` of every point of a catalogue Counter, asserting each is still 0: the counters
    /// a service starts before any event.
    pub fn counters_at_zero(&self) -> std::collections::BTreeSet<String> {
        self.0
            .iter()
            .filter(|p| {
                crate::catalogue::find(&p.name)
                    .is_some_and(|i| i.kind == crate::catalogue::Kind::Counter)
            })
            .map(|p| {
                let labels: Vec<String> =
                    p.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let series = format!("{}{{{}}}", p.name, labels.join(","));
                assert_eq!(p.value, 0.0, "{series} has seen no event");
                series
            })
            .collect()
    }

    /// Checks every point against the catalogue: declared name, unit, description, kind,
    /// buckets; attribute keys declared, always-present ones present, values in their sets.
    pub fn assert_conforms(&self) {
        for p in &self.0 {
            let Some(i) = catalogue::find(&p.name) else {
                panic!("{} is recorded but not in the catalogue", p.name);
            };
            assert_eq!(p.unit, i.unit, "{}: unit", p.name);
            assert_eq!(p.description, i.description, "{}: description", p.name);
            let shape = match i.kind {
                Kind::Counter => Shape::Sum { monotonic: true },
                Kind::UpDownCounter => Shape::Sum { monotonic: false },
                Kind::Gauge => Shape::Gauge,
                Kind::Histogram => Shape::Histogram,
            };
            assert_eq!(p.shape, shape, "{}: kind", p.name);
            if i.kind == Kind::Histogram {
                assert_eq!(p.bounds, i.buckets, "{}: bucket boundaries", p.name);
            }
            for (key, value) in &p.attributes {
                let Some(a) = i.attribute(key) else {
                    panic!("{}: attribute {key} is not declared", p.name);
                };
                assert!(a.allows(value), "{}: {key}={value} is outside its declared set", p.name);
            }
            for a in i.attributes.iter().filter(|a| a.only_when.is_none()) {
                assert!(
                    p.attributes.contains_key(a.key),
                    "{}: attribute {} missing",
                    p.name,
                    a.key
                );
            }
        }
    }
}
