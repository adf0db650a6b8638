//! The graph arithmetic of the causal-analysis job, kept apart from the job itself.
//!
//! The job loads the org graph from Postgres, hands it to [`analyse`] on a blocking thread and
//! writes the scores back; the intervention jobs ask [`estimate_reassign`] what moving an employee
//! would change. Everything here is pure (no I/O, no clock, no global state; randomness only from
//! an explicit seed), so it is tested on small graphs with known answers, and every function is
//! linear in the size of the graph per iteration or per sample: the job runs on the whole org.
//!
//! Node indices are positions in [`Graph::ids`]. A graph built by [`Graph::from_rows`] is always
//! consistent; the fields are public, so a hand-built graph may not be, and the algorithms then
//! skip edges whose endpoints are out of range rather than panic.

pub mod betweenness;
pub mod effect;
pub mod pagerank;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

pub use betweenness::{betweenness, betweenness_until};
pub use effect::{ReassignEffect, estimate_reassign};
pub use pagerank::{DEFAULT_DAMPING, pagerank, pagerank_until};

/// How many nodes [`AnalysisSummary::top_pagerank`] lists.
pub const TOP_N: usize = 10;

/// What a relation between two employees means; the `relations.kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// `source` reports to `target`: `target` is `source`'s manager.
    ReportsTo,
    /// `source` and `target` work together; the relation has no direction.
    Collaborates,
    /// `source` mentors `target`.
    Mentors,
}

impl EdgeKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EdgeKind; 3] = [EdgeKind::ReportsTo, EdgeKind::Collaborates, EdgeKind::Mentors];

    /// The `relations.kind` value: `reports_to`, `collaborates` or `mentors`.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::ReportsTo => "reports_to",
            EdgeKind::Collaborates => "collaborates",
            EdgeKind::Mentors => "mentors",
        }
    }

    /// The kind whose [`as_str`](EdgeKind::as_str) is `text`, if any.
    pub fn parse(text: &str) -> Option<EdgeKind> {
        EdgeKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A typed, weighted edge between two nodes, given by their indices in [`Graph::ids`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edge {
    /// The index of the node the relation starts at.
    pub source: usize,
    /// The index of the node the relation ends at.
    pub target: usize,
    /// What the relation means.
    pub kind: EdgeKind,
    /// Its strength: finite and not negative in a graph from [`Graph::from_rows`].
    pub weight: f64,
}

/// The org graph: employees (nodes) and their relations (edges).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    /// The employee ids; a node's index is its position here.
    pub ids: Vec<i64>,
    /// The relations between the nodes.
    pub edges: Vec<Edge>,
}

/// Why a graph could not be built or an estimate not made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    /// The same employee id appears twice in the node list.
    #[error("employee id {0} appears more than once in the node list")]
    DuplicateId(i64),
    /// An edge names an employee id that is not in the node list.
    #[error("relation {source_id} -> {target_id}: employee {missing} is not in the node list")]
    UnknownId {
        /// The edge's source id.
        source_id: i64,
        /// The edge's target id.
        target_id: i64,
        /// The id that is missing.
        missing: i64,
    },
    /// An edge has a kind other than `reports_to`, `collaborates` or `mentors`.
    #[error("relation {source_id} -> {target_id}: unknown kind {kind:?}")]
    UnknownKind {
        /// The edge's source id.
        source_id: i64,
        /// The edge's target id.
        target_id: i64,
        /// The kind as given.
        kind: String,
    },
    /// An edge's weight is negative, infinite or NaN.
    #[error(
        "relation {source_id} -> {target_id}: weight {weight} is not a finite, non-negative number"
    )]
    InvalidWeight {
        /// The edge's source id.
        source_id: i64,
        /// The edge's target id.
        target_id: i64,
        /// The weight as given.
        weight: f64,
    },
    /// An edge goes from an employee to the same employee.
    #[error("relation {id} -> {id}: an employee cannot relate to themself")]
    SelfLoop {
        /// The employee id.
        id: i64,
    },
    /// A node index is not below the number of nodes.
    #[error("node index {index} is out of range for a graph of {len} nodes")]
    NodeOutOfRange {
        /// The index given.
        index: usize,
        /// The number of nodes.
        len: usize,
    },
    /// The score slice does not have one score per node.
    #[error("{got} scores given for a graph of {expected} nodes")]
    ScoresLength {
        /// The number of nodes.
        expected: usize,
        /// The number of scores given.
        got: usize,
    },
    /// The reassignment would make a reporting loop: the new manager is the employee or reports
    /// (directly or not) to the employee.
    #[error("reassigning node {employee} to node {new_manager} would create a reporting cycle")]
    Cycle {
        /// The index of the employee to move.
        employee: usize,
        /// The index of the proposed manager.
        new_manager: usize,
    },
}

impl Graph {
    /// Builds a graph from employee ids and relation rows `(source id, target id, kind, weight)`,
    /// as they come out of the `employees` and `relations` tables.
    ///
    /// Fails, without panicking on any input, on a duplicate employee id, an edge naming an id
    /// not in `ids`, an unknown kind, a weight that is negative, infinite or NaN, or an edge from
    /// an employee to itself (the schema forbids all of these too).
    pub fn from_rows<'a>(
        ids: Vec<i64>,
        edges: impl IntoIterator<Item = (i64, i64, &'a str, f64)>,
    ) -> Result<Graph, AnalysisError> {
        let mut index = HashMap::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            if index.insert(id, i).is_some() {
                return Err(AnalysisError::DuplicateId(id));
            }
        }
        let lookup = |id: i64, source_id: i64, target_id: i64| {
            index.get(&id).copied().ok_or(AnalysisError::UnknownId {
                source_id,
                target_id,
                missing: id,
            })
        };
        let edges = edges
            .into_iter()
            .map(|(source_id, target_id, kind, weight)| {
                let source = lookup(source_id, source_id, target_id)?;
                let target = lookup(target_id, source_id, target_id)?;
                let kind = EdgeKind::parse(kind).ok_or_else(|| AnalysisError::UnknownKind {
                    source_id,
                    target_id,
                    kind: kind.to_owned(),
                })?;
                if !(weight.is_finite() && weight >= 0.0) {
                    return Err(AnalysisError::InvalidWeight { source_id, target_id, weight });
                }
                if source == target {
                    return Err(AnalysisError::SelfLoop { id: source_id });
                }
                Ok(Edge { source, target, kind, weight })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Graph { ids, edges })
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the graph has no nodes.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The edges whose endpoints are both valid node indices (all of them for a graph from
    /// [`Graph::from_rows`]).
    pub(crate) fn valid_edges(&self) -> impl Iterator<Item = &Edge> {
        let n = self.ids.len();
        self.edges.iter().filter(move |e| e.source < n && e.target < n)
    }
}

/// One node's scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NodeScore {
    /// The employee id.
    pub id: i64,
    /// Its PageRank; the scores of a graph sum to 1.
    pub pagerank: f64,
    /// Its betweenness, normalised to [0, 1] by the graph's largest.
    pub betweenness: f64,
}

/// What the analysis job records as the job's JSON result.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AnalysisSummary {
    /// The number of nodes.
    pub node_count: usize,
    /// The number of edges.
    pub edge_count: usize,
    /// The PageRank iterations run.
    pub iterations: u32,
    /// The PageRank damping factor used.
    pub damping: f64,
    /// The number of betweenness source nodes used: `min(samples, node_count)`.
    pub betweenness_samples: usize,
    /// Whether betweenness is exact (every node was a source) rather than a sampled estimate.
    pub betweenness_exact: bool,
    /// The seed of the betweenness sampling.
    pub seed: u64,
    /// Up to [`TOP_N`] nodes with the highest PageRank, highest first (ties: lower id first).
    pub top_pagerank: Vec<NodeScore>,
}

/// The result of [`analyse`]: every node's scores and a summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Analysis {
    /// One entry per node, in the order of [`Graph::ids`].
    pub nodes: Vec<NodeScore>,
    /// The summary, stored as the job's result.
    pub summary: AnalysisSummary,
}

/// Runs the whole analysis: PageRank ([`DEFAULT_DAMPING`], `iterations` rounds) and betweenness
/// (`samples` sources drawn with `seed`), per node and summarised.
///
/// Time: O(iterations·(n + E)) + O(min(samples, n)·(n + E)) + O(n log n) for the ranking.
pub fn analyse(graph: &Graph, iterations: u32, samples: u32, seed: u64) -> Analysis {
    analyse_until(graph, iterations, samples, seed, &AtomicBool::new(false)).unwrap_or_default()
}

/// [`analyse`], given up (`None`) soon after `cancelled` is set: at the next PageRank iteration
/// or betweenness source. The job's runner sets it when the attempt times out, so a cancelled
/// analysis stops computing instead of running on beside the next one.
pub fn analyse_until(
    graph: &Graph,
    iterations: u32,
    samples: u32,
    seed: u64,
    cancelled: &AtomicBool,
) -> Option<Analysis> {
    let ranks = pagerank_until(graph, iterations, DEFAULT_DAMPING, cancelled)?;
    let between = betweenness_until(graph, samples, seed, cancelled)?;
    let nodes: Vec<NodeScore> = graph
        .ids
        .iter()
        .zip(ranks.iter().zip(between.iter()))
        .map(|(&id, (&pagerank, &betweenness))| NodeScore { id, pagerank, betweenness })
        .collect();
    let mut ranked = nodes.clone();
    ranked.sort_by(|a, b| b.pagerank.total_cmp(&a.pagerank).then(a.id.cmp(&b.id)));
    ranked.truncate(TOP_N);
    let used = (samples as usize).min(graph.len());
    let summary = AnalysisSummary {
        node_count: graph.len(),
        edge_count: graph.edges.len(),
        iterations,
        damping: DEFAULT_DAMPING,
        betweenness_samples: used,
        betweenness_exact: used == graph.len(),
        seed,
        top_pagerank: ranked,
    };
    Some(Analysis { nodes, summary })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_rows_maps_ids_to_indices() {
        let g = Graph::from_rows(
            vec![10, 20, 30],
            [(10, 20, "reports_to", 1.0), (30, 10, "mentors", 2.5), (20, 30, "collaborates", 0.0)],
        )
        .unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!(
            g.edges,
            vec![
                Edge { source: 0, target: 1, kind: EdgeKind::ReportsTo, weight: 1.0 },
                Edge { source: 2, target: 0, kind: EdgeKind::Mentors, weight: 2.5 },
                Edge { source: 1, target: 2, kind: EdgeKind::Collaborates, weight: 0.0 },
            ]
        );
    }

    #[test]
    fn from_rows_rejects_bad_input() {
        let unknown_id = Graph::from_rows(vec![1, 2], [(1, 3, "reports_to", 1.0)]).unwrap_err();
        assert_eq!(unknown_id, AnalysisError::UnknownId { source_id: 1, target_id: 3, missing: 3 });
        assert!(unknown_id.to_string().contains("employee 3"));

        let unknown_kind = Graph::from_rows(vec![1, 2], [(1, 2, "manages", 1.0)]).unwrap_err();
        assert!(
            matches!(unknown_kind, AnalysisError::UnknownKind { ref kind, .. } if kind == "manages")
        );
        assert!(Graph::from_rows(vec![1, 2], [(1, 2, "", 1.0)]).is_err());
        assert!(Graph::from_rows(vec![1, 2], [(1, 2, "Reports_To", 1.0)]).is_err());

        assert_eq!(Graph::from_rows(vec![1, 2, 1], []).unwrap_err(), AnalysisError::DuplicateId(1));
        for w in [f64::NAN, f64::INFINITY, -1.0] {
            assert!(matches!(
                Graph::from_rows(vec![1, 2], [(1, 2, "collaborates", w)]),
                Err(AnalysisError::InvalidWeight { .. })
            ));
        }
        assert_eq!(
            Graph::from_rows(vec![1, 2], [(2, 2, "mentors", 1.0)]).unwrap_err(),
            AnalysisError::SelfLoop { id: 2 }
        );
        // Empty input is a valid, empty graph.
        assert!(Graph::from_rows(vec![], []).unwrap().is_empty());
    }

    #[test]
    fn edge_kind_round_trips_its_name() {
        for kind in EdgeKind::ALL {
            assert_eq!(EdgeKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EdgeKind::parse("friends"), None);
    }

    #[test]
    fn algorithms_skip_out_of_range_edges_of_a_hand_built_graph() {
        let g = Graph {
            ids: vec![1, 2],
            edges: vec![
                Edge { source: 0, target: 7, kind: EdgeKind::ReportsTo, weight: 1.0 },
                Edge { source: 0, target: 1, kind: EdgeKind::ReportsTo, weight: f64::NAN },
                Edge { source: 1, target: 0, kind: EdgeKind::Collaborates, weight: -3.0 },
            ],
        };
        let a = analyse(&g, 20, 5, 1);
        assert_eq!(a.nodes.len(), 2);
        let sum: f64 = a.nodes.iter().map(|n| n.pagerank).sum();
        assert!((sum - 1.0).abs() < 1e-9);
        assert!(a.nodes.iter().all(|n| n.pagerank.is_finite() && n.betweenness.is_finite()));
    }

    #[test]
    fn analyse_summarises_a_star() {
        // Centre 100; leaves 1..=12 report to it.
        let ids: Vec<i64> = std::iter::once(100).chain(1..=12).collect();
        let rows: Vec<(i64, i64, &str, f64)> =
            (1..=12).map(|leaf| (leaf, 100, "reports_to", 1.0)).collect();
        let g = Graph::from_rows(ids, rows).unwrap();
        let a = analyse(&g, 50, 100, 7);
        assert_eq!(a.nodes.len(), 13);
        assert_eq!(a.nodes[0].id, 100);
        assert_eq!(a.nodes[0].betweenness, 1.0);
        let s = &a.summary;
        assert_eq!((s.node_count, s.edge_count, s.iterations), (13, 12, 50));
        assert_eq!((s.betweenness_samples, s.betweenness_exact, s.seed), (13, true, 7));
        assert_eq!(s.top_pagerank.len(), TOP_N);
        assert_eq!(s.top_pagerank[0].id, 100);
        // The leaves tie; ties are ordered by id.
        let leaf_ids: Vec<i64> = s.top_pagerank[1..].iter().map(|n| n.id).collect();
        assert_eq!(leaf_ids, (1..=9).collect::<Vec<_>>());

        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["top_pagerank"][0]["id"], 100);
        assert_eq!(json["betweenness_exact"], true);
        assert!(json["top_pagerank"][0]["pagerank"].is_f64());
    }

    #[test]
    fn analyse_handles_an_empty_graph() {
        let a = analyse(&Graph::default(), 10, 10, 0);
        assert!(a.nodes.is_empty());
        assert!(a.summary.top_pagerank.is_empty());
        assert_eq!(a.summary.betweenness_samples, 0);
    }

    /// A 10,000-node random reporting tree with random collaborations and mentorships: only the
    /// invariants, no timing.
    #[test]
    fn large_random_graph_keeps_the_invariants() {
        use rand::{Rng, SeedableRng};
        use rand_chacha::ChaCha8Rng;

        let n: i64 = 10_000;
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let ids: Vec<i64> = (1..=n).collect();
        let mut rows: Vec<(i64, i64, &str, f64)> = Vec::new();
        for id in 2..=n {
            rows.push((id, rng.random_range(1..id), "reports_to", 1.0));
        }
        for _ in 0..20_000 {
            let (a, b) = (rng.random_range(1..=n), rng.random_range(1..=n));
            if a != b {
                rows.push((a, b, "collaborates", rng.random_range(0.5..5.0)));
            }
        }
        for _ in 0..2_000 {
            let (a, b) = (rng.random_range(1..=n), rng.random_range(1..=n));
            if a != b {
                rows.push((a, b, "mentors", 1.0));
            }
        }
        let g = Graph::from_rows(ids, rows).unwrap();
        let a = analyse(&g, 30, 64, 9);
        assert_eq!(a.nodes.len(), n as usize);
        let sum: f64 = a.nodes.iter().map(|s| s.pagerank).sum();
        assert!((sum - 1.0).abs() < 1e-9, "sum {sum}");
        assert!(a.nodes.iter().all(|s| s.pagerank.is_finite() && s.pagerank >= 0.0));
        assert!(a.nodes.iter().all(|s| (0.0..=1.0).contains(&s.betweenness)));
        assert!(a.nodes.iter().any(|s| s.betweenness == 1.0));
        assert_eq!(a.summary.top_pagerank.len(), TOP_N);
        assert!(!a.summary.betweenness_exact);
        let top = &a.summary.top_pagerank;
        assert!(top.windows(2).all(|w| w[0].pagerank >= w[1].pagerank));
    }
    #[test]
    fn a_cancelled_analysis_stops_and_an_uncancelled_one_is_analyse() {
        let g = Graph {
            ids: vec![1, 2, 3],
            edges: vec![
                Edge { source: 1, target: 0, kind: EdgeKind::ReportsTo, weight: 1.0 },
                Edge { source: 2, target: 0, kind: EdgeKind::ReportsTo, weight: 1.0 },
            ],
        };
        assert_eq!(analyse_until(&g, 20, 3, 1, &AtomicBool::new(true)), None);
        assert_eq!(
            analyse_until(&g, 20, 3, 1, &AtomicBool::new(false)),
            Some(analyse(&g, 20, 3, 1))
        );
    }
}
