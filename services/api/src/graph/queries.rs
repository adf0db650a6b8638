//! The graph's SQL, one function per operation, each taking a connection; an operation of several
//! statements runs them in a transaction of its own (a savepoint in the caller's). Constraint
//! violations come back as [`GraphError`]s the handlers turn into
//! 404/409/422; anything else stays an `sqlx::Error`.

use super::model::{
    DegreeSummary, Employee, GraphStats, NewEmployee, NewRelation, Relation, RelationKind,
};
use super::seed::SeedGraph;
use domain::reporting;
use sqlx::Connection;
use sqlx::{PgConnection, Row};

/// A write the database refused because of the data.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// A referenced employee does not exist.
    #[error("{0}")]
    UnknownEmployee(String),
    /// The relation already exists, or the employee already has a manager.
    #[error("{0}")]
    Duplicate(String),
    /// The manager-to-be reports (through others) to the employee.
    #[error("{0}")]
    Loop(String),
    /// Any other database error.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Up to `limit` employees with ids above `after`.
pub async fn page(
    conn: &mut PgConnection,
    after: i64,
    limit: i64,
) -> Result<Vec<Employee>, sqlx::Error> {
    sqlx::query_as::<_, Employee>(
        "SELECT id, name, team, title FROM employees WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// One employee.
pub async fn employee(conn: &mut PgConnection, id: i64) -> Result<Option<Employee>, sqlx::Error> {
    sqlx::query_as::<_, Employee>("SELECT id, name, team, title FROM employees WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Adds an employee.
pub async fn insert_employee(
    conn: &mut PgConnection,
    new: &NewEmployee,
) -> Result<Employee, sqlx::Error> {
    sqlx::query_as::<_, Employee>(
        "INSERT INTO employees (name, team, title) VALUES ($1, $2, $3) \
         RETURNING id, name, team, title",
    )
    .bind(&new.name)
    .bind(&new.team)
    .bind(&new.title)
    .fetch_one(conn)
    .await
}

/// Deletes an employee and its relations; false if there was none.
pub async fn delete_employee(conn: &mut PgConnection, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM employees WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// Adds a relation. A reporting line is checked against the lines as they are, under their lock
/// (`domain::reporting`), in the transaction that adds it.
pub async fn insert_relation(
    conn: &mut PgConnection,
    new: &NewRelation,
) -> Result<Relation, GraphError> {
    let mut tx = conn.begin().await?;
    if new.kind == RelationKind::ReportsTo {
        reporting::lock(&mut tx).await?;
        if reporting::would_loop(&mut tx, new.source_id, new.target_id).await? {
            return Err(GraphError::Loop(format!(
                "employee {} reports to {}: reporting to them would make a loop",
                new.target_id, new.source_id
            )));
        }
    }
    let row = sqlx::query(
        "INSERT INTO relations (source_id, target_id, kind, weight) VALUES ($1, $2, $3, $4) \
         RETURNING id",
    )
    .bind(new.source_id)
    .bind(new.target_id)
    .bind(new.kind.as_str())
    .bind(new.weight)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match e.as_database_error().and_then(|d| d.code()).as_deref() {
        Some("23503") => GraphError::UnknownEmployee(format!(
            "employee {} or {} does not exist",
            new.source_id, new.target_id
        )),
        Some("23505") => GraphError::Duplicate(match new.kind {
            RelationKind::ReportsTo => {
                format!("employee {} already has a manager, or this relation exists", new.source_id)
            }
            _ => "this relation already exists".to_string(),
        }),
        _ => GraphError::Db(e),
    })?;
    tx.commit().await?;
    Ok(Relation {
        id: row.get("id"),
        source_id: new.source_id,
        target_id: new.target_id,
        kind: new.kind,
        weight: new.weight,
    })
}

/// Deletes a relation; false if there was none.
pub async fn delete_relation(conn: &mut PgConnection, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM relations WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// Node and edge counts (for the graph gauges).
pub async fn counts(conn: &mut PgConnection) -> Result<(i64, i64), sqlx::Error> {
    let row = sqlx::query(
        "SELECT (SELECT count(*) FROM employees) AS nodes, (SELECT count(*) FROM relations) AS edges",
    )
    .fetch_one(conn)
    .await?;
    Ok((row.get("nodes"), row.get("edges")))
}

/// The whole graph's statistics, computed in one statement.
pub async fn stats(conn: &mut PgConnection) -> Result<GraphStats, sqlx::Error> {
    let row = sqlx::query(
        "WITH ends AS (SELECT source_id AS id FROM relations UNION ALL SELECT target_id FROM relations), \
              deg AS (SELECT e.id, count(x.id) AS d FROM employees e LEFT JOIN ends x ON x.id = e.id GROUP BY e.id) \
         SELECT (SELECT count(*) FROM employees) AS nodes, \
                (SELECT count(*) FROM relations) AS edges, \
                (SELECT count(DISTINCT team) FROM employees) AS teams, \
                coalesce(min(d), 0)::int8 AS min_d, coalesce(max(d), 0)::int8 AS max_d, \
                coalesce(avg(d), 0)::float8 AS mean_d, \
                coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY d), 0)::float8 AS median_d \
         FROM deg",
    )
    .fetch_one(conn)
    .await?;
    let nodes: i64 = row.get("nodes");
    let edges: i64 = row.get("edges");
    let density = if nodes > 1 { edges as f64 / (nodes as f64 * (nodes - 1) as f64) } else { 0.0 };
    Ok(GraphStats {
        nodes,
        edges,
        teams: row.get("teams"),
        density,
        degree: DegreeSummary {
            min: row.get("min_d"),
            max: row.get("max_d"),
            mean: row.get("mean_d"),
            median: row.get("median_d"),
        },
    })
}

/// How often [`replace_graph`] tries when Postgres picks it as a deadlock's victim.
const SEED_ATTEMPTS: u32 = 3;

/// Replaces the whole graph (and everything that hangs off it) with `graph`, in one transaction;
/// employee ids become 1..=n in generation order. The truncation takes every table's exclusive
/// lock, so a query holding one of them while waiting for another (the node/edge counts read
/// employees then relations; adding a relation locks relations then employees) can deadlock
/// with it. The tables are truncated in the readers' order, which makes that rare, and Postgres
/// breaks a deadlock by failing one side: when the seed is that side (SQLSTATE 40P01), it tries
/// again, up to [`SEED_ATTEMPTS`] times, since nothing of the failed attempt was kept.
pub async fn replace_graph(
    conn: &mut PgConnection,
    graph: &SeedGraph,
) -> Result<(i64, i64), sqlx::Error> {
    let mut attempt = 1;
    loop {
        match replace_graph_once(&mut *conn, graph).await {
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("40P01") && attempt < SEED_ATTEMPTS =>
            {
                tracing::warn!(attempt, "seeding the graph was a deadlock's victim; trying again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn replace_graph_once(
    conn: &mut PgConnection,
    graph: &SeedGraph,
) -> Result<(i64, i64), sqlx::Error> {
    let mut tx = conn.begin().await?;
    let conn = &mut *tx;
    sqlx::query(
        "TRUNCATE employees, relations, interventions, influence_scores RESTART IDENTITY CASCADE",
    )
    .execute(&mut *conn)
    .await?;
    let ids: Vec<i64> = (1..=graph.employees.len() as i64).collect();
    let names: Vec<&str> = graph.employees.iter().map(|e| e.name.as_str()).collect();
    let teams: Vec<&str> = graph.employees.iter().map(|e| e.team.as_str()).collect();
    let titles: Vec<&str> = graph.employees.iter().map(|e| e.title.as_str()).collect();
    sqlx::query(
        "INSERT INTO employees (id, name, team, title) \
         SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[])",
    )
    .bind(&ids)
    .bind(&names)
    .bind(&teams)
    .bind(&titles)
    .execute(&mut *conn)
    .await?;
    sqlx::query("SELECT setval('employees_id_seq', greatest($1, 1))")
        .bind(ids.len() as i64)
        .execute(&mut *conn)
        .await?;
    let sources: Vec<i64> = graph.relations.iter().map(|r| r.source as i64 + 1).collect();
    let targets: Vec<i64> = graph.relations.iter().map(|r| r.target as i64 + 1).collect();
    let kinds: Vec<&str> = graph.relations.iter().map(|r| r.kind.as_str()).collect();
    let weights: Vec<f64> = graph.relations.iter().map(|r| r.weight).collect();
    sqlx::query(
        "INSERT INTO relations (source_id, target_id, kind, weight) \
         SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], $4::float8[])",
    )
    .bind(&sources)
    .bind(&targets)
    .bind(&kinds)
    .bind(&weights)
    .execute(&mut *conn)
    .await?;
    tx.commit().await?;
    Ok((ids.len() as i64, sources.len() as i64))
}
