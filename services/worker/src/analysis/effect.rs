//! What a "reassign" intervention (an employee moves to a new manager) would change, estimated
//! before it is executed so the proposal can show it.
//!
//! The estimate is deliberately simple and first-order: it does not re-run PageRank on the
//! changed graph. It says that the employee takes their whole reporting subtree along, so the
//! influence that moves from the old manager's subtree to the new manager's is the sum of the
//! PageRank scores of the employee and everyone who reports to them, directly or not; and that
//! the old manager loses one direct report while the new one gains one.

use std::collections::VecDeque;

use serde::Serialize;

use super::{AnalysisError, EdgeKind, Graph};

/// The estimated effect of moving one employee to a new manager.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReassignEffect {
    /// The employee's current manager (the target of their first `reports_to` edge), if any.
    pub current_manager: Option<usize>,
    /// The PageRank mass that moves with the employee: their own score plus the scores of
    /// their whole reporting subtree. 0 when the new manager is already the current one.
    pub influence_shift: f64,
    /// The change in the old manager's number of direct reports: -1, or 0 when there is no
    /// old manager or it is the new manager.
    pub team_size_change_old: i64,
    /// The change in the new manager's number of direct reports: +1, or 0 when the new manager
    /// is already the current one.
    pub team_size_change_new: i64,
}

/// Estimates moving `employee` (a node index) under `new_manager` (a node index), given the
/// graph's PageRank scores (one per node, as from [`pagerank`](fn@super::pagerank)).
///
/// The subtree is found by walking `reports_to` edges backwards from the employee, each node at
/// most once, so an existing reporting loop in the data cannot hang it. Time O(n + E).
///
/// Errors: [`AnalysisError::NodeOutOfRange`] for an index not in the graph,
/// [`AnalysisError::ScoresLength`] when `pagerank` has not one score per node, and
/// [`AnalysisError::Cycle`] when the new manager is the employee or in the employee's subtree,
/// where the move would make a reporting loop.
pub fn estimate_reassign(
    graph: &Graph,
    pagerank: &[f64],
    employee: usize,
    new_manager: usize,
) -> Result<ReassignEffect, AnalysisError> {
    let n = graph.len();
    for index in [employee, new_manager] {
        if index >= n {
            return Err(AnalysisError::NodeOutOfRange { index, len: n });
        }
    }
    if pagerank.len() != n {
        return Err(AnalysisError::ScoresLength { expected: n, got: pagerank.len() });
    }

    let reports_to = || graph.valid_edges().filter(|e| e.kind == EdgeKind::ReportsTo);
    let current_manager = reports_to().find(|e| e.source == employee).map(|e| e.target);

    // The direct reports of every node, in compressed form (counting sort by manager).
    let mut offsets = vec![0usize; n + 1];
    for e in reports_to() {
        offsets[e.target + 1] += 1;
    }
    for i in 0..n {
        offsets[i + 1] += offsets[i];
    }
    let mut next = offsets.clone();
    let mut reports = vec![0usize; offsets[n]];
    for e in reports_to() {
        reports[next[e.target]] = e.source;
        next[e.target] += 1;
    }

    let mut in_subtree = vec![false; n];
    in_subtree[employee] = true;
    let mut queue = VecDeque::from([employee]);
    let mut influence = 0.0;
    while let Some(v) = queue.pop_front() {
        influence += pagerank[v];
        for &r in &reports[offsets[v]..offsets[v + 1]] {
            if !in_subtree[r] {
                in_subtree[r] = true;
                queue.push_back(r);
            }
        }
    }
    if in_subtree[new_manager] {
        return Err(AnalysisError::Cycle { employee, new_manager });
    }

    if current_manager == Some(new_manager) {
        return Ok(ReassignEffect {
            current_manager,
            influence_shift: 0.0,
            team_size_change_old: 0,
            team_size_change_new: 0,
        });
    }
    Ok(ReassignEffect {
        current_manager,
        influence_shift: influence,
        team_size_change_old: if current_manager.is_some() { -1 } else { 0 },
        team_size_change_new: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ```text
    ///            1 (CEO)
    ///          /        \
    ///        2            3
    ///      /   \          |
    ///     4     5         6
    ///     |
    ///     7
    /// ```
    /// plus a collaboration 4–6 and a mentorship 1→7, which are not reporting lines.
    fn tree() -> Graph {
        Graph::from_rows(
            (1..=7).collect(),
            [
                (2, 1, "reports_to", 1.0),
                (3, 1, "reports_to", 1.0),
                (4, 2, "reports_to", 1.0),
                (5, 2, "reports_to", 1.0),
                (6, 3, "reports_to", 1.0),
                (7, 4, "reports_to", 1.0),
                (4, 6, "collaborates", 1.0),
                (1, 7, "mentors", 1.0),
            ],
        )
        .unwrap()
    }

    /// Node index of employee id `id` in [`tree`].
    fn ix(id: i64) -> usize {
        (id - 1) as usize
    }

    fn scores() -> Vec<f64> {
        // Easy-to-sum scores (they need not be a real PageRank for the arithmetic).
        vec![0.30, 0.20, 0.15, 0.10, 0.10, 0.10, 0.05]
    }

    #[test]
    fn moving_a_subtree_moves_its_influence() {
        // 4 (with 7 under it) moves from 2 to 3.
        let e = estimate_reassign(&tree(), &scores(), ix(4), ix(3)).unwrap();
        assert_eq!(e.current_manager, Some(ix(2)));
        assert!((e.influence_shift - (0.10 + 0.05)).abs() < 1e-12);
        assert_eq!((e.team_size_change_old, e.team_size_change_new), (-1, 1));
    }

    #[test]
    fn moving_a_leaf_moves_only_its_own_score() {
        let e = estimate_reassign(&tree(), &scores(), ix(5), ix(6)).unwrap();
        assert_eq!(e.current_manager, Some(ix(2)));
        assert!((e.influence_shift - 0.10).abs() < 1e-12);
    }

    #[test]
    fn moving_a_whole_branch_with_real_pagerank() {
        let g = tree();
        let pr = crate::analysis::pagerank(&g, 100, 0.85);
        let e = estimate_reassign(&g, &pr, ix(2), ix(3)).unwrap();
        let expected: f64 = [2, 4, 5, 7].iter().map(|&id| pr[ix(id)]).sum();
        assert!((e.influence_shift - expected).abs() < 1e-12);
        assert!(e.influence_shift > 0.0 && e.influence_shift < 1.0);
    }

    #[test]
    fn the_top_has_no_old_manager() {
        // Moving the CEO under someone outside their subtree: there is nobody outside it here,
        // so use a graph with a second root.
        let g = Graph::from_rows(vec![1, 2, 3], [(2, 1, "reports_to", 1.0)]).unwrap();
        let e = estimate_reassign(&g, &[0.5, 0.3, 0.2], 0, 2).unwrap();
        assert_eq!(e.current_manager, None);
        assert!((e.influence_shift - 0.8).abs() < 1e-12);
        assert_eq!((e.team_size_change_old, e.team_size_change_new), (0, 1));
    }

    #[test]
    fn same_manager_is_a_no_op() {
        let e = estimate_reassign(&tree(), &scores(), ix(4), ix(2)).unwrap();
        assert_eq!(
            e,
            ReassignEffect {
                current_manager: Some(ix(2)),
                influence_shift: 0.0,
                team_size_change_old: 0,
                team_size_change_new: 0,
            }
        );
    }

    #[test]
    fn a_new_manager_inside_the_subtree_is_a_cycle() {
        let g = tree();
        // 7 reports to 4, which reports to 2: moving 2 under 7 would make a loop.
        assert_eq!(
            estimate_reassign(&g, &scores(), ix(2), ix(7)),
            Err(AnalysisError::Cycle { employee: ix(2), new_manager: ix(7) })
        );
        assert!(matches!(
            estimate_reassign(&g, &scores(), ix(1), ix(6)),
            Err(AnalysisError::Cycle { .. })
        ));
        // Managing oneself is the shortest loop.
        assert!(matches!(
            estimate_reassign(&g, &scores(), ix(3), ix(3)),
            Err(AnalysisError::Cycle { .. })
        ));
        // Collaborating with or mentoring someone is not reporting: no cycle.
        assert!(estimate_reassign(&g, &scores(), ix(6), ix(4)).is_ok());
    }

    #[test]
    fn an_existing_loop_in_the_data_terminates() {
        // 1 -> 2 -> 3 -> 1 already loops (bad data); 4 is outside.
        let g = Graph::from_rows(
            vec![1, 2, 3, 4],
            [(1, 2, "reports_to", 1.0), (2, 3, "reports_to", 1.0), (3, 1, "reports_to", 1.0)],
        )
        .unwrap();
        let e = estimate_reassign(&g, &[0.25; 4], 0, 3).unwrap();
        assert!((e.influence_shift - 0.75).abs() < 1e-12);
        assert!(matches!(
            estimate_reassign(&g, &[0.25; 4], 0, 2),
            Err(AnalysisError::Cycle { .. })
        ));
    }

    #[test]
    fn bad_indices_and_score_lengths_are_errors() {
        let g = tree();
        assert_eq!(
            estimate_reassign(&g, &scores(), 7, 0),
            Err(AnalysisError::NodeOutOfRange { index: 7, len: 7 })
        );
        assert_eq!(
            estimate_reassign(&g, &scores(), 0, usize::MAX),
            Err(AnalysisError::NodeOutOfRange { index: usize::MAX, len: 7 })
        );
        assert_eq!(
            estimate_reassign(&g, &[0.5, 0.5], 3, 1),
            Err(AnalysisError::ScoresLength { expected: 7, got: 2 })
        );
        assert!(estimate_reassign(&Graph::default(), &[], 0, 0).is_err());
    }
}
