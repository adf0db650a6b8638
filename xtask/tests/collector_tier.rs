//! The HA collector tier's configs against the single collector's, so that they cannot drift:
//!
//! * collector/gateway.yaml serves what collector-config.yaml serves, the same way: its
//!   processors, its pipelines' processors, its Prometheus exporter (every key but
//!   `send_timestamps`, which the gateways need on and the single collector has off), its Jaeger
//!   exporter, its OTLP gRPC receiver, its health extension and its own telemetry are
//!   collector-config.yaml's;
//! * collector/agent.yaml sends every pipeline of collector-config.yaml to the gateways (a
//!   pipeline added there later must be routed too), metrics by resource and spans by trace id,
//!   and the resolver overlays (compose's DNS one, the static one) change only the resolvers;
//! * `otelcol validate` (the collector the tests run, built from collector/builder-config.yaml)
//!   accepts every way the collector runs (`xtask::collector_tier::configurations`), and refuses
//!   the agent without a resolver, so the check reaches the exporters.

use anyhow::Context;
use serde_norway::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use xtask::collector_tier;

/// The exporters the agent routes with: metrics by resource (so each service instance's series
/// are on one gateway), spans by trace id (so a trace stays whole).
const ROUTES: [(&str, &str, &str); 2] = [
    ("metrics", "load_balancing/metrics", "resource"),
    ("traces", "load_balancing/traces", "traceID"),
];

#[test]
fn the_gateway_serves_like_the_single_collector_but_with_sample_timestamps() -> anyhow::Result<()> {
    let single = read("collector-config.yaml")?;
    let gateway = read("collector/gateway.yaml")?;
    let mut problems = Vec::new();
    let mut same = |path: &[&str]| {
        let (a, b) = (at(&single, path), at(&gateway, path));
        if a.is_none() || a != b {
            problems.push(format!(
                "{}: gateway.yaml has {b:?}, collector-config.yaml {a:?}",
                path.join(".")
            ));
        }
    };
    same(&["extensions"]);
    same(&["service", "extensions"]);
    same(&["receivers", "otlp", "protocols", "grpc"]);
    same(&["exporters", "otlp_grpc/jaeger"]);
    same(&["service", "telemetry"]);
    let processors = at(&gateway, &["processors"]).and_then(Value::as_mapping);
    anyhow::ensure!(processors.is_some_and(|p| !p.is_empty()), "gateway.yaml: no processors");
    for name in processors.into_iter().flatten().filter_map(|(k, _)| k.as_str()) {
        same(&["processors", name]);
    }
    for pipeline in ["metrics", "traces"] {
        same(&["service", "pipelines", pipeline, "processors"]);
    }
    // The Prometheus exporter: equal but for send_timestamps (true on the gateways).
    let exporter = |doc: &Value| {
        let mut e = at(doc, &["exporters", "prometheus"]).cloned().unwrap_or(Value::Null);
        let stamps = e.as_mapping_mut().and_then(|m| m.remove("send_timestamps"));
        (e, stamps.and_then(|v| v.as_bool()))
    };
    let ((single_exporter, single_stamps), (gateway_exporter, gateway_stamps)) =
        (exporter(&single), exporter(&gateway));
    if single_exporter.is_null() || single_exporter != gateway_exporter {
        problems.push(format!(
            "exporters.prometheus: gateway.yaml has {gateway_exporter:?}, collector-config.yaml \
             {single_exporter:?} (apart from send_timestamps)"
        ));
    }
    if gateway_stamps != Some(true) || single_stamps != Some(false) {
        problems.push(format!(
            "send_timestamps: {gateway_stamps:?} in gateway.yaml (must be true: a series that \
             moves between gateways keeps only the newer samples), {single_stamps:?} in \
             collector-config.yaml (must be false)"
        ));
    }
    // The gateway serves the metrics and sends the spans on, as the single collector does.
    for (pipeline, exporter) in [("metrics", "prometheus"), ("traces", "otlp_grpc/jaeger")] {
        let exporters = strings(&gateway, &["service", "pipelines", pipeline, "exporters"]);
        if exporters != [exporter] {
            problems.push(format!("gateway.yaml: pipeline {pipeline} exports to {exporters:?}"));
        }
        let receivers = strings(&gateway, &["service", "pipelines", pipeline, "receivers"]);
        if receivers != ["otlp"] {
            problems.push(format!("gateway.yaml: pipeline {pipeline} receives from {receivers:?}"));
        }
    }
    report("gateway vs collector-config", problems)
}

#[test]
fn the_agent_routes_every_pipeline_of_the_single_collector() -> anyhow::Result<()> {
    let single = read("collector-config.yaml")?;
    let agent = read("collector/agent.yaml")?;
    let pipelines = at(&single, &["service", "pipelines"])
        .and_then(Value::as_mapping)
        .context("collector-config.yaml: no pipelines")?;
    let agent_pipelines = at(&agent, &["service", "pipelines"])
        .and_then(Value::as_mapping)
        .context("agent.yaml: no pipelines")?;
    let mut problems = Vec::new();
    for name in pipelines.keys().filter_map(Value::as_str) {
        let signal = name.split('/').next().unwrap_or_default();
        let Some((_, exporter, _)) = ROUTES.iter().find(|(s, _, _)| *s == signal) else {
            problems.push(format!("pipeline {name}: no route for {signal} in agent.yaml"));
            continue;
        };
        let overridden = agent_pipelines.get(name);
        let keys: Vec<&str> = overridden
            .and_then(Value::as_mapping)
            .map(|m| m.keys().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let exporters = strings(&agent, &["service", "pipelines", name, "exporters"]);
        if keys != ["exporters"] || exporters != [*exporter] {
            problems.push(format!(
                "pipeline {name}: agent.yaml must override only its exporters, with \
                 [{exporter}] (found {overridden:?})"
            ));
        }
    }
    for name in agent_pipelines.keys().filter_map(Value::as_str) {
        if !pipelines.contains_key(name) {
            problems
                .push(format!("agent.yaml: pipeline {name} is none of collector-config.yaml's"));
        }
    }
    for (_, exporter, key) in ROUTES {
        let routing = at(&agent, &["exporters", exporter, "routing_key"]).and_then(Value::as_str);
        if routing != Some(key) {
            problems.push(format!("agent.yaml: {exporter} routes by {routing:?}, not {key}"));
        }
    }
    // The resolver overlays set the resolvers of those exporters, and nothing else.
    let dns = read("collector/gateways-dns.yaml")?;
    let fixed: Value = serde_norway::from_str(collector_tier::STATIC_GATEWAYS)?;
    for (what, overlay) in [("gateways-dns.yaml", &dns), ("the static overlay", &fixed)] {
        let top: Vec<&str> = overlay
            .as_mapping()
            .map(|m| m.keys().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let exporters: Vec<&str> = at(overlay, &["exporters"])
            .and_then(Value::as_mapping)
            .map(|m| m.keys().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let expected: Vec<&str> = ROUTES.iter().map(|(_, e, _)| *e).collect();
        if top != ["exporters"] || exporters != expected {
            problems
                .push(format!("{what}: sets {top:?} / {exporters:?}, expected only {expected:?}"));
        }
        for exporter in &expected {
            let keys: Vec<&str> = at(overlay, &["exporters", exporter])
                .and_then(Value::as_mapping)
                .map(|m| m.keys().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if keys != ["resolver"] {
                problems
                    .push(format!("{what}: {exporter} sets {keys:?}, expected only the resolver"));
            }
        }
    }
    report("agent routing", problems)
}

#[test]
fn otelcol_validates_every_way_the_collector_runs() -> anyhow::Result<()> {
    let scratch = testkit::ScratchDir::new("collector-tier")?;
    let gateways = scratch.path().join("static-gateways.yaml");
    std::fs::write(&gateways, collector_tier::STATIC_GATEWAYS)?;
    let configurations = collector_tier::configurations(&gateways);
    anyhow::ensure!(configurations.len() == 4, "expected four configurations: {configurations:?}");
    for (name, files) in &configurations {
        validate(files).with_context(|| format!("{name}: {files:?}"))?;
    }
    // Without a resolver the agent is refused: validate builds the exporters, so the runs above
    // checked the loadbalancing exporters too.
    let no_resolver =
        [PathBuf::from("collector-config.yaml"), PathBuf::from("collector/agent.yaml")];
    let refused = validate(&no_resolver);
    anyhow::ensure!(
        refused.as_ref().is_err_and(|e| format!("{e:#}").contains("resolver")),
        "otelcol validate accepted the agent without a resolver: {refused:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// `otelcol validate --config <file>...`, in the repo root.
fn validate(files: &[PathBuf]) -> anyhow::Result<()> {
    let otelcol = testkit::tools::require(&testkit::tools::otelcol_path()?, "otelcol")?;
    let mut command = Command::new(otelcol);
    command.arg("validate").current_dir(testkit::repo_root());
    for file in files {
        command.arg("--config").arg(file);
    }
    testkit::process::output("otelcol validate", &mut command, Duration::from_secs(120))
        .context(
            "otelcol validate failed (a collector built before the loadbalancing exporter was \
             added to collector/builder-config.yaml? `cargo xtask tools` rebuilds it)",
        )
        .map(|_| ())
}

fn read(file: &str) -> anyhow::Result<Value> {
    xtask::yaml::read(&testkit::repo_root().join(Path::new(file)))
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

fn strings(value: &Value, path: &[&str]) -> Vec<String> {
    at(value, path)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn report(what: &str, problems: Vec<String>) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!("{what}: {} problem(s):\n  {}", problems.len(), problems.join("\n  "))
}
