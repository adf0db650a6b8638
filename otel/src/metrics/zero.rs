//! Counters that exist, at 0, before their first event (issue 10).
//!
//! An OpenTelemetry counter creates the series of an attribute set on its first `add`. Until then
//! Prometheus has no series: a panel reads "No data", and `rate`/`increase` never see the first
//! events, because the series is born at N instead of going from 0 to N (the first pool timeout,
//! the first export timeout, the first failed intervention). So the helpers offer `start_at_zero`
//! methods that add 0 for one label set, and each service calls them where it builds its metrics,
//! with the label values it really has: its pools, breakers and caches, the queues it sends to or
//! takes from, the task types it runs.
//!
//! Only label sets that can really occur are started, so cardinality stays what the events would
//! make anyway: every key of the set must be a catalogue `OneOf` attribute that is always present
//! (never `only_when`), and the set must carry all of the instrument's attributes. A counter with a
//! `BoundedBy` attribute (route templates, status codes) is never started here; the catalogue has
//! none today. [`start_at_zero`] checks this against the catalogue and panics on a violation, a
//! programming error that the first test of the service catches.
//!
//! Series this adds: the API 18 (listed at `api::AppState::new`), the worker 37 (listed at
//! `worker::Ctx::start_counters_at_zero`); each service's `zero_start` test asserts the exact set.

use crate::catalogue::{Instrument, Kind, Values};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter};

/// Adds 0 to `counter`, built from `instrument`, for `attributes`: the series exists from now on.
/// Panics unless `attributes` is a complete, always-present, `OneOf` label set of `instrument`.
pub(crate) fn start_at_zero(
    counter: &Counter<u64>,
    instrument: &Instrument,
    attributes: &[KeyValue],
) {
    check(instrument, attributes);
    counter.add(0, attributes);
}

/// [`start_at_zero`] for a counter whose recording helper is built elsewhere: the SDK resolves
/// an identical instrument (same meter, name, kind, unit and description) to the same stream, so
/// the series started here is the one the helper's `add(1)` later moves. Returns the number of
/// label sets started.
pub fn start_counter_at_zero<'a>(
    meter: &Meter,
    instrument: &Instrument,
    label_sets: impl IntoIterator<Item = &'a [KeyValue]>,
) -> usize {
    let counter = instrument.u64_counter(meter);
    let mut started = 0;
    for set in label_sets {
        start_at_zero(&counter, instrument, set);
        started += 1;
    }
    started
}

/// Panics unless `attributes` is a label set of `instrument` that may be started at 0.
fn check(instrument: &Instrument, attributes: &[KeyValue]) {
    let name = instrument.name;
    assert_eq!(instrument.kind, Kind::Counter, "{name}: only counters start at 0");
    for kv in attributes {
        let key = kv.key.as_str();
        let Some(declared) = instrument.attribute(key) else {
            panic!("{name}: attribute {key} is not declared");
        };
        assert!(
            matches!(declared.values, Values::OneOf(_)),
            "{name}: {key} is not a closed set; its series cannot be created in advance"
        );
        assert!(declared.only_when.is_none(), "{name}: {key} is only present sometimes");
        let value = kv.value.as_str();
        assert!(declared.allows(&value), "{name}: {key}={value} is outside its declared set");
    }
    for declared in instrument.attributes {
        assert!(
            attributes.iter().any(|kv| kv.key.as_str() == declared.key),
            "{name}: a series without {} is not one the helper records",
            declared.key
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{self, ALL};
    use crate::metrics::testing::Recorder;

    /// The counters whose helpers have a `start_at_zero`, and the one that needs none.
    const STARTED: &[&Instrument] = &[
        &catalogue::CACHE_REQUESTS,
        &catalogue::DB_CLIENT_CONNECTION_TIMEOUTS,
        &catalogue::MESSAGING_CLIENT_SENT_MESSAGES,
        &catalogue::MESSAGING_CLIENT_CONSUMED_MESSAGES,
        &catalogue::CIRCUIT_BREAKER_CALLS,
        &catalogue::TASK_COMPLETED,
        &catalogue::EXPORT_REQUESTS,
        &catalogue::EXPORT_RETENTION_REMOVED,
        &catalogue::EXPORT_RETENTION_RUNS,
        &catalogue::INTERVENTION_PROPOSALS,
        &catalogue::INTERVENTION_EXECUTIONS,
        &catalogue::INTERVENTION_ROLLBACKS,
    ];
    /// Observed at every collection from start-up, so never missing.
    const OBSERVED: &[&Instrument] = &[&catalogue::PROCESS_CPU_TIME];
    /// Started with their failure series (`error.type` present only on failure) by their helper's
    /// own `start_at_zero` (`SpanPipelineMetrics`), when the tracer provider is built.
    const STARTED_WITH_FAILURES: &[&Instrument] = &[
        &catalogue::OTEL_SDK_PROCESSOR_SPAN_PROCESSED,
        &catalogue::OTEL_SDK_EXPORTER_SPAN_EXPORTED,
    ];

    #[test]
    fn every_counter_of_the_catalogue_is_started_at_zero_or_observed() {
        for i in ALL.iter().filter(|i| i.kind == Kind::Counter) {
            assert!(
                STARTED.contains(i) || OBSERVED.contains(i) || STARTED_WITH_FAILURES.contains(i),
                "{}: a new counter needs a start_at_zero (or a reason why not) here",
                i.name
            );
        }
        for i in STARTED {
            for a in i.attributes {
                assert!(matches!(a.values, Values::OneOf(_)), "{}: {}", i.name, a.key);
                assert!(a.only_when.is_none(), "{}: {}", i.name, a.key);
            }
        }
    }

    #[test]
    fn a_counter_from_elsewhere_moves_the_series_started_at_zero() {
        let recorder = Recorder::new();
        let instrument = &catalogue::INTERVENTION_PROPOSALS;
        let set = [KeyValue::new("intervention.kind", "reassign")];
        assert_eq!(start_counter_at_zero(recorder.meter(), instrument, [&set[..]]), 1);
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!(points.only(instrument.name).value, 0.0);
        instrument.u64_counter(recorder.meter()).add(1, &set);
        let points = recorder.collect();
        assert_eq!(points.only(instrument.name).value, 1.0, "one stream, not two");
    }

    #[test]
    #[should_panic(expected = "outside its declared set")]
    fn a_value_outside_the_set_is_refused() {
        let recorder = Recorder::new();
        let set = [KeyValue::new("intervention.kind", "fire_everyone")];
        start_counter_at_zero(recorder.meter(), &catalogue::INTERVENTION_PROPOSALS, [&set[..]]);
    }

    #[test]
    #[should_panic(expected = "a series without intervention.outcome")]
    fn an_incomplete_label_set_is_refused() {
        let recorder = Recorder::new();
        let set = [KeyValue::new("intervention.kind", "reassign")];
        start_counter_at_zero(recorder.meter(), &catalogue::INTERVENTION_EXECUTIONS, [&set[..]]);
    }

    #[test]
    #[should_panic(expected = "only counters start at 0")]
    fn only_counters_are_started() {
        let recorder = Recorder::new();
        let set = [KeyValue::new("cache.layer", "l1"), KeyValue::new("cache.name", "graph_stats")];
        start_at_zero(&recorder.meter().u64_counter("x").build(), &catalogue::CACHE_ITEMS, &set);
    }
}
