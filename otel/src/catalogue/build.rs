//! Creating OpenTelemetry instruments from catalogue entries: the only place a name, unit,
//! description or bucket list is handed to a meter. A kind mismatch (a histogram entry built as a
//! counter) is a programming error that the metric helpers' tests catch.

use super::{Instrument, Kind};
use opentelemetry::metrics::{
    AsyncInstrument, Counter, Gauge, Histogram, Meter, ObservableCounter, ObservableGauge,
    ObservableUpDownCounter, UpDownCounter,
};

impl Instrument {
    fn expect_kind(&self, kind: Kind) {
        debug_assert_eq!(self.kind, kind, "{} is declared as {:?}", self.name, self.kind);
    }

    /// A `u64` counter.
    pub fn u64_counter(&self, meter: &Meter) -> Counter<u64> {
        self.expect_kind(Kind::Counter);
        meter.u64_counter(self.name).with_unit(self.unit).with_description(self.description).build()
    }

    /// An `f64` counter observed by `callback` at each collection.
    pub fn f64_observable_counter(
        &self,
        meter: &Meter,
        callback: impl Fn(&dyn AsyncInstrument<f64>) + Send + Sync + 'static,
    ) -> ObservableCounter<f64> {
        self.expect_kind(Kind::Counter);
        meter
            .f64_observable_counter(self.name)
            .with_unit(self.unit)
            .with_description(self.description)
            .with_callback(callback)
            .build()
    }

    /// An `i64` up-down counter.
    pub fn i64_up_down_counter(&self, meter: &Meter) -> UpDownCounter<i64> {
        self.expect_kind(Kind::UpDownCounter);
        meter
            .i64_up_down_counter(self.name)
            .with_unit(self.unit)
            .with_description(self.description)
            .build()
    }

    /// An `i64` up-down counter observed by `callback` at each collection.
    pub fn i64_observable_up_down_counter(
        &self,
        meter: &Meter,
        callback: impl Fn(&dyn AsyncInstrument<i64>) + Send + Sync + 'static,
    ) -> ObservableUpDownCounter<i64> {
        self.expect_kind(Kind::UpDownCounter);
        meter
            .i64_observable_up_down_counter(self.name)
            .with_unit(self.unit)
            .with_description(self.description)
            .with_callback(callback)
            .build()
    }

    /// A `u64` gauge.
    pub fn u64_gauge(&self, meter: &Meter) -> Gauge<u64> {
        self.expect_kind(Kind::Gauge);
        meter.u64_gauge(self.name).with_unit(self.unit).with_description(self.description).build()
    }

    /// An `f64` gauge.
    pub fn f64_gauge(&self, meter: &Meter) -> Gauge<f64> {
        self.expect_kind(Kind::Gauge);
        meter.f64_gauge(self.name).with_unit(self.unit).with_description(self.description).build()
    }

    /// An `f64` gauge observed by `callback` at each collection.
    pub fn f64_observable_gauge(
        &self,
        meter: &Meter,
        callback: impl Fn(&dyn AsyncInstrument<f64>) + Send + Sync + 'static,
    ) -> ObservableGauge<f64> {
        self.expect_kind(Kind::Gauge);
        meter
            .f64_observable_gauge(self.name)
            .with_unit(self.unit)
            .with_description(self.description)
            .with_callback(callback)
            .build()
    }

    /// A `u64` gauge observed by `callback` at each collection.
    pub fn u64_observable_gauge(
        &self,
        meter: &Meter,
        callback: impl Fn(&dyn AsyncInstrument<u64>) + Send + Sync + 'static,
    ) -> ObservableGauge<u64> {
        self.expect_kind(Kind::Gauge);
        meter
            .u64_observable_gauge(self.name)
            .with_unit(self.unit)
            .with_description(self.description)
            .with_callback(callback)
            .build()
    }

    /// An `f64` histogram with the entry's bucket boundaries.
    pub fn f64_histogram(&self, meter: &Meter) -> Histogram<f64> {
        self.expect_kind(Kind::Histogram);
        meter
            .f64_histogram(self.name)
            .with_unit(self.unit)
            .with_description(self.description)
            .with_boundaries(self.buckets.to_vec())
            .build()
    }

    /// A `u64` histogram with the entry's bucket boundaries.
    pub fn u64_histogram(&self, meter: &Meter) -> Histogram<u64> {
        self.expect_kind(Kind::Histogram);
        meter
            .u64_histogram(self.name)
            .with_unit(self.unit)
            .with_description(self.description)
            .with_boundaries(self.buckets.to_vec())
            .build()
    }
}
