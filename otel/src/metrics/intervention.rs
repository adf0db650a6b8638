//! Intervention metrics: proposals, executions and rollbacks.

use super::zero;
use crate::catalogue::{self, InterventionKind, InterventionOutcome, Label};
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

    /// The proposal count of `kind` exists from now on, at 0 (1 series); for the service that
    /// takes proposals.
    pub fn start_proposals_at_zero(&self, kind: InterventionKind) {
        let attributes = [kind.key_value()];
        zero::start_at_zero(&self.proposals, &catalogue::INTERVENTION_PROPOSALS, &attributes);
    }

    /// The execution and rollback counts of `kind` exist from now on, at 0 for both outcomes (4
    /// series); for the service that executes and rolls back interventions.
    pub fn start_executions_at_zero(&self, kind: InterventionKind) {
        for outcome in InterventionOutcome::ALL {
            let attributes = [kind.key_value(), outcome.key_value()];
            let executions = &catalogue::INTERVENTION_EXECUTIONS;
            zero::start_at_zero(&self.executions, executions, &attributes);
            let rollbacks = &catalogue::INTERVENTION_ROLLBACKS;
            zero::start_at_zero(&self.rollbacks, rollbacks, &attributes);
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

    #[test]
    fn executions_and_rollbacks_start_at_zero_for_both_outcomes() {
        let recorder = Recorder::new();
        let interventions = InterventionMetrics::new(recorder.meter());
        interventions.start_executions_at_zero(InterventionKind::Reassign);
        let points = recorder.collect();
        points.assert_conforms();
        for name in ["orgraph.intervention.executions", "orgraph.intervention.rollbacks"] {
            for outcome in ["success", "failure"] {
                let labels = [("intervention.kind", "reassign"), ("intervention.outcome", outcome)];
                assert_eq!(points.value(name, &labels), 0.0, "{name} {outcome}");
            }
            assert_eq!(points.series(name), 2, "{name}");
        }
        assert_eq!(points.series("orgraph.intervention.proposals"), 0, "not started here");
        interventions.start_proposals_at_zero(InterventionKind::Reassign);
        assert_eq!(recorder.collect().value("orgraph.intervention.proposals", &[]), 0.0);
    }
}
