//! Betweenness centrality: how often an employee lies on the shortest paths between others, the
//! "broker" score of the causal-analysis job.
//!
//! Brandes' algorithm on the unweighted, undirected version of the org graph (every relation, of
//! any kind and weight, is one undirected link; parallel relations between the same two people
//! count once). Exact betweenness needs a breadth-first search from every node, O(n·(n + E)),
//! too slow for a large org, so the job draws `samples` source nodes with a seeded ChaCha8 RNG and
//! scales their contributions by n/samples (the Brandes–Pich estimator). The same seed gives the
//! same scores; `samples >= n` uses every node and is exact.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Graph;

/// The undirected simple graph: the neighbours of `u` are `targets[offsets[u]..offsets[u + 1]]`.
struct Undirected {
    offsets: Vec<usize>,
    targets: Vec<usize>,
}

impl Undirected {
    /// Both directions of every valid edge, without self-loops or duplicates. O(n + E log E).
    fn new(graph: &Graph) -> Undirected {
        let n = graph.len();
        let mut arcs: Vec<(usize, usize)> = Vec::with_capacity(graph.edges.len() * 2);
        for e in graph.valid_edges() {
            if e.source != e.target {
                arcs.push((e.source, e.target));
                arcs.push((e.target, e.source));
            }
        }
        arcs.sort_unstable();
        arcs.dedup();
        let mut offsets = vec![0usize; n + 1];
        for &(from, _) in &arcs {
            offsets[from + 1] += 1;
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        // `arcs` is sorted by source, so the targets are already in CSR order.
        let targets = arcs.into_iter().map(|(_, to)| to).collect();
        Undirected { offsets, targets }
    }

    fn neighbours(&self, u: usize) -> &[usize] {
        &self.targets[self.offsets[u]..self.offsets[u + 1]]
    }
}

/// Betweenness of every node, in the order of [`Graph::ids`], normalised to [0, 1] by dividing
/// by the largest (a graph where no node lies between two others gives all zeros).
///
/// Uses `min(samples, n)` source nodes drawn without replacement by a ChaCha8 RNG seeded with
/// `seed`; deterministic for a seed, and exact (independent of the seed) when `samples >= n`.
/// `samples == 0` gives all zeros.
///
/// Time O(min(samples, n)·(n + E)) plus O(E log E) to build the adjacency; memory O(n + E).
pub fn betweenness(graph: &Graph, samples: u32, seed: u64) -> Vec<f64> {
    betweenness_until(graph, samples, seed, &AtomicBool::new(false)).unwrap_or_default()
}

/// [`betweenness`], given up (`None`) at the first source after `cancelled` is set.
pub fn betweenness_until(
    graph: &Graph,
    samples: u32,
    seed: u64,
    cancelled: &AtomicBool,
) -> Option<Vec<f64>> {
    let n = graph.len();
    let k = (samples as usize).min(n);
    let mut centrality = vec![0.0f64; n];
    if k == 0 {
        return Some(centrality);
    }
    let adjacency = Undirected::new(graph);
    let sources: Vec<usize> = if k == n {
        (0..n).collect()
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rand::seq::index::sample(&mut rng, n, k).into_vec()
    };

    let mut dist = vec![usize::MAX; n];
    let mut sigma = vec![0.0f64; n];
    let mut delta = vec![0.0f64; n];
    // The nodes in the order the search reached them: the queue of the search and, read
    // backwards, the stack of the accumulation.
    let mut order: Vec<usize> = Vec::with_capacity(n);
    for s in sources {
        if cancelled.load(Ordering::Relaxed) {
            return None;
        }
        dist[s] = 0;
        sigma[s] = 1.0;
        order.push(s);
        let mut head = 0;
        while head < order.len() {
            let v = order[head];
            head += 1;
            for &w in adjacency.neighbours(v) {
                if dist[w] == usize::MAX {
                    dist[w] = dist[v] + 1;
                    order.push(w);
                }
                if dist[w] == dist[v] + 1 {
                    sigma[w] += sigma[v];
                }
            }
        }
        for &w in order.iter().rev() {
            let coefficient = (1.0 + delta[w]) / sigma[w];
            for &v in adjacency.neighbours(w) {
                if dist[v].wrapping_add(1) == dist[w] {
                    delta[v] += sigma[v] * coefficient;
                }
            }
            if w != s {
                centrality[w] += delta[w];
            }
        }
        // Reset only what this search touched: O(reached), not O(n), per source.
        for &v in &order {
            dist[v] = usize::MAX;
            sigma[v] = 0.0;
            delta[v] = 0.0;
        }
        order.clear();
    }

    // Each unordered pair was counted from both ends; scale the sample up to all n sources.
    // (Normalising by the maximum below cancels this factor; it is kept so the intermediate
    // values are the textbook estimate.)
    let scale = n as f64 / k as f64 / 2.0;
    let max = centrality.iter().fold(0.0f64, |m, &c| m.max(c * scale));
    if max.is_finite() && max > 0.0 {
        for c in &mut centrality {
            *c = *c * scale / max;
        }
    } else {
        centrality.fill(0.0);
    }
    Some(centrality)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{Edge, EdgeKind};
    use rand::Rng;
    use std::collections::VecDeque;

    fn graph(n: usize, pairs: &[(usize, usize)]) -> Graph {
        let kinds = [EdgeKind::ReportsTo, EdgeKind::Collaborates, EdgeKind::Mentors];
        Graph {
            ids: (0..n as i64).collect(),
            edges: pairs
                .iter()
                .enumerate()
                .map(|(i, &(source, target))| Edge {
                    source,
                    target,
                    kind: kinds[i % 3],
                    weight: 1.0 + i as f64,
                })
                .collect(),
        }
    }

    /// Betweenness by definition: for every pair s < t and every other v, the share of the
    /// shortest s–t paths through v. O(n³), for checking only.
    fn brute_force(g: &Graph) -> Vec<f64> {
        let n = g.len();
        let mut adj = vec![Vec::new(); n];
        for e in &g.edges {
            if e.source != e.target && !adj[e.source].contains(&e.target) {
                adj[e.source].push(e.target);
                adj[e.target].push(e.source);
            }
        }
        let mut dist = vec![vec![usize::MAX; n]; n];
        let mut paths = vec![vec![0.0f64; n]; n];
        for s in 0..n {
            dist[s][s] = 0;
            paths[s][s] = 1.0;
            let mut queue = VecDeque::from([s]);
            while let Some(v) = queue.pop_front() {
                for &w in &adj[v] {
                    if dist[s][w] == usize::MAX {
                        dist[s][w] = dist[s][v] + 1;
                        queue.push_back(w);
                    }
                    if dist[s][w] == dist[s][v] + 1 {
                        paths[s][w] += paths[s][v];
                    }
                }
            }
        }
        let mut c = vec![0.0; n];
        for s in 0..n {
            for t in s + 1..n {
                if dist[s][t] == usize::MAX {
                    continue;
                }
                for (v, cv) in c.iter_mut().enumerate() {
                    if v != s
                        && v != t
                        && dist[s][v] != usize::MAX
                        && dist[v][t] != usize::MAX
                        && dist[s][v] + dist[v][t] == dist[s][t]
                    {
                        *cv += paths[s][v] * paths[v][t] / paths[s][t];
                    }
                }
            }
        }
        let max = c.iter().cloned().fold(0.0, f64::max);
        if max > 0.0 {
            c.iter_mut().for_each(|x| *x /= max);
        }
        c
    }

    fn assert_close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-9, "{a:?} != {b:?}");
        }
    }

    #[test]
    fn empty_single_and_zero_samples() {
        assert!(betweenness(&Graph::default(), 10, 1).is_empty());
        assert_eq!(betweenness(&graph(1, &[]), 10, 1), vec![0.0]);
        assert_eq!(betweenness(&graph(3, &[(0, 1), (1, 2)]), 0, 1), vec![0.0; 3]);
    }

    #[test]
    fn path_middle_is_max() {
        // a - b - c
        let b = betweenness(&graph(3, &[(0, 1), (1, 2)]), 3, 0);
        assert_eq!(b, vec![0.0, 1.0, 0.0]);
    }

    #[test]
    fn star_centre_is_one() {
        let pairs: Vec<_> = (1..8).map(|leaf| (leaf, 0)).collect();
        let b = betweenness(&graph(8, &pairs), 100, 3);
        assert_eq!(b[0], 1.0);
        assert!(b[1..].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn no_brokers_stays_zero() {
        // A triangle and an isolated node: nobody is between anybody.
        let b = betweenness(&graph(4, &[(0, 1), (1, 2), (2, 0)]), 4, 0);
        assert_eq!(b, vec![0.0; 4]);
    }

    #[test]
    fn direction_kind_weight_and_duplicates_do_not_matter() {
        let one = betweenness(&graph(4, &[(0, 1), (1, 2), (2, 3)]), 4, 0);
        let other = betweenness(&graph(4, &[(1, 0), (2, 1), (3, 2), (1, 2), (2, 1), (0, 1)]), 4, 0);
        assert_close(&one, &other);
        // A path of four: the two inner nodes tie.
        assert_close(&one, &[0.0, 1.0, 1.0, 0.0]);
    }

    #[test]
    fn equal_shortest_paths_split() {
        // A 4-cycle 0-1-2-3-0 plus a tail 3-4: 3 carries the tail's traffic.
        let b = betweenness(&graph(5, &[(0, 1), (1, 2), (2, 3), (3, 0), (3, 4)]), 5, 0);
        assert_close(&b, &brute_force(&graph(5, &[(0, 1), (1, 2), (2, 3), (3, 0), (3, 4)])));
        assert_eq!(b[3], 1.0);
    }

    fn random_graph(seed: u64, n: usize, m: usize) -> Graph {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let pairs: Vec<(usize, usize)> =
            (0..m).map(|_| (rng.random_range(0..n), rng.random_range(0..n))).collect();
        graph(n, &pairs)
    }

    #[test]
    fn exact_matches_the_definition_and_sampling_with_enough_samples() {
        for seed in 0..5 {
            let g = random_graph(seed, 25, 40);
            let exact = betweenness(&g, 25, 0);
            assert_close(&exact, &brute_force(&g));
            // samples >= n is exact whatever the seed.
            assert_close(&exact, &betweenness(&g, 1_000, seed + 99));
            assert_close(&exact, &betweenness(&g, u32::MAX, 12345));
        }
    }

    #[test]
    fn sampling_is_deterministic_for_a_seed() {
        let g = random_graph(7, 200, 400);
        let a = betweenness(&g, 20, 42);
        let b = betweenness(&g, 20, 42);
        assert_eq!(a, b);
        assert!(a.iter().all(|x| (0.0..=1.0).contains(x)));
        assert!(a.contains(&1.0));
        let other_seed = betweenness(&g, 20, 43);
        assert_ne!(a, other_seed, "a different seed draws different sources");
    }
}
