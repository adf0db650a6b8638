//! Interventions, planned graph changes the worker applies: what the API takes and shows, and
//! their SQL ([`queries`]).

pub mod queries;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The kinds of intervention.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Move an employee under a new manager.
    Reassign,
}

/// A proposed change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// `reassign`.
    pub kind: Kind,
    /// Who moves.
    pub employee_id: i64,
    /// Their new manager (not themselves).
    pub new_manager_id: i64,
    /// Why, 1 to 1000 characters; no control characters but line feeds and tabs.
    #[schema(min_length = 1, max_length = 1000)]
    pub reason: String,
}

/// An intervention as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Intervention {
    /// Assigned when proposed: the `{id}` of `/api/interventions/{id}`.
    pub id: Uuid,
    /// `reassign`.
    pub kind: String,
    /// Who moves.
    pub employee_id: i64,
    /// Their new manager.
    pub new_manager_id: i64,
    /// Their manager before execution (set by the execution).
    pub old_manager_id: Option<i64>,
    /// Why it was proposed, as given.
    pub reason: String,
    /// `proposed`, `executed` or `rolled_back`.
    pub state: String,
    /// When it was proposed.
    pub created_at: DateTime<Utc>,
}
