//! Executing and rolling back an intervention: the planned graph change applied (or reverted) in
//! one transaction with the intervention's new state. Idempotent: the row is locked and its state
//! checked first, so a retried or redelivered job finds the work done and changes nothing.

use crate::context::Ctx;
use crate::runner::{JobError, JobRow};
use domain::{InterventionAction, reporting};
use otel::catalogue::{GraphOperation, InterventionKind, InterventionOutcome};
use serde_json::{Value, json};
use sqlx::Row;
use std::time::Instant;
use uuid::Uuid;

/// Runs an intervention job in direction `action`.
pub async fn run(ctx: Ctx, row: JobRow, action: InterventionAction) -> Result<Value, JobError> {
    let id: Uuid = row
        .params
        .get("intervention_id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| JobError::Invalid("params.intervention_id is missing".into()))?;
    let started = Instant::now();
    let mut outcome = Outcome { ctx: &ctx, action, recorded: false };
    let result = apply(&ctx, id, action).await;
    // One outcome per job: a success that changed the graph (a redelivered job that finds its work
    // done changes nothing and is not counted again), or a failure that ends the job (not an
    // attempt the runner retries). Only a change is a graph update.
    match &result {
        Ok(value) if value["changed"] == true => {
            outcome.record(InterventionOutcome::Success);
            ctx.graph.updated(outcome.operation(), started.elapsed());
        }
        Err(e) if !row.retries_after(e) => outcome.record(InterventionOutcome::Failure),
        // Nothing changed (a redelivery), or the runner tries again: no outcome of the job.
        _ => outcome.recorded = true,
    }
    result
}

/// An attempt's outcome, recorded once. The runner ends an attempt that times out by dropping
/// it, and a panic unwinds through it: both end the job, so a drop before anything was recorded
/// records a failure.
struct Outcome<'a> {
    ctx: &'a Ctx,
    action: InterventionAction,
    recorded: bool,
}

impl Outcome<'_> {
    fn record(&mut self, outcome: InterventionOutcome) {
        self.recorded = true;
        match self.action {
            InterventionAction::Execute => {
                self.ctx.interventions.executed(InterventionKind::Reassign, outcome);
            }
            InterventionAction::Rollback => {
                self.ctx.interventions.rolled_back(InterventionKind::Reassign, outcome);
            }
        }
    }

    fn operation(&self) -> GraphOperation {
        match self.action {
            InterventionAction::Execute => GraphOperation::InterventionExecute,
            InterventionAction::Rollback => GraphOperation::InterventionRollback,
        }
    }
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.record(InterventionOutcome::Failure);
        }
    }
}

async fn apply(ctx: &Ctx, id: Uuid, action: InterventionAction) -> Result<Value, JobError> {
    let mut tx = ctx.pool.begin().await?;
    // Before reading anything the loop check depends on: see `domain::reporting`.
    reporting::lock(&mut tx).await?;
    let row = sqlx::query(
        "SELECT employee_id, new_manager_id, old_manager_id, state FROM interventions \
         WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| JobError::Invalid(format!("intervention {id} no longer exists")))?;
    let employee: i64 = row.get("employee_id");
    let new_manager: i64 = row.get("new_manager_id");
    let old_manager: Option<i64> = row.get("old_manager_id");
    let state: String = row.get("state");
    let (done_state, allowed): (&str, &[&str]) = match action {
        InterventionAction::Execute => ("executed", &["proposed", "rolled_back"]),
        InterventionAction::Rollback => ("rolled_back", &["executed"]),
    };
    if state == done_state {
        return Ok(json!({ "intervention_id": id, "state": state, "changed": false }));
    }
    if !allowed.contains(&state.as_str()) {
        return Err(JobError::Invalid(format!("intervention {id} is {state}")));
    }
    let current: Option<i64> = sqlx::query_scalar(
        "SELECT target_id FROM relations WHERE source_id = $1 AND kind = 'reports_to'",
    )
    .bind(employee)
    .fetch_optional(&mut *tx)
    .await?;
    let target = match action {
        InterventionAction::Execute => Some(new_manager),
        InterventionAction::Rollback => old_manager,
    };
    // The manager-to-be must not report (through others) to the employee. A rollback is checked
    // too: the lines may have changed since the intervention was executed.
    if let Some(manager) = target
        && reporting::would_loop(&mut tx, employee, manager).await?
    {
        return Err(JobError::Invalid(format!(
            "employee {manager} reports to {employee}: reporting to them would make a loop"
        )));
    }
    sqlx::query("DELETE FROM relations WHERE source_id = $1 AND kind = 'reports_to'")
        .bind(employee)
        .execute(&mut *tx)
        .await?;
    if let Some(manager) = target {
        sqlx::query(
            "INSERT INTO relations (source_id, target_id, kind, weight) VALUES ($1, $2, 'reports_to', 1)",
        )
        .bind(employee)
        .bind(manager)
        .execute(&mut *tx)
        .await
        .map_err(|e| match e.as_database_error().and_then(|d| d.code()).as_deref() {
            Some("23503") => JobError::Invalid(format!("employee {manager} no longer exists")),
            _ => JobError::from(e),
        })?;
    }
    match action {
        InterventionAction::Execute => sqlx::query(
            "UPDATE interventions SET state = 'executed', old_manager_id = $2, executed_at = now() \
             WHERE id = $1",
        )
        .bind(id)
        .bind(current),
        InterventionAction::Rollback => sqlx::query(
            "UPDATE interventions SET state = 'rolled_back', rolled_back_at = now() WHERE id = $1",
        )
        .bind(id),
    }
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(json!({
        "intervention_id": id,
        "state": done_state,
        "changed": true,
        "employee_id": employee,
        "manager_before": current,
        "manager_after": target,
    }))
}
