//! A realistic org graph from a seed, so a fresh stack has data worth measuring: a management
//! tree (breadth-first, each manager with 1 to `2 × avg_reports − 1` direct reports), teams under
//! the CEO's direct reports, collaborations inside teams and some mentoring. The same seed gives
//! the same graph (ChaCha8, whose stream is fixed across platforms and releases).

use super::model::RelationKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{HashSet, VecDeque};

/// Most employees a seed may create (bounded: a seed is one request).
pub const MAX_EMPLOYEES: u32 = 20_000;
/// Largest average number of direct reports.
pub const MAX_AVG_REPORTS: u32 = 20;

/// A generated employee; its id will be its index + 1.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedEmployee {
    pub name: String,
    pub team: String,
    pub title: String,
}

/// A generated relation between two employee indexes.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedRelation {
    /// Index of the source employee.
    pub source: usize,
    /// Index of the target employee.
    pub target: usize,
    pub kind: RelationKind,
    pub weight: f64,
}

/// A whole generated graph.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedGraph {
    /// Employees, index 0 is the CEO.
    pub employees: Vec<SeedEmployee>,
    pub relations: Vec<SeedRelation>,
}

const FIRST: &[&str] = &[
    "Ada",
    "Alan",
    "Barbara",
    "Claude",
    "Donald",
    "Edsger",
    "Frances",
    "Grace",
    "Hedy",
    "Ivan",
    "John",
    "Katherine",
    "Leslie",
    "Margaret",
    "Niklaus",
    "Radia",
    "Shafi",
    "Tim",
    "Whitfield",
    "Yukihiro",
];
const LAST: &[&str] = &[
    "Allen",
    "Backus",
    "Cerf",
    "Dijkstra",
    "Engelbart",
    "Floyd",
    "Goldberg",
    "Hopper",
    "Iverson",
    "Johnson",
    "Knuth",
    "Lamport",
    "Liskov",
    "McCarthy",
    "Naur",
    "Perlman",
    "Ritchie",
    "Thompson",
    "Wirth",
    "Zuse",
];
const TITLES: &[&str] = &["CEO", "VP", "Director", "Manager", "Lead", "Engineer"];

/// Generates the graph; `employees` and `avg_reports` must be in range (the handler checks).
pub fn generate(employees: u32, avg_reports: u32, seed: u64) -> SeedGraph {
    let n = employees.clamp(1, MAX_EMPLOYEES) as usize;
    let k = avg_reports.clamp(1, MAX_AVG_REPORTS);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    // Management tree, breadth-first.
    let mut manager = vec![None::<usize>; n];
    let mut depth = vec![0usize; n];
    let mut queue = VecDeque::from([0usize]);
    let mut next = 1;
    while next < n {
        let Some(m) = queue.pop_front() else { break };
        let reports = rng.random_range(1..=2 * k - 1) as usize;
        for _ in 0..reports.min(n - next) {
            manager[next] = Some(m);
            depth[next] = depth[m] + 1;
            queue.push_back(next);
            next += 1;
        }
    }
    // Teams: the subtree of each of the CEO's direct reports.
    let mut team = vec![String::from("executive"); n];
    for i in 1..n {
        team[i] = match manager[i] {
            Some(0) => format!("team-{i:02}"),
            Some(m) => team[m].clone(),
            None => "executive".into(),
        };
    }
    let employees = (0..n)
        .map(|i| SeedEmployee {
            name: format!(
                "{} {} {}",
                FIRST[rng.random_range(0..FIRST.len())],
                LAST[rng.random_range(0..LAST.len())],
                i + 1
            ),
            team: team[i].clone(),
            title: TITLES[depth[i].min(TITLES.len() - 1)].to_string(),
        })
        .collect();

    let mut relations = Vec::new();
    for (i, m) in manager.iter().enumerate() {
        if let Some(m) = m {
            relations.push(SeedRelation {
                source: i,
                target: *m,
                kind: RelationKind::ReportsTo,
                weight: 1.0,
            });
        }
    }
    // Collaborations with one or two teammates (by index order, so each pair appears once), and
    // mentoring by someone more senior in the same team.
    let mut by_team: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, t) in team.iter().enumerate() {
        by_team.entry(t.as_str()).or_default().push(i);
    }
    let mut pairs = HashSet::new();
    for members in by_team.values().filter(|m| m.len() > 1) {
        for &i in members {
            for _ in 0..rng.random_range(1..=2) {
                let j = members[rng.random_range(0..members.len())];
                let pair = (i.min(j), i.max(j));
                if i != j && pairs.insert(pair) {
                    let weight = (rng.random_range(0.5..5.0_f64) * 100.0).round() / 100.0;
                    relations.push(SeedRelation {
                        source: pair.0,
                        target: pair.1,
                        kind: RelationKind::Collaborates,
                        weight,
                    });
                }
            }
            if rng.random_range(0..10) == 0 {
                let mentor = members[rng.random_range(0..members.len())];
                if depth[mentor] < depth[i] && mentor != i {
                    relations.push(SeedRelation {
                        source: mentor,
                        target: i,
                        kind: RelationKind::Mentors,
                        weight: 2.0,
                    });
                }
            }
        }
    }
    SeedGraph { employees, relations }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_graph_other_seed_other_graph() {
        assert_eq!(generate(300, 5, 7), generate(300, 5, 7));
        assert_ne!(generate(300, 5, 7), generate(300, 5, 8));
    }

    #[test]
    fn is_a_tree_with_the_requested_shape() {
        let g = generate(2_000, 6, 1);
        assert_eq!(g.employees.len(), 2_000);
        let reports: Vec<_> =
            g.relations.iter().filter(|r| r.kind == RelationKind::ReportsTo).collect();
        assert_eq!(reports.len(), 1_999, "everyone but the CEO has one manager");
        let mut seen = HashSet::new();
        for r in &reports {
            assert!(seen.insert(r.source), "{} has two managers", r.source);
            assert!(r.target < r.source, "managers come first");
        }
        let managers: HashSet<_> = reports.iter().map(|r| r.target).collect();
        let mean = reports.len() as f64 / managers.len() as f64;
        assert!((4.0..=8.0).contains(&mean), "mean reports {mean}");
        for r in &g.relations {
            assert_ne!(r.source, r.target);
            assert!(r.weight > 0.0 && r.weight <= 100.0);
        }
    }

    #[test]
    fn a_single_employee_is_a_graph() {
        let g = generate(1, 3, 0);
        assert_eq!(g.employees.len(), 1);
        assert!(g.relations.is_empty());
    }
}
