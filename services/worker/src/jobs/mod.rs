//! The work of each job kind. [`execute`] is what the runner calls for a job row; each kind lives
//! in a module of its own.

mod analysis;
mod export;
mod intervention;

use crate::context::Ctx;
use crate::runner::{JobError, JobRow};
use domain::{InterventionAction, JobKind};
use serde_json::Value;

/// Does the work of `row`'s kind.
pub async fn execute(ctx: Ctx, row: JobRow) -> Result<Value, JobError> {
    match row.kind {
        JobKind::Analysis => analysis::run(ctx, row).await,
        JobKind::Export => export::run(ctx, row).await,
        JobKind::InterventionExecute => {
            intervention::run(ctx, row, InterventionAction::Execute).await
        }
        JobKind::InterventionRollback => {
            intervention::run(ctx, row, InterventionAction::Rollback).await
        }
    }
}
