//! What each kind of request does. The scenario remembers what earlier responses told it (the
//! employees that exist, the employees and relations this run added, the jobs it started, the
//! interventions on their way through proposed → executed → rolled back) and plans each next
//! request from that, so most requests are ones the API accepts:
//!
//! * reads: `GET /api/graph/stats`, a page of `/api/graph/nodes?limit=..&after=..`, one
//!   employee, one job this run started (analysis, export, or an intervention's job);
//! * updates: add an employee, add a relation (`collaborates`/`mentors`) between two existing
//!   employees, remove a relation or an employee this run added;
//! * analysis and exports: start a job;
//! * interventions: execute a proposal, roll back an executed one, look at one whose execution
//!   is queued (until the worker has executed it, for at most a minute), otherwise propose a
//!   reassignment between two existing employees;
//! * bad: see [`super::bad`].
//!
//! Employees that existed before the run are never removed; ids this run added are never used
//! for relations or interventions (they may disappear). Without at least two existing employees
//! (an empty graph and no `--seed-graph`), relations become additions of employees and
//! interventions become reads. Conflicts (e.g. a relation that exists already: 409) are answers
//! like any other.

use super::bad;
use super::mix::Kind;
use rand::Rng;
use rand::seq::IndexedRandom;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Existing employees remembered (ids for reads, relations, interventions).
const EMPLOYEES_KEPT: usize = 10_000;

/// Added employees (and relations) kept before the oldest is removed first.
const OWN_KEPT: usize = 200;

/// Started jobs remembered for reads.
const JOBS_KEPT: usize = 256;

/// Interventions followed at once; with more, the oldest is looked at even if not due.
const FOLLOWED_MAX: usize = 50;

/// How often a queued intervention is looked at.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// How long a queued intervention is followed before it is given up (e.g. no worker runs).
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// What a request sends after its head, and as which `Content-Type`.
pub enum Body {
    /// Nothing, and no `Content-Type`.
    Empty,
    /// JSON (`Content-Type: application/json`).
    Json(Value),
    /// These bytes with this content type.
    Raw(&'static str, &'static [u8]),
    /// These bytes with this content type, announced (`Expect: 100-continue`) on a connection
    /// of their own and sent only if the server asks: see [`super::announced`].
    Announced(&'static str, &'static [u8]),
}

/// One request, ready to send.
pub struct Planned {
    /// Its kind; `None` for setup requests.
    pub kind: Option<Kind>,
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// `METHOD /route/{template}`: the label it is counted under.
    pub route: &'static str,
    pub body: Body,
    /// Which `Authorization` it carries.
    pub credentials: Credentials,
    /// What its response teaches the scenario.
    pub then: Then,
}

/// The `Authorization` header of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// The run's token (`Options::token`): every request but some bad ones.
    Token,
    /// None at all (a bad request: 401).
    Missing,
    /// A token the API does not know (a bad request: 401).
    Wrong,
}

impl Planned {
    /// A request without a body whose response teaches nothing.
    pub fn simple(kind: Option<Kind>, method: Method, path: String, route: &'static str) -> Self {
        Planned {
            kind,
            method,
            path,
            route,
            body: Body::Empty,
            credentials: Credentials::Token,
            then: Then::Nothing,
        }
    }

    fn json(kind: Kind, path: &str, route: &'static str, body: Value, then: Then) -> Self {
        Planned {
            kind: Some(kind),
            method: Method::POST,
            path: path.to_string(),
            route,
            body: Body::Json(body),
            credentials: Credentials::Token,
            then,
        }
    }
}

/// What to learn from a response.
pub enum Then {
    /// Nothing.
    Nothing,
    /// A page of employees: remember their ids.
    Harvest,
    /// An employee was added: remove it later.
    NodeAdded,
    /// A relation was added: remove it later.
    EdgeAdded,
    /// A job was accepted: read it later at `prefix` + id, counted under `route`.
    JobAccepted { route: &'static str, prefix: &'static str },
    /// An intervention was proposed: execute it.
    Proposed,
    /// An intervention's execution (or rollback) was queued.
    Queued { intervention: String, rollback: bool },
    /// An intervention was looked at while its execution is queued.
    Checked(Followed),
}

/// An intervention whose execution is queued.
pub struct Followed {
    id: String,
    since: Instant,
    next: Instant,
}

/// What the scenario knows.
#[derive(Default)]
struct Pools {
    employees: Vec<i64>,
    known: HashSet<i64>,
    added: HashSet<i64>,
    nodes: VecDeque<i64>,
    edges: VecDeque<i64>,
    jobs: VecDeque<(&'static str, String)>,
    proposed: VecDeque<String>,
    followed: VecDeque<Followed>,
    executed: VecDeque<String>,
    added_count: u64,
}

/// The scenario's memory, shared by the dispatcher (which plans) and the request tasks (which
/// report what they learnt).
#[derive(Default)]
pub struct Scenario {
    pools: Mutex<Pools>,
}

impl Scenario {
    fn pools(&self) -> std::sync::MutexGuard<'_, Pools> {
        self.pools.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next request of `kind`.
    pub fn plan(&self, kind: Kind, rng: &mut impl Rng) -> Planned {
        let mut pools = self.pools();
        match kind {
            Kind::Reads => reads(&pools, rng),
            Kind::Updates => updates(&mut pools, rng),
            Kind::Analysis => Planned::json(
                kind,
                "/api/analysis",
                "POST /api/analysis",
                json!({}),
                Then::JobAccepted { route: "GET /api/analysis/{id}", prefix: "/api/analysis/" },
            ),
            Kind::Exports => {
                let format = if rng.random_bool(0.5) { "csv" } else { "jsonl" };
                Planned::json(
                    kind,
                    "/api/exports",
                    "POST /api/exports",
                    json!({"kind": "employee_metrics", "format": format}),
                    Then::JobAccepted { route: "GET /api/exports/{id}", prefix: "/api/exports/" },
                )
            }
            Kind::Interventions => interventions(&mut pools, rng),
            Kind::Bad => bad::plan(rng),
        }
    }

    /// Learns from a response with `status` and `body` to the request planned with `then`.
    pub fn learn(&self, then: Then, status: u16, body: &[u8]) {
        let json = || serde_json::from_slice::<Value>(body).ok();
        let mut pools = self.pools();
        match then {
            Then::Nothing => {}
            Then::Harvest if status == 200 => {
                let Some(page) = json() else { return };
                let ids =
                    page["items"].as_array().into_iter().flatten().filter_map(|e| e["id"].as_i64());
                for id in ids {
                    if pools.employees.len() >= EMPLOYEES_KEPT {
                        break;
                    }
                    if !pools.added.contains(&id) && pools.known.insert(id) {
                        pools.employees.push(id);
                    }
                }
            }
            Then::NodeAdded if status == 201 => {
                if let Some(id) = json().and_then(|b| b["id"].as_i64()) {
                    pools.added.insert(id);
                    pools.nodes.push_back(id);
                    // A page read while this response was on its way may have listed it.
                    if pools.known.remove(&id) {
                        pools.employees.retain(|e| *e != id);
                    }
                }
            }
            Then::EdgeAdded if status == 201 => {
                if let Some(id) = json().and_then(|b| b["id"].as_i64()) {
                    pools.edges.push_back(id);
                }
            }
            Then::JobAccepted { route, prefix } if status == 202 => {
                if let Some(id) = json().and_then(|b| b["id"].as_str().map(str::to_string)) {
                    pools.remember_job(route, format!("{prefix}{id}"));
                }
            }
            Then::Proposed if status == 201 => {
                if let Some(id) = json().and_then(|b| b["id"].as_str().map(str::to_string)) {
                    pools.proposed.push_back(id);
                }
            }
            Then::Queued { intervention, rollback } if status == 202 => {
                if let Some(job) = json().and_then(|b| b["id"].as_str().map(str::to_string)) {
                    pools.remember_job("GET /api/jobs/{id}", format!("/api/jobs/{job}"));
                }
                if !rollback {
                    let now = Instant::now();
                    pools.followed.push_back(Followed {
                        id: intervention,
                        since: now,
                        next: now + CHECK_EVERY,
                    });
                }
            }
            Then::Checked(mut followed) if status == 200 => {
                let state = json().and_then(|b| b["state"].as_str().map(str::to_string));
                if state.as_deref() == Some("executed") {
                    pools.executed.push_back(followed.id);
                } else if followed.since.elapsed() < GIVE_UP_AFTER {
                    followed.next = Instant::now() + CHECK_EVERY;
                    pools.followed.push_back(followed);
                }
            }
            // Refused, failed or unexpected: forget it.
            _ => {}
        }
    }
}

impl Pools {
    fn remember_job(&mut self, route: &'static str, path: String) {
        if self.jobs.len() >= JOBS_KEPT {
            self.jobs.pop_front();
        }
        self.jobs.push_back((route, path));
    }

    /// Two different existing employees, if there are two.
    fn pair(&self, rng: &mut impl Rng) -> Option<(i64, i64)> {
        if self.employees.len() < 2 {
            return None;
        }
        let a = rng.random_range(0..self.employees.len());
        let b = (a + rng.random_range(1..self.employees.len())) % self.employees.len();
        Some((self.employees[a], self.employees[b]))
    }
}

fn reads(pools: &Pools, rng: &mut impl Rng) -> Planned {
    let kind = Some(Kind::Reads);
    let stats =
        || Planned::simple(kind, Method::GET, "/api/graph/stats".into(), "GET /api/graph/stats");
    match rng.random_range(0..100) {
        0..35 => stats(),
        35..60 => {
            let limit = [10, 50, 100, 200].choose(rng).copied().unwrap_or(100);
            let after = match pools.employees.choose(rng) {
                Some(id) if rng.random_bool(0.7) => (*id).max(1) - 1,
                _ => 0,
            };
            Planned {
                then: Then::Harvest,
                ..Planned::simple(
                    kind,
                    Method::GET,
                    format!("/api/graph/nodes?limit={limit}&after={after}"),
                    "GET /api/graph/nodes",
                )
            }
        }
        60..85 => {
            let own = pools.nodes.len();
            let id = if own > 0 && rng.random_bool(0.2) {
                pools.nodes.get(rng.random_range(0..own)).copied()
            } else {
                pools.employees.choose(rng).copied()
            };
            match id {
                Some(id) => Planned::simple(
                    kind,
                    Method::GET,
                    format!("/api/graph/nodes/{id}"),
                    "GET /api/graph/nodes/{id}",
                ),
                None => stats(),
            }
        }
        _ => match pools.jobs.get(rng.random_range(0..pools.jobs.len().max(1))) {
            Some((route, path)) => Planned::simple(kind, Method::GET, path.clone(), route),
            None => stats(),
        },
    }
}

fn updates(pools: &mut Pools, rng: &mut impl Rng) -> Planned {
    let kind = Kind::Updates;
    let mut choice = rng.random_range(0..4);
    if pools.nodes.len() >= OWN_KEPT {
        choice = 3;
    } else if pools.edges.len() >= OWN_KEPT {
        choice = 2;
    }
    if choice == 2 && pools.edges.is_empty() {
        choice = 1;
    }
    if choice == 1 && pools.employees.len() < 2 {
        choice = 0;
    }
    if choice == 3 && pools.nodes.is_empty() {
        choice = 0;
    }
    match choice {
        1 => {
            let (source, target) = pools.pair(rng).unwrap_or((1, 2));
            let relation = if rng.random_bool(0.5) { "collaborates" } else { "mentors" };
            let weight = f64::from(rng.random_range(1..=100u32)) / 10.0;
            Planned::json(
                kind,
                "/api/graph/edges",
                "POST /api/graph/edges",
                json!({
                    "source_id": source,
                    "target_id": target,
                    "kind": relation,
                    "weight": weight,
                }),
                Then::EdgeAdded,
            )
        }
        2 => match pools.edges.pop_front() {
            Some(id) => Planned::simple(
                Some(kind),
                Method::DELETE,
                format!("/api/graph/edges/{id}"),
                "DELETE /api/graph/edges/{id}",
            ),
            None => stats_of(kind),
        },
        3 => match pools.nodes.pop_front() {
            Some(id) => Planned::simple(
                Some(kind),
                Method::DELETE,
                format!("/api/graph/nodes/{id}"),
                "DELETE /api/graph/nodes/{id}",
            ),
            None => stats_of(kind),
        },
        _ => {
            pools.added_count += 1;
            let team = rng.random_range(1..=20u32);
            Planned::json(
                kind,
                "/api/graph/nodes",
                "POST /api/graph/nodes",
                json!({
                    "name": format!("Load Tester {}", pools.added_count),
                    "team": format!("team-{team:02}"),
                    "title": "Engineer",
                }),
                Then::NodeAdded,
            )
        }
    }
}

/// Unreachable in practice (the choices above fall back before); a harmless read.
fn stats_of(kind: Kind) -> Planned {
    Planned::simple(Some(kind), Method::GET, "/api/graph/stats".into(), "GET /api/graph/stats")
}

fn interventions(pools: &mut Pools, rng: &mut impl Rng) -> Planned {
    let kind = Kind::Interventions;
    // An executed one is rolled back, a proposed one executed (both queue a job).
    let queue = |id: String, rollback: bool| {
        let (action, route) = if rollback {
            ("rollback", "POST /api/interventions/{id}/rollback")
        } else {
            ("execute", "POST /api/interventions/{id}/execute")
        };
        let path = format!("/api/interventions/{id}/{action}");
        Planned {
            then: Then::Queued { intervention: id, rollback },
            ..Planned::simple(Some(kind), Method::POST, path, route)
        }
    };
    if let Some(id) = pools.executed.pop_front() {
        return queue(id, true);
    }
    if let Some(id) = pools.proposed.pop_front() {
        return queue(id, false);
    }
    let due = pools
        .followed
        .front()
        .is_some_and(|f| f.next <= Instant::now() || pools.followed.len() >= FOLLOWED_MAX);
    if due && let Some(followed) = pools.followed.pop_front() {
        return Planned {
            path: format!("/api/interventions/{}", followed.id),
            then: Then::Checked(followed),
            ..Planned::simple(Some(kind), Method::GET, String::new(), "GET /api/interventions/{id}")
        };
    }
    match pools.pair(rng) {
        Some((employee, manager)) => Planned::json(
            kind,
            "/api/interventions",
            "POST /api/interventions",
            json!({
                "kind": "reassign",
                "employee_id": employee,
                "new_manager_id": manager,
                "reason": "load test: closer to the team",
            }),
            Then::Proposed,
        ),
        None => reads(pools, rng),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(1)
    }

    fn page(ids: &[i64]) -> Vec<u8> {
        let items: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
        json!({"items": items}).to_string().into_bytes()
    }

    #[test]
    fn without_employees_only_safe_requests_are_planned() {
        let scenario = Scenario::default();
        let mut rng = rng();
        for _ in 0..200 {
            for kind in [Kind::Updates, Kind::Interventions, Kind::Reads] {
                let planned = scenario.plan(kind, &mut rng);
                assert!(
                    !planned.route.contains("edges") && !planned.route.contains("interventions"),
                    "{}",
                    planned.route
                );
            }
        }
    }

    #[test]
    fn an_intervention_goes_from_proposal_to_rollback() {
        let scenario = Scenario::default();
        let mut rng = rng();
        scenario.learn(Then::Harvest, 200, &page(&[1, 2, 3]));
        let propose = scenario.plan(Kind::Interventions, &mut rng);
        assert_eq!(propose.route, "POST /api/interventions");
        scenario.learn(propose.then, 201, br#"{"id": "iv-1", "state": "proposed"}"#);
        let execute = scenario.plan(Kind::Interventions, &mut rng);
        assert_eq!(execute.path, "/api/interventions/iv-1/execute");
        scenario.learn(execute.then, 202, br#"{"id": "job-1"}"#);
        // Not due yet: another proposal.
        assert_eq!(scenario.plan(Kind::Interventions, &mut rng).route, "POST /api/interventions");
        std::thread::sleep(CHECK_EVERY);
        let check = scenario.plan(Kind::Interventions, &mut rng);
        assert_eq!(check.path, "/api/interventions/iv-1");
        scenario.learn(check.then, 200, br#"{"state": "executed"}"#);
        let rollback = scenario.plan(Kind::Interventions, &mut rng);
        assert_eq!(rollback.path, "/api/interventions/iv-1/rollback");
        assert!(scenario.pools().jobs.iter().any(|(_, p)| p == "/api/jobs/job-1"));
    }

    #[test]
    fn updates_remove_only_what_they_added() {
        let scenario = Scenario::default();
        let mut rng = rng();
        scenario.learn(Then::Harvest, 200, &page(&[1, 2, 3, 4]));
        let mut next_id = 100;
        let mut added_nodes = Vec::new();
        let mut deleted = BTreeSet::new();
        for _ in 0..500 {
            let planned = scenario.plan(Kind::Updates, &mut rng);
            match planned.route {
                "POST /api/graph/nodes" | "POST /api/graph/edges" => {
                    next_id += 1;
                    if planned.route.ends_with("nodes") {
                        added_nodes.push(next_id);
                    }
                    scenario.learn(
                        planned.then,
                        201,
                        json!({"id": next_id}).to_string().as_bytes(),
                    );
                }
                "DELETE /api/graph/nodes/{id}" | "DELETE /api/graph/edges/{id}" => {
                    let id: i64 = planned.path.rsplit('/').next().unwrap().parse().unwrap();
                    assert!(id > 100, "{}", planned.path);
                    assert!(deleted.insert(id), "deleted twice: {}", planned.path);
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert!(deleted.len() > 100);
        // Added employees are never harvested as existing ones, nor kept if a page listed them
        // before their addition was answered.
        scenario.learn(Then::Harvest, 200, &page(&[added_nodes[0], added_nodes[1], 5, 999]));
        scenario.learn(Then::NodeAdded, 201, br#"{"id": 999}"#);
        assert_eq!(scenario.pools().employees, vec![1, 2, 3, 4, 5]);
    }
}
