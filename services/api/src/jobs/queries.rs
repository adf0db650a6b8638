//! The `jobs` table's SQL, one function per operation, each taking a connection.

use super::JobView;
use domain::JobKind;
use otel::catalogue::Label;
use serde_json::Value;
use sqlx::{Connection, PgConnection, Row};
use uuid::Uuid;

/// Records a job of `kind` with `params` and puts it on its queue, in one transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    kind: JobKind,
    params: &Value,
) -> Result<Uuid, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let id = domain::enqueue(&mut tx, kind, params).await?;
    tx.commit().await?;
    Ok(id)
}

/// Reads a job of one of `kinds`.
pub async fn fetch(
    conn: &mut PgConnection,
    id: Uuid,
    kinds: &[JobKind],
) -> Result<Option<JobView>, sqlx::Error> {
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let row = sqlx::query(
        "SELECT id, kind, status, params, result, error, attempts, created_at, started_at, \
                finished_at \
         FROM jobs WHERE id = $1 AND kind = ANY($2)",
    )
    .bind(id)
    .bind(&kinds)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| JobView {
        id: r.get("id"),
        kind: r.get("kind"),
        status: r.get("status"),
        params: r.get("params"),
        result: r.get("result"),
        error: r.get("error"),
        attempts: r.get("attempts"),
        created_at: r.get("created_at"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
    }))
}
