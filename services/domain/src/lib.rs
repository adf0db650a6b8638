//! The shared vocabulary of the API and the worker: the database schema (`migrations/`), the kinds
//! of background job and their payloads, and the one way to enqueue a job, inside the transaction
//! that records it, so a job the API accepted (202) can never be lost between two writes.

pub mod health_check;
pub mod jobs;
pub mod probe;
pub mod reporting;
pub mod schema;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod unreachable;

pub use jobs::{InterventionAction, JobKind, JobPayload, JobStatus, enqueue, queue_name};
pub use schema::{SchemaError, migrate};
