//! The graph's resources as the API shows them, with their OpenAPI schemas.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An employee: a node of the org graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct Employee {
    /// Assigned when the employee is added: the `{id}` of `/api/graph/nodes/{id}`.
    pub id: i64,
    /// Full name.
    pub name: String,
    /// Team name (stats count the distinct ones).
    pub team: String,
    /// Job title; may be empty.
    pub title: String,
}

/// A new employee.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEmployee {
    /// Full name, 1 to 200 characters, no control characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Team, 1 to 100 characters, no control characters.
    #[schema(min_length = 1, max_length = 100)]
    pub team: String,
    /// Job title, up to 100 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 100)]
    pub title: String,
}

/// What a relation means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    /// `source` reports to `target` (at most one manager per employee).
    ReportsTo,
    /// They work together.
    Collaborates,
    /// `source` mentors `target`.
    Mentors,
}

impl RelationKind {
    /// The `relations.kind` value.
    pub fn as_str(self) -> &'static str {
        match self {
            RelationKind::ReportsTo => "reports_to",
            RelationKind::Collaborates => "collaborates",
            RelationKind::Mentors => "mentors",
        }
    }
}

/// A relation: a typed, weighted edge of the org graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Relation {
    /// Assigned when the relation is added: the `{id}` of `/api/graph/edges/{id}`.
    pub id: i64,
    /// The employee it starts at.
    pub source_id: i64,
    /// The employee it ends at.
    pub target_id: i64,
    /// What it means.
    pub kind: RelationKind,
    /// Strength, above 0 and at most 100.
    pub weight: f64,
}

/// A new relation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRelation {
    /// The employee it starts at.
    pub source_id: i64,
    /// The employee it ends at (not the source).
    pub target_id: i64,
    /// What it means.
    pub kind: RelationKind,
    /// Strength, above 0 and at most 100 (default 1).
    #[serde(default = "default_weight")]
    #[schema(exclusive_minimum = 0, maximum = 100, default = 1.0)]
    pub weight: f64,
}

fn default_weight() -> f64 {
    1.0
}

/// One page of employees, by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmployeePage {
    /// The employees, by ascending id.
    pub items: Vec<Employee>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<i64>,
}

/// Degree distribution over employees (relations in either direction).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DegreeSummary {
    /// Smallest degree.
    pub min: i64,
    /// Largest degree.
    pub max: i64,
    /// Mean degree.
    pub mean: f64,
    /// Median degree.
    pub median: f64,
}

/// Statistics of the whole graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GraphStats {
    /// Employees.
    pub nodes: i64,
    /// Relations.
    pub edges: i64,
    /// Teams.
    pub teams: i64,
    /// Edges over the edges a complete directed graph would have (0 with fewer than 2 nodes).
    pub density: f64,
    /// Degree distribution.
    pub degree: DegreeSummary,
}

/// What `POST /api/graph/seed` takes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedRequest {
    /// Employees to generate, 1 to 20,000.
    #[schema(minimum = 1, maximum = 20_000)]
    pub employees: u32,
    /// Average direct reports of a manager, 1 to 20.
    #[schema(minimum = 1, maximum = 20)]
    pub avg_reports: u32,
    /// The random seed: the same seed gives the same graph.
    #[schema(format = "uint64", maximum = 18_446_744_073_709_551_615_u64)]
    pub seed: u64,
}

/// What a seed produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SeedResult {
    /// Employees written.
    pub nodes: i64,
    /// Relations written.
    pub edges: i64,
}
