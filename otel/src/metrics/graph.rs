//! Org-graph metrics: node and edge counts, and how long each kind of graph change takes.

use crate::catalogue::{self, GraphOperation, Label};
use opentelemetry::metrics::{Gauge, Histogram, Meter};
use std::time::Duration;

/// The graph instruments of one service.
#[derive(Clone)]
pub struct GraphMetrics {
    nodes: Gauge<u64>,
    edges: Gauge<u64>,
    update: Histogram<f64>,
}

impl GraphMetrics {
    /// Builds the instruments from the catalogue on `meter`.
    pub fn new(meter: &Meter) -> Self {
        GraphMetrics {
            nodes: catalogue::GRAPH_NODES.u64_gauge(meter),
            edges: catalogue::GRAPH_EDGES.u64_gauge(meter),
            update: catalogue::GRAPH_UPDATE_DURATION.f64_histogram(meter),
        }
    }

    /// The graph now has `nodes` nodes and `edges` edges.
    pub fn set_size(&self, nodes: u64, edges: u64) {
        self.nodes.record(nodes, &[]);
        self.edges.record(edges, &[]);
    }

    /// A graph change of kind `operation` took `took`.
    pub fn updated(&self, operation: GraphOperation, took: Duration) {
        self.update.record(took.as_secs_f64(), &[operation.key_value()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::Recorder;

    #[test]
    fn records_size_and_update_durations() {
        let recorder = Recorder::new();
        let graph = GraphMetrics::new(recorder.meter());
        graph.set_size(120, 340);
        graph.updated(GraphOperation::AddEdge, Duration::from_millis(3));
        graph.updated(GraphOperation::AddEdge, Duration::from_millis(5));
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!(points.value("orgraph.graph.nodes", &[]), 120.0);
        assert_eq!(points.value("orgraph.graph.edges", &[]), 340.0);
        let add = [("graph.operation", "add_edge")];
        assert_eq!(points.count("orgraph.graph.update.duration", &add), 2);
        assert!((points.sum("orgraph.graph.update.duration", &add) - 0.008).abs() < 1e-9);
    }
}
