//! The org graph: its resource types, the deterministic generator behind `POST /api/graph/seed`,
//! the queries, and the stats cache (L1, then Redis, then Postgres).

pub mod model;
pub mod queries;
pub mod seed;
pub mod stats;
