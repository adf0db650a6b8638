//! The shared vocabulary of the API and the worker: the database schema (`migrations/`), the kinds
//! of background job and their payloads, the one way to enqueue a job, inside the transaction
//! that records it, so a job the API accepted (202) can never be lost between two writes, and the
//! rule that keeps the reporting lines a forest. How a service binary runs (settings, shutdown,
//! health check) is the `servicekit` crate.

pub mod jobs;
pub mod reporting;
pub mod schema;

pub use jobs::{
    InterventionAction, JobKind, JobPayload, JobStatus, enqueue, enqueue_traced, queue_name,
};
pub use schema::{SchemaError, migrate};
