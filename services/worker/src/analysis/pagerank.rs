//! Weighted PageRank over the org graph: the "influence" score of the causal-analysis job.
//!
//! Influence flows along each relation from the one who *confers* standing to the one who
//! *gains* it:
//!
//! | relation (`source` → `target`) | influence flows | why |
//! | --- | --- | --- |
//! | `reports_to` (report → manager) | report → manager | managers gain from their reports |
//! | `collaborates` | both ways, full weight each | collaboration has no direction |
//! | `mentors` (mentor → mentee) | mentee → mentor | mentors gain from their mentees |
//!
//! A node passes its score to its out-neighbours in proportion to the edge weights. A node with
//! no outgoing weight (a dangling node, e.g. the CEO) passes its score to every node uniformly,
//! so nothing leaks and the scores always sum to 1. Edges of zero, negative or non-finite weight
//! carry nothing (a graph from [`Graph::from_rows`](super::Graph::from_rows) has only the first).

use super::{EdgeKind, Graph};
use std::sync::atomic::{AtomicBool, Ordering};

/// The usual PageRank damping factor: the share of a node's score that follows its edges; the
/// rest is spread uniformly.
pub const DEFAULT_DAMPING: f64 = 0.85;

/// The out-edges of every node in compressed form: the neighbours of node `u` are
/// `targets[offsets[u]..offsets[u + 1]]`, with their weights in `weights`.
struct Flow {
    offsets: Vec<usize>,
    targets: Vec<usize>,
    weights: Vec<f64>,
    /// The total outgoing weight of each node; 0 for a dangling node.
    out_weight: Vec<f64>,
}

impl Flow {
    /// The directed, weighted influence edges of `graph` (see the module docs), in O(n + E).
    fn new(graph: &Graph) -> Flow {
        let n = graph.len();
        let mut arcs: Vec<(usize, usize, f64)> = Vec::with_capacity(graph.edges.len() * 2);
        for e in graph.valid_edges() {
            if !(e.weight.is_finite() && e.weight > 0.0) {
                continue;
            }
            match e.kind {
                EdgeKind::ReportsTo => arcs.push((e.source, e.target, e.weight)),
                EdgeKind::Mentors => arcs.push((e.target, e.source, e.weight)),
                EdgeKind::Collaborates => {
                    arcs.push((e.source, e.target, e.weight));
                    arcs.push((e.target, e.source, e.weight));
                }
            }
        }
        // Counting sort by source: offsets, then fill.
        let mut offsets = vec![0usize; n + 1];
        for &(from, _, _) in &arcs {
            offsets[from + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        let mut targets = vec![0usize; arcs.len()];
        let mut weights = vec![0.0f64; arcs.len()];
        let mut out_weight = vec![0.0f64; n];
        for (from, to, w) in arcs {
            let slot = next[from];
            next[from] += 1;
            targets[slot] = to;
            weights[slot] = w;
            out_weight[from] += w;
        }
        Flow { offsets, targets, weights, out_weight }
    }
}

/// Weighted PageRank of every node, in the order of [`Graph::ids`], after `iterations` rounds of
/// power iteration from the uniform distribution.
///
/// `damping` is clamped to [0, 1]; a NaN damping means [`DEFAULT_DAMPING`]. The scores are
/// non-negative and sum to 1 (within 1e-9); an empty graph gives an empty vector, a single node
/// `[1.0]`, and `iterations == 0` the uniform distribution.
///
/// Time O(iterations·(n + E)), memory O(n + E).
pub fn pagerank(graph: &Graph, iterations: u32, damping: f64) -> Vec<f64> {
    pagerank_until(graph, iterations, damping, &AtomicBool::new(false)).unwrap_or_default()
}

/// [`pagerank`], given up (`None`) at the first iteration after `cancelled` is set.
pub fn pagerank_until(
    graph: &Graph,
    iterations: u32,
    damping: f64,
    cancelled: &AtomicBool,
) -> Option<Vec<f64>> {
    let n = graph.len();
    if n == 0 {
        return Some(Vec::new());
    }
    let d = if damping.is_nan() { DEFAULT_DAMPING } else { damping.clamp(0.0, 1.0) };
    let flow = Flow::new(graph);
    let uniform = 1.0 / n as f64;
    let mut rank = vec![uniform; n];
    let mut next = vec![0.0f64; n];
    for _ in 0..iterations {
        if cancelled.load(Ordering::Relaxed) {
            return None;
        }
        let mut dangling = 0.0;
        for (u, &r) in rank.iter().enumerate() {
            if flow.out_weight[u] <= 0.0 {
                dangling += r;
            }
        }
        let base = (1.0 - d) * uniform + d * dangling * uniform;
        next.fill(base);
        for (u, &r) in rank.iter().enumerate() {
            let total = flow.out_weight[u];
            if total <= 0.0 || r == 0.0 {
                continue;
            }
            let share = d * r / total;
            let range = flow.offsets[u]..flow.offsets[u + 1];
            for (&v, &w) in flow.targets[range.clone()].iter().zip(&flow.weights[range]) {
                next[v] += share * w;
            }
        }
        // The sum is 1 in exact arithmetic; renormalise so rounding never accumulates.
        normalise(&mut next);
        std::mem::swap(&mut rank, &mut next);
    }
    Some(rank)
}

/// Scales `scores` to sum to 1 (left alone when the sum is not positive and finite).
fn normalise(scores: &mut [f64]) {
    let sum: f64 = scores.iter().sum();
    if sum.is_finite() && sum > 0.0 {
        for s in scores.iter_mut() {
            *s /= sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Edge;

    fn graph(n: usize, edges: &[(usize, usize, EdgeKind, f64)]) -> Graph {
        Graph {
            ids: (0..n as i64).collect(),
            edges: edges
                .iter()
                .map(|&(source, target, kind, weight)| Edge { source, target, kind, weight })
                .collect(),
        }
    }

    fn assert_sums_to_one(scores: &[f64]) {
        let sum: f64 = scores.iter().sum();
        assert!((sum - 1.0).abs() < 1e-9, "sum {sum} of {scores:?}");
    }

    fn argmax(scores: &[f64]) -> usize {
        (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap_or(0)
    }

    #[test]
    fn empty_and_single_node() {
        assert!(pagerank(&Graph::default(), 10, 0.85).is_empty());
        assert_eq!(pagerank(&graph(1, &[]), 10, 0.85), vec![1.0]);
        assert_eq!(pagerank(&graph(1, &[]), 0, 0.85), vec![1.0]);
    }

    #[test]
    fn no_edges_is_uniform() {
        let r = pagerank(&graph(4, &[]), 30, 0.85);
        for s in &r {
            assert!((s - 0.25).abs() < 1e-12);
        }
    }

    #[test]
    fn zero_iterations_is_uniform() {
        let g = graph(3, &[(0, 1, EdgeKind::ReportsTo, 1.0)]);
        assert_eq!(pagerank(&g, 0, 0.85), vec![1.0 / 3.0; 3]);
    }

    #[test]
    fn star_centre_ranks_highest() {
        // Five reports, all reporting to node 0.
        let edges: Vec<_> = (1..6).map(|i| (i, 0, EdgeKind::ReportsTo, 1.0)).collect();
        let r = pagerank(&graph(6, &edges), 100, 0.85);
        assert_sums_to_one(&r);
        assert_eq!(argmax(&r), 0);
        for leaf in 2..6 {
            assert!((r[leaf] - r[1]).abs() < 1e-12, "leaves are symmetric");
        }
        assert!(r[0] > 3.0 * r[1]);
    }

    #[test]
    fn two_node_chain_matches_the_closed_form() {
        // 1 reports to 0; 0 is dangling, so it spreads its score uniformly. Stationary:
        // r1 = (1-d)/2 + d*r0/2 and r0 = 1 - r1.
        let d = 0.85;
        let r = pagerank(&graph(2, &[(1, 0, EdgeKind::ReportsTo, 1.0)]), 200, d);
        // r1 = (1-d)/2 + d(1-r1)/2  =>  r1 (1 + d/2) = 1/2  =>  r1 = 1/(2+d).
        let expected_r1 = 1.0 / (2.0 + d);
        assert!((r[1] - expected_r1).abs() < 1e-12, "{r:?}");
        assert!((r[0] - (1.0 - expected_r1)).abs() < 1e-12);
    }

    #[test]
    fn mentors_gain_influence_from_mentees() {
        // 0 mentors 1: influence flows 1 -> 0.
        let r = pagerank(&graph(2, &[(0, 1, EdgeKind::Mentors, 1.0)]), 100, 0.85);
        assert!(r[0] > r[1], "{r:?}");
    }

    #[test]
    fn collaboration_is_symmetric() {
        let a = pagerank(&graph(3, &[(0, 1, EdgeKind::Collaborates, 2.0)]), 100, 0.85);
        let b = pagerank(&graph(3, &[(1, 0, EdgeKind::Collaborates, 2.0)]), 100, 0.85);
        assert!((a[0] - a[1]).abs() < 1e-12);
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-12);
        }
        assert_sums_to_one(&a);
    }

    #[test]
    fn weights_split_the_flow() {
        // 0 collaborates with 1 (weight 3) and with 2 (weight 1): 1 gets more than 2.
        let g =
            graph(3, &[(0, 1, EdgeKind::Collaborates, 3.0), (0, 2, EdgeKind::Collaborates, 1.0)]);
        let r = pagerank(&g, 100, 0.85);
        assert!(r[1] > r[2], "{r:?}");
        assert_sums_to_one(&r);
    }

    #[test]
    fn damping_is_clamped_and_nan_means_default() {
        let g = graph(3, &[(1, 0, EdgeKind::ReportsTo, 1.0), (2, 0, EdgeKind::ReportsTo, 1.0)]);
        assert_eq!(pagerank(&g, 50, f64::NAN), pagerank(&g, 50, DEFAULT_DAMPING));
        assert_eq!(pagerank(&g, 50, 7.0), pagerank(&g, 50, 1.0));
        assert_eq!(pagerank(&g, 50, -1.0), vec![1.0 / 3.0; 3]);
        for d in [0.0, 0.5, 1.0] {
            let r = pagerank(&g, 50, d);
            assert_sums_to_one(&r);
            assert!(r.iter().all(|s| s.is_finite() && *s >= 0.0));
        }
    }

    #[test]
    fn reporting_chain_ranks_managers_higher() {
        // A chain 3 -> 2 -> 1 -> 0 of reports; only 0 is dangling.
        let g = graph(
            4,
            &[
                (3, 2, EdgeKind::ReportsTo, 1.0),
                (2, 1, EdgeKind::ReportsTo, 1.0),
                (1, 0, EdgeKind::ReportsTo, 1.0),
            ],
        );
        let r = pagerank(&g, 100, 0.85);
        assert_sums_to_one(&r);
        assert!(r[0] > r[1] && r[1] > r[2] && r[2] > r[3], "{r:?}");
    }
}
