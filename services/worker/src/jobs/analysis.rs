//! The causal-analysis job: loads the org graph, computes influence scores (PageRank and sampled
//! betweenness) and the estimated effect of each proposed intervention on a blocking thread (the
//! CPU work grows with the graph and must not stall the runtime), then replaces this job's scores
//! in one transaction, so a retried or redelivered run leaves one set.

use crate::analysis::{self, Graph, estimate_reassign};
use crate::context::Ctx;
use crate::runner::{JobError, JobRow, joined};
use serde_json::{Value, json};
use std::collections::HashMap;
use uuid::Uuid;

/// Runs an analysis job.
pub async fn run(ctx: Ctx, row: JobRow) -> Result<Value, JobError> {
    let param = |key: &str, default: u32| {
        row.params
            .get(key)
            .and_then(Value::as_u64)
            .map_or(default, |v| v.min(u64::from(u32::MAX)) as u32)
    };
    let (iterations, samples) = (param("iterations", 30), param("samples", 64));
    // Deterministic for a job: a rerun samples the same betweenness sources.
    let seed = u64::from_le_bytes(row.id.as_bytes()[..8].try_into().unwrap_or_default());

    // One snapshot for the three reads: read apart, an edge added between them could point at an
    // employee the job never loaded, and the graph could not be built.
    let mut tx = ctx.pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let ids: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM employees ORDER BY id").fetch_all(&mut *tx).await?;
    let edges: Vec<(i64, i64, String, f64)> =
        sqlx::query_as("SELECT source_id, target_id, kind, weight FROM relations")
            .fetch_all(&mut *tx)
            .await?;
    let open: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT id, employee_id, new_manager_id FROM interventions WHERE state = 'proposed' ORDER BY created_at",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;

    let cancelled = row.cancelled.clone();
    let computed = tokio::task::spawn_blocking(move || {
        let graph =
            Graph::from_rows(ids, edges.iter().map(|(s, t, k, w)| (*s, *t, k.as_str(), *w)))
                .map_err(|e| JobError::Invalid(format!("the graph cannot be analysed: {e}")))?;
        let result = analysis::analyse_until(&graph, iterations, samples, seed, &cancelled)
            .ok_or_else(|| JobError::Invalid("cancelled: the attempt was given up".into()))?;
        let pagerank: Vec<f64> = result.nodes.iter().map(|n| n.pagerank).collect();
        let index: HashMap<i64, usize> =
            graph.ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let effects: Vec<Value> = open
            .iter()
            .map(|(id, employee, manager)| {
                let effect = match (index.get(employee), index.get(manager)) {
                    (Some(&e), Some(&m)) => estimate_reassign(&graph, &pagerank, e, m)
                        .map(|fx| {
                            json!({
                                "influence_shift": fx.influence_shift,
                                "current_manager_id": fx.current_manager.map(|i| graph.ids[i]),
                                "team_size_change_old": fx.team_size_change_old,
                                "team_size_change_new": fx.team_size_change_new,
                            })
                        })
                        .unwrap_or_else(|e| json!({ "refused": e.to_string() })),
                    _ => json!({ "refused": "an employee of the intervention no longer exists" }),
                };
                json!({ "intervention_id": id, "effect": effect })
            })
            .collect();
        Ok::<_, JobError>((result, effects))
    })
    .await;
    let (result, effects) = joined(computed, "analysis")??;

    let employee_ids: Vec<i64> = result.nodes.iter().map(|n| n.id).collect();
    let pageranks: Vec<f64> = result.nodes.iter().map(|n| n.pagerank).collect();
    let betweenness: Vec<f64> = result.nodes.iter().map(|n| n.betweenness).collect();
    let mut tx = ctx.pool.begin().await?;
    sqlx::query("DELETE FROM influence_scores WHERE job_id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO influence_scores (job_id, employee_id, pagerank, betweenness) \
         SELECT $1, * FROM unnest($2::int8[], $3::float8[], $4::float8[])",
    )
    .bind(row.id)
    .bind(&employee_ids)
    .bind(&pageranks)
    .bind(&betweenness)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(json!({ "summary": result.summary, "interventions": effects }))
}
