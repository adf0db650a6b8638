//! No panel of `grafana/dashboards/` and no rule of `prometheus/rules/` sums a shared gauge over
//! instances. A shared gauge (`Scope::Shared` in the catalogue, listed in docs/METRICS.md "Across
//! instances") is one thing every instance reads alike, e.g. the queue depth every worker reads
//! from Postgres: with two workers a `sum` makes the queue twice as deep. `max` (or `min`, `avg`)
//! over instances is the one value; a `sum` that keeps `instance` (`sum by (job, instance)`) shows
//! each instance's reading; a `sum` over what was first reduced to one value per group
//! (`sum(max by (queue) (...))`, every queue's depth) adds different things and is fine.
//!
//! The shared gauges come from the catalogue (`xtask::dashboards::shared_gauges`), so a gauge
//! marked shared there is checked here without a list to keep.

use promql_parser::label::Matchers;
use promql_parser::parser::{self as promql, Expr, LabelModifier};
use xtask::dashboards::{self, SharedGauge};

/// Whether an aggregation's grouping keeps the `instance` label (`by (..., instance)`, or
/// `without` labels other than it): it then combines no instances.
fn keeps_instance(modifier: &Option<LabelModifier>) -> bool {
    match modifier {
        Some(LabelModifier::Include(by)) => by.labels.iter().any(|l| l == "instance"),
        Some(LabelModifier::Exclude(without)) => !without.labels.iter().any(|l| l == "instance"),
        None => false,
    }
}

/// The shared gauge a selector may read, if any: its name is one, and its matchers let the
/// shared series through (`orgraph_cache_items{cache_layer="l1"}` reads the instance's own).
fn shared_read<'a>(
    name: Option<&str>,
    matchers: &Matchers,
    shared: &'a [SharedGauge],
) -> Option<&'a SharedGauge> {
    let by_name = matchers.matchers.iter().find(|m| m.name == "__name__").map(|m| m.value.as_str());
    let name = name.or(by_name)?;
    let gauge = shared.iter().find(|g| g.series == name)?;
    let Some((label, value)) = &gauge.only_when else { return Some(gauge) };
    let allows = |ms: &[promql_parser::label::Matcher]| {
        ms.iter().filter(|m| &m.name == label).all(|m| m.is_match(value))
    };
    let through = allows(&matchers.matchers)
        && (matchers.or_matchers.is_empty() || matchers.or_matchers.iter().any(|ms| allows(ms)));
    through.then_some(gauge)
}

/// The shared gauges `expr` passes on per instance: read by a selector and not yet reduced over
/// instances by an aggregation (a `max`, or a `sum`, which [`shared_sums`] reports at its own
/// place). The right side of `and`/`unless` only filters and passes nothing on.
fn exposed(expr: &Expr, shared: &[SharedGauge]) -> Vec<String> {
    let read = |name: Option<&String>, matchers: &Matchers| {
        shared_read(name.map(String::as_str), matchers, shared)
            .map(|g| vec![g.series.clone()])
            .unwrap_or_default()
    };
    match expr {
        Expr::VectorSelector(vs) => read(vs.name.as_ref(), &vs.matchers),
        Expr::MatrixSelector(ms) => read(ms.vs.name.as_ref(), &ms.vs.matchers),
        Expr::Aggregate(a) => {
            let selects = ["topk", "bottomk", "limitk", "limit_ratio"];
            if keeps_instance(&a.modifier)
                || (a.modifier.is_none() && selects.contains(&a.op.to_string().as_str()))
            {
                exposed(&a.expr, shared)
            } else {
                Vec::new()
            }
        }
        Expr::Binary(b) if ["and", "unless"].contains(&b.op.to_string().as_str()) => {
            exposed(&b.lhs, shared)
        }
        Expr::Binary(b) => [exposed(&b.lhs, shared), exposed(&b.rhs, shared)].concat(),
        Expr::Paren(e) => exposed(&e.expr, shared),
        Expr::Unary(e) => exposed(&e.expr, shared),
        Expr::Subquery(e) => exposed(&e.expr, shared),
        Expr::Call(call) => call.args.args.iter().flat_map(|a| exposed(a, shared)).collect(),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => Vec::new(),
    }
}

/// Every `sum` of `expr` that adds a shared gauge's readings of several instances: `sum(<the
/// aggregation>) over <gauge>`, as text.
fn shared_sums(expr: &Expr, shared: &[SharedGauge]) -> Vec<String> {
    let mut out = Vec::new();
    if let Expr::Aggregate(a) = expr
        && a.op.to_string() == "sum"
        && !keeps_instance(&a.modifier)
    {
        out.extend(exposed(&a.expr, shared).into_iter().map(|g| format!("`{expr}` sums {g}")));
    }
    let children: Vec<&Expr> = match expr {
        Expr::Aggregate(a) => a.param.iter().chain([&a.expr]).map(|e| e.as_ref()).collect(),
        Expr::Binary(b) => vec![&b.lhs, &b.rhs],
        Expr::Paren(e) => vec![&e.expr],
        Expr::Unary(e) => vec![&e.expr],
        Expr::Subquery(e) => vec![&e.expr],
        Expr::Call(call) => call.args.args.iter().map(|a| a.as_ref()).collect(),
        _ => Vec::new(),
    };
    out.extend(children.into_iter().flat_map(|c| shared_sums(c, shared)));
    out
}

/// The problems of one query: its shared sums, or why it does not parse.
fn check(at: &str, expr: &str, shared: &[SharedGauge]) -> Vec<String> {
    match promql::parse(expr) {
        Ok(tree) => shared_sums(&tree, shared).into_iter().map(|s| format!("{at}: {s}")).collect(),
        Err(e) => vec![format!("{at}: `{expr}` is not PromQL: {e}")],
    }
}

fn report(problems: Vec<String>) {
    assert!(problems.is_empty(), "{} problem(s):\n  {}", problems.len(), problems.join("\n  "));
}

#[test]
fn the_catalogue_marks_the_queue_graph_and_l2_cache_gauges_shared() {
    let shared = dashboards::shared_gauges();
    let names: Vec<&str> = shared.iter().map(|g| g.series.as_str()).collect();
    for expected in ["orgraph_queue_jobs", "orgraph_graph_nodes", "orgraph_cache_items"] {
        assert!(names.contains(&expected), "{expected} not shared: {names:?}");
    }
    let items = shared.iter().find(|g| g.series == "orgraph_cache_items");
    let only_when = items.and_then(|g| g.only_when.clone());
    assert_eq!(only_when, Some(("cache_layer".to_string(), "l2".to_string())));
}

#[test]
fn sums_over_instances_of_shared_gauges_are_found() {
    let shared = dashboards::shared_gauges();
    let found = |expr: &str| !check("case", expr, &shared).is_empty();
    for summed in [
        r#"sum(orgraph_queue_jobs{job_state="pending"})"#,
        "sum by (messaging_destination_name) (orgraph_queue_jobs)",
        "sum without (instance) (orgraph_queue_jobs)",
        "sum by (job) (orgraph_graph_nodes * 2)",
        "sum(orgraph_queue_jobs unless on (job, instance) frozen)",
        "sum(max by (job, instance) (orgraph_queue_jobs))",
        "sum(rate(orgraph_queue_jobs[5m]))",
        r#"sum(orgraph_cache_items{cache_layer="l2"})"#,
        r#"sum(orgraph_cache_items{cache_layer=~"l1|l2"})"#,
        "sum(orgraph_cache_items)",
        r#"sum({__name__="orgraph_queue_jobs"})"#,
        "1 + sum(topk(3, orgraph_queue_jobs))",
    ] {
        assert!(found(summed), "not found: {summed}");
    }
    for fine in [
        "max by (messaging_destination_name) (orgraph_queue_jobs)",
        "sum(max by (messaging_destination_name) (orgraph_queue_jobs))",
        "sum by (job, instance, cache_layer) (orgraph_cache_items)",
        "sum without (job_state) (orgraph_queue_jobs)",
        r#"sum(orgraph_cache_items{cache_layer="l1"})"#,
        r#"sum(orgraph_cache_items{cache_layer!="l2"})"#,
        "sum(db_client_connection_count)",
        "sum(db_client_connection_max and on (job) orgraph_queue_jobs)",
        "count(orgraph_queue_jobs)",
    ] {
        assert!(!found(fine), "found in: {fine}");
    }
}

#[test]
fn no_panel_sums_a_shared_gauge_over_instances() {
    let shared = dashboards::shared_gauges();
    let queries = dashboards::queries();
    assert!(!queries.is_empty(), "no dashboard query read");
    let problems = queries
        .iter()
        .flat_map(|(dashboard, panel, expr)| {
            check(&format!("{dashboard} / panel {panel:?}"), expr, &shared)
        })
        .collect();
    report(problems);
}

#[test]
fn no_rule_sums_a_shared_gauge_over_instances() {
    let shared = dashboards::shared_gauges();
    let rules = dashboards::rule_exprs();
    assert!(rules.iter().any(|(_, name, _)| name == "QueueDepthHigh"), "alerts.yaml not read");
    let problems = rules
        .iter()
        .flat_map(|(file, name, expr)| check(&format!("{file} / {name}"), expr, &shared))
        .collect();
    report(problems);
}
