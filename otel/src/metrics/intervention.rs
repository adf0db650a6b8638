//! Intervention metrics: proposals, executions and rollbacks.

use super::labels::{InterventionKind, InterventionOutcome, Label};
use crate::catalogue;
use opentelemetry::metrics::{Counter, Meter};

/// The intervention instruments of one service.
#[derive(Clone)]
pub struct InterventionMetrics {
    proposals: Counter<u64>,
    executions: Counter<u64>,
    rollbacks: Counter<u64>,
}

impl InterventionMetrics {
    /// Builds the instruments from the catalogue on `meter`.
    pub fn new(meter: &Meter) -> Self {
        InterventionMetrics {
            proposals: catalogue::INTERVENTION_PROPOSALS.u64_counter(meter),
            executions: catalogue::INTERVENTION_EXECUTIONS.u64_counter(meter),
            rollbacks: catalogue::INTERVENTION_ROLLBACKS.u64_counter(meter),
        }
    }

    /// An intervention of `kind` was proposed.
    pub fn proposed(&self, kind: InterventionKind) {
        self.proposals.add(1, &[kind.key_value()]);
    }

    /// An execution of an intervention of `kind` ended with `outcome`.
    pub fn executed(&self, kind: InterventionKind, outcome: InterventionOutcome) {
        self.executions.add(1, &[kind.key_value(), outcome.key_value()]);
    }

    /// A rollback of an intervention of `kind` ended with `outcome`.
    pub fn rolled_back(&self, kind: InterventionKind, outcome: InterventionOutcome) {
        self.rollbacks.add(1, &[kind.key_value(), outcome.key_value()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::Recorder;

    #[test]
    fn counts_each_step() {
        let recorder = Recorder::new();
        let interventions = InterventionMetrics::new(recorder.meter());
        let kind = InterventionKind::Reassign;
        interventions.proposed(kind);
        interventions.proposed(kind);
        interventions.executed(kind, InterventionOutcome::Success);
        interventions.rolled_back(kind, InterventionOutcome::Failure);
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!(points.value("orgraph.intervention.proposals", &[]), 2.0);
        let ok = [("intervention.outcome", "success")];
        assert_eq!(points.value("orgraph.intervention.executions", &ok), 1.0);
        let failed = [("intervention.outcome", "failure")];
        assert_eq!(points.value("orgraph.intervention.rollbacks", &failed), 1.0);
    }
}
