//! The metric catalogue: every instrument of the platform, declared once.
//!
//! A service never spells a metric name, unit or attribute key itself: it records through the
//! helpers in [`crate::metrics`], which build their instruments from the [`Instrument`] constants
//! here. From the same constants [`prometheus`] derives the series the collector will emit and
//! [`docs`] renders `docs/METRICS.md`, so the names in code, docs, dashboards and alerts cannot
//! drift apart without a test noticing.
//!
//! [`infrastructure`] is the sibling table for what the collector reads itself (Postgres, Redis,
//! the host): series no service records, which the dashboards and rules read all the same.

mod attributes;
mod buckets;
mod build;
pub mod docs;
pub mod infrastructure;
mod instruments;
mod labels;
pub mod prometheus;
mod scope;

pub use attributes::*;
pub use buckets::*;
pub use docs::markdown;
pub use instruments::*;
pub use labels::*;
pub use scope::{Scope, shared};

/// What kind of OpenTelemetry instrument a catalogue entry is. Whether it is recorded
/// synchronously or observed by a callback does not change what the collector emits, so it is
/// not part of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic sum (`Counter`, `ObservableCounter`).
    Counter,
    /// A non-monotonic sum (`UpDownCounter`, `ObservableUpDownCounter`).
    UpDownCounter,
    /// A last-value gauge (`Gauge`, `ObservableGauge`).
    Gauge,
    /// An explicit-bucket histogram.
    Histogram,
}

impl Kind {
    /// The OpenTelemetry name of the kind, for docs.
    pub fn otel_name(self) -> &'static str {
        match self {
            Kind::Counter => "Counter",
            Kind::UpDownCounter => "UpDownCounter",
            Kind::Gauge => "Gauge",
            Kind::Histogram => "Histogram",
        }
    }
}

/// Which values an attribute may take. Every attribute is bounded: cardinality is a correctness
/// property of this pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// Exactly these values.
    OneOf(&'static [&'static str]),
    /// A set bounded by something other than this list (route templates, status codes); the text
    /// says what bounds it.
    BoundedBy(&'static str),
}

/// One attribute key an instrument carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute {
    /// The OpenTelemetry attribute key (semantic-convention key where one exists).
    pub key: &'static str,
    /// The values it may take.
    pub values: Values,
    /// `None` when the attribute is always present; otherwise when it is.
    pub only_when: Option<&'static str>,
}

impl Attribute {
    /// An attribute that takes exactly `values`.
    pub const fn one_of(key: &'static str, values: &'static [&'static str]) -> Self {
        Attribute { key, values: Values::OneOf(values), only_when: None }
    }

    /// An attribute bounded by what `bound` describes.
    pub const fn bounded_by(key: &'static str, bound: &'static str) -> Self {
        Attribute { key, values: Values::BoundedBy(bound), only_when: None }
    }

    /// The same attribute, present only in the situation `when` describes.
    pub const fn only_when(self, when: &'static str) -> Self {
        Attribute { only_when: Some(when), ..self }
    }

    /// Whether `value` is one this attribute may take (always true for `BoundedBy`).
    pub fn allows(&self, value: &str) -> bool {
        match self.values {
            Values::OneOf(values) => values.contains(&value),
            Values::BoundedBy(_) => true,
        }
    }
}

/// One instrument: everything the collector and Prometheus will know about it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Instrument {
    /// OpenTelemetry instrument name (semantic-convention name where one exists).
    pub name: &'static str,
    /// Counter, up-down counter, gauge or histogram: decides the Prometheus type and suffixes.
    pub kind: Kind,
    /// UCUM unit; `{thing}` annotations for counts.
    pub unit: &'static str,
    /// Description; becomes the Prometheus `# HELP` text.
    pub description: &'static str,
    /// The attribute keys it is recorded with; no others are allowed.
    pub attributes: &'static [Attribute],
    /// Explicit bucket boundaries (histograms only; empty otherwise).
    pub buckets: &'static [f64],
    /// Whose fact a value is, the instance's or a shared thing's: how instances combine.
    pub scope: Scope,
}

impl Instrument {
    /// The attribute declared under `key`, if this instrument has it.
    pub fn attribute(&self, key: &str) -> Option<&'static Attribute> {
        self.attributes.iter().find(|a| a.key == key)
    }
}

/// Looks an instrument up by its OpenTelemetry name.
pub fn find(name: &str) -> Option<&'static Instrument> {
    ALL.iter().copied().find(|i| i.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_attributes_are_unique_per_instrument() {
        let mut names = HashSet::new();
        for i in ALL {
            assert!(names.insert(i.name), "{} declared twice", i.name);
            let mut keys = HashSet::new();
            for a in i.attributes {
                assert!(keys.insert(a.key), "{}: attribute {} declared twice", i.name, a.key);
            }
        }
    }

    #[test]
    fn histograms_and_only_histograms_have_sorted_buckets() {
        for i in ALL {
            if i.kind == Kind::Histogram {
                assert!(!i.buckets.is_empty(), "{} has no buckets", i.name);
                assert!(
                    i.buckets.windows(2).all(|w| w[0] < w[1]),
                    "{}: buckets not strictly increasing",
                    i.name
                );
            } else {
                assert!(i.buckets.is_empty(), "{} is not a histogram but has buckets", i.name);
            }
        }
    }

    #[test]
    fn seconds_histograms_do_not_use_the_sdk_millisecond_defaults() {
        // The Rust SDK's default boundaries go 0..10000 (milliseconds); with unit `s` every request
        // would land in the first bucket.
        for i in ALL.iter().filter(|i| i.kind == Kind::Histogram && i.unit == "s") {
            let top = i.buckets.last().copied().unwrap_or_default();
            assert!(top <= 3600.0, "{}: top bucket {top}s looks like milliseconds", i.name);
        }
    }

    #[test]
    fn every_instrument_is_documented_with_a_ucum_unit() {
        for i in ALL {
            assert!(!i.description.is_empty(), "{} has no description", i.name);
            assert!(!i.unit.is_empty(), "{} has no unit", i.name);
            assert!(i.description.ends_with('.'), "{}: description should be a sentence", i.name);
        }
    }

    #[test]
    fn one_of_sets_are_non_empty() {
        for i in ALL {
            for a in i.attributes {
                if let Values::OneOf(values) = a.values {
                    assert!(!values.is_empty(), "{}: {} has no values", i.name, a.key);
                }
            }
        }
    }

    #[test]
    fn find_looks_up_by_name() {
        assert_eq!(find("http.server.request.duration"), Some(&HTTP_SERVER_REQUEST_DURATION));
        assert_eq!(find("no.such.metric"), None);
    }
}
