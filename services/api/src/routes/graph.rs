//! `/api/graph/*`: statistics (cached), the paged employee list, adding and removing employees
//! and relations, and seeding a generated graph. Every change is timed
//! (`orgraph.graph.update.duration` by operation) and drops the cached statistics.

use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::graph::model::{
    Employee, EmployeePage, GraphStats, NewEmployee, NewRelation, Relation, SeedRequest, SeedResult,
};
use crate::graph::queries::{self, GraphError};
use crate::graph::seed::{self, MAX_AVG_REPORTS, MAX_EMPLOYEES};
use crate::state::AppState;
use crate::validate::{self, TextKind};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use otel::catalogue::GraphOperation;
use serde::Deserialize;
use std::time::Instant;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(list_nodes, add_node))
        .routes(routes!(get_node, delete_node))
        .routes(routes!(add_edge))
        .routes(routes!(delete_edge))
        .routes(routes!(seed_graph))
}

/// Graph statistics: node and edge counts, density, degree summary.
#[utoipa::path(get, path = "/api/graph/stats", tag = "graph",
    responses((status = 200, body = GraphStats)))]
async fn stats(State(state): State<AppState>) -> Result<axum::Json<GraphStats>, ApiError> {
    let stats = state.stats.get(&state.db).await?;
    Ok(axum::Json((*stats).clone()))
}

/// Paging through employees.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageParams {
    /// Employees per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Only employees with a larger id (default 0: from the start).
    #[param(minimum = 0)]
    after: Option<i64>,
}

/// A page of employees, by id.
#[utoipa::path(get, path = "/api/graph/nodes", tag = "graph", params(PageParams),
    responses((status = 200, body = EmployeePage)))]
async fn list_nodes(
    State(state): State<AppState>,
    Query(params): Query<PageParams>,
) -> Result<axum::Json<EmployeePage>, ApiError> {
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be 1 to 1000, not {limit}")));
    }
    let after = params.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::BadRequest(format!("after must not be negative, not {after}")));
    }
    let items = state.db.run(async |c| queries::page(c, after, limit).await).await?;
    let next_after = (items.len() as i64 == limit).then(|| items.last().map(|e| e.id)).flatten();
    Ok(axum::Json(EmployeePage { items, next_after }))
}

/// One employee.
#[utoipa::path(get, path = "/api/graph/nodes/{id}", tag = "graph",
    params(("id" = i64, Path, description = "Employee id")),
    responses((status = 200, body = Employee)))]
async fn get_node(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<axum::Json<Employee>, ApiError> {
    state
        .db
        .run(async |c| queries::employee(c, id).await)
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound(format!("no employee {id}")))
}

/// Adds an employee.
#[utoipa::path(post, path = "/api/graph/nodes", tag = "graph", request_body = NewEmployee,
    responses((status = 201, body = Employee)))]
async fn add_node(
    State(state): State<AppState>,
    Json(new): Json<NewEmployee>,
) -> Result<impl IntoResponse, ApiError> {
    validate::text("name", &new.name, TextKind::Line, 1, 200)?;
    validate::text("team", &new.team, TextKind::Line, 1, 100)?;
    validate::text("title", &new.title, TextKind::Line, 0, 100)?;
    let employee =
        timed(&state, GraphOperation::AddNode, async |c| queries::insert_employee(c, &new).await)
            .await?;
    let location = format!("/api/graph/nodes/{}", employee.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(employee)))
}

/// Removes an employee and its relations.
#[utoipa::path(delete, path = "/api/graph/nodes/{id}", tag = "graph",
    params(("id" = i64, Path, description = "Employee id")),
    responses((status = 204, description = "Removed, with its relations")))]
async fn delete_node(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let started = Instant::now();
    if state.db.run(async |c| queries::delete_employee(c, id).await).await? {
        changed(&state, GraphOperation::DeleteNode, started).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        // Nothing changed: no update to time, no cached statistics to drop.
        Err(ApiError::NotFound(format!("no employee {id}")))
    }
}

/// Adds a relation between two employees.
#[utoipa::path(post, path = "/api/graph/edges", tag = "graph", request_body = NewRelation,
    responses((status = 201, body = Relation),
        (status = 409, description = "The relation exists already, or would close a reporting loop")))]
async fn add_edge(
    State(state): State<AppState>,
    Json(new): Json<NewRelation>,
) -> Result<impl IntoResponse, ApiError> {
    if new.source_id == new.target_id {
        return Err(ApiError::Invalid("a relation needs two different employees".into()));
    }
    if !(new.weight > 0.0 && new.weight <= 100.0) {
        return Err(ApiError::Invalid(format!(
            "weight must be above 0 and at most 100, not {}",
            new.weight
        )));
    }
    let started = Instant::now();
    let relation = state
        .db
        .run(async |c| match queries::insert_relation(c, &new).await {
            Ok(r) => Ok(Ok(r)),
            Err(GraphError::Db(e)) => Err(e),
            Err(other) => Ok(Err(other)),
        })
        .await?
        .map_err(|e| match e {
            GraphError::UnknownEmployee(m) => ApiError::Invalid(m),
            GraphError::Duplicate(m) => ApiError::Conflict(m),
            GraphError::Loop(m) => ApiError::Conflict(m),
            GraphError::Db(e) => ApiError::from_db(e),
        })?;
    changed(&state, GraphOperation::AddEdge, started).await;
    let location = format!("/api/graph/edges/{}", relation.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(relation)))
}

/// Removes a relation.
#[utoipa::path(delete, path = "/api/graph/edges/{id}", tag = "graph",
    params(("id" = i64, Path, description = "Relation id")),
    responses((status = 204, description = "Removed")))]
async fn delete_edge(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let started = Instant::now();
    if state.db.run(async |c| queries::delete_relation(c, id).await).await? {
        changed(&state, GraphOperation::DeleteEdge, started).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        // Nothing changed: no update to time, no cached statistics to drop.
        Err(ApiError::NotFound(format!("no relation {id}")))
    }
}

/// Replaces the graph with a generated one (deterministic for a seed).
#[utoipa::path(post, path = "/api/graph/seed", tag = "graph", request_body = SeedRequest,
    responses((status = 201, body = SeedResult)))]
async fn seed_graph(
    State(state): State<AppState>,
    Json(request): Json<SeedRequest>,
) -> Result<impl IntoResponse, ApiError> {
    if !(1..=MAX_EMPLOYEES).contains(&request.employees) {
        return Err(ApiError::Invalid(format!(
            "employees must be 1 to {MAX_EMPLOYEES}, not {}",
            request.employees
        )));
    }
    if !(1..=MAX_AVG_REPORTS).contains(&request.avg_reports) {
        return Err(ApiError::Invalid(format!(
            "avg_reports must be 1 to {MAX_AVG_REPORTS}, not {}",
            request.avg_reports
        )));
    }
    let graph = tokio::task::spawn_blocking(move || {
        seed::generate(request.employees, request.avg_reports, request.seed)
    })
    .await
    .map_err(|e| ApiError::Internal(anyhow::anyhow!("seed generator: {e}")))?;
    let (nodes, edges) =
        timed(&state, GraphOperation::Seed, async |c| queries::replace_graph(c, &graph).await)
            .await?;
    Ok((StatusCode::CREATED, axum::Json(SeedResult { nodes, edges })))
}

/// Runs a graph change, then records its duration and drops the cached statistics.
async fn timed<T>(
    state: &AppState,
    operation: GraphOperation,
    f: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<T, sqlx::Error>,
) -> Result<T, ApiError> {
    let started = Instant::now();
    let value = state.db.run(f).await?;
    changed(state, operation, started).await;
    Ok(value)
}

async fn changed(state: &AppState, operation: GraphOperation, started: Instant) {
    state.graph_metrics.updated(operation, started.elapsed());
    state.stats.invalidate().await;
}
