//! Circuit-breaker metrics: the current state as a one-hot gauge (alerts ask
//! `…{circuit_breaker_state="open"} == 1`), and calls by outcome.

use super::zero;
use crate::catalogue::{self, BreakerName, BreakerOutcome, BreakerState, Label};
use opentelemetry::metrics::{Counter, Gauge, Meter};

/// The circuit-breaker instruments of one service.
#[derive(Clone)]
pub struct BreakerMetrics {
    state: Gauge<u64>,
    calls: Counter<u64>,
}

impl BreakerMetrics {
    /// Builds the instruments from the catalogue on `meter`.
    pub fn new(meter: &Meter) -> Self {
        BreakerMetrics {
            state: catalogue::CIRCUIT_BREAKER_STATE.u64_gauge(meter),
            calls: catalogue::CIRCUIT_BREAKER_CALLS.u64_counter(meter),
        }
    }

    /// `breaker` is now in `current`: 1 on that state's series, 0 on the others.
    pub fn set_state(&self, breaker: BreakerName, current: BreakerState) {
        for state in BreakerState::ALL {
            let value = u64::from(*state == current);
            self.state.record(value, &[breaker.key_value(), state.key_value()]);
        }
    }

    /// The call series of `breaker` exist from now on, at 0 for every outcome (3 series); the
    /// circuit breaker calls it when it is built.
    pub fn start_at_zero(&self, breaker: BreakerName) {
        for outcome in BreakerOutcome::ALL {
            let attributes = [breaker.key_value(), outcome.key_value()];
            zero::start_at_zero(&self.calls, &catalogue::CIRCUIT_BREAKER_CALLS, &attributes);
        }
    }

    /// A call through `breaker` ended with `outcome`.
    pub fn call(&self, breaker: BreakerName, outcome: BreakerOutcome) {
        self.calls.add(1, &[breaker.key_value(), outcome.key_value()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::Recorder;

    #[test]
    fn state_is_one_hot_and_calls_are_counted() {
        let recorder = Recorder::new();
        let breakers = BreakerMetrics::new(recorder.meter());
        breakers.set_state(BreakerName::Redis, BreakerState::Closed);
        breakers.set_state(BreakerName::Redis, BreakerState::Open);
        breakers.call(BreakerName::Redis, BreakerOutcome::Failure);
        breakers.call(BreakerName::Redis, BreakerOutcome::Rejected);
        breakers.call(BreakerName::Redis, BreakerOutcome::Rejected);
        let points = recorder.collect();
        points.assert_conforms();
        let state =
            |s| points.value("orgraph.circuit_breaker.state", &[("circuit_breaker.state", s)]);
        assert_eq!((state("closed"), state("open"), state("half_open")), (0.0, 1.0, 0.0));
        let calls =
            |o| points.value("orgraph.circuit_breaker.calls", &[("circuit_breaker.outcome", o)]);
        assert_eq!((calls("failure"), calls("rejected")), (1.0, 2.0));
    }

    #[test]
    fn calls_start_at_zero_for_every_outcome() {
        let recorder = Recorder::new();
        let breakers = BreakerMetrics::new(recorder.meter());
        breakers.start_at_zero(BreakerName::Postgres);
        let points = recorder.collect();
        points.assert_conforms();
        for outcome in ["success", "failure", "rejected"] {
            let labels =
                [("circuit_breaker.name", "postgres"), ("circuit_breaker.outcome", outcome)];
            assert_eq!(points.value("orgraph.circuit_breaker.calls", &labels), 0.0, "{outcome}");
        }
        assert_eq!(points.series("orgraph.circuit_breaker.calls"), 3, "only the breaker built");
    }
}
