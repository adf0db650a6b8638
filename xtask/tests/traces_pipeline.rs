//! The traces pipeline, from the collector to Jaeger: `collector-config.yaml`'s `traces` pipeline
//! as a file (the same processors as the services' metrics, one exporter to Jaeger with a bounded
//! queue, no `debug` unless `collector-debug.yaml` is merged in), both files as the real collector
//! validates them, and a span sent to the real collector coming back out of the real Jaeger's
//! query API (`jaeger/config.yaml`), the way Grafana's Jaeger data source reads it.

use anyhow::Context;
use serde_norway::Value;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use testkit::{Collector, Jaeger, http_get, http_post_json, tools};

/// The exporter the traces pipeline sends to Jaeger with.
const JAEGER_EXPORTER: &str = "otlp_grpc/jaeger";

fn config(file: &str) -> anyhow::Result<Value> {
    xtask::yaml::read(&testkit::repo_root().join(file))
}

fn strings(value: &Value) -> Vec<String> {
    value.as_sequence().into_iter().flatten().filter_map(Value::as_str).map(String::from).collect()
}

/// Merges `over` into `base` as the collector merges its `--config` files: maps key by key, any
/// other value (a list included) replaced whole.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(base), Value::Mapping(over)) => {
            for (key, value) in over {
                match base.get_mut(key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, over) => *base = over.clone(),
    }
}

#[test]
fn the_traces_pipeline_sends_to_jaeger_through_a_bounded_queue() -> anyhow::Result<()> {
    let doc = config("collector-config.yaml")?;
    let pipelines = &doc["service"]["pipelines"];
    let traces = &pipelines["traces"];
    assert_eq!(strings(&traces["receivers"]), ["otlp"]);
    assert_eq!(
        strings(&traces["processors"]),
        strings(&pipelines["metrics"]["processors"]),
        "the traces pipeline refuses data under memory pressure and batches as the metrics do"
    );
    assert_eq!(strings(&traces["exporters"]), [JAEGER_EXPORTER], "no `debug` unless opted in");
    let exporter = &doc["exporters"][JAEGER_EXPORTER];
    assert_eq!(
        exporter["endpoint"].as_str(),
        Some("${env:JAEGER_OTLP_ENDPOINT:-jaeger:4317}"),
        "compose's `jaeger` service by default, the native stack's through the variable"
    );
    assert_eq!(exporter["tls"]["insecure"].as_bool(), Some(true));
    let queue = &exporter["sending_queue"];
    assert_eq!(queue["enabled"].as_bool(), Some(true));
    assert_eq!(queue["sizer"].as_str(), Some("items"), "bounded in spans, not in batches");
    let size = queue["queue_size"].as_u64().context("sending_queue.queue_size")?;
    assert!((1..=100_000).contains(&size), "queue_size {size}: bounded, and not zero");
    assert!(doc["exporters"].get("debug").is_none(), "debug lives in collector-debug.yaml");
    Ok(())
}

#[test]
fn collector_debug_yaml_adds_debug_to_the_traces_pipeline_and_keeps_jaeger() -> anyhow::Result<()> {
    let mut merged = config("collector-config.yaml")?;
    let main_exporters = strings(&merged["service"]["pipelines"]["traces"]["exporters"]);
    merge(&mut merged, &config("collector-debug.yaml")?);
    let exporters = strings(&merged["service"]["pipelines"]["traces"]["exporters"]);
    for exporter in main_exporters.iter().map(String::as_str).chain(["debug"]) {
        assert!(exporters.iter().any(|e| e == exporter), "{exporter} missing from {exporters:?}");
    }
    assert!(merged["exporters"].get("debug").is_some());
    // The other pipelines are untouched.
    let pipelines = merged["service"]["pipelines"].as_mapping().context("pipelines")?;
    let base = config("collector-config.yaml")?;
    for (name, pipeline) in pipelines.iter().filter(|(name, _)| name.as_str() != Some("traces")) {
        assert_eq!(Some(pipeline), base["service"]["pipelines"].get(name), "{name:?}");
    }
    Ok(())
}

/// The real collector accepts both files, alone and merged.
#[test]
fn the_collector_validates_both_configs() -> anyhow::Result<()> {
    let otelcol = tools::require(&tools::otelcol_path()?, "otelcol")?;
    let root = testkit::repo_root();
    for configs in
        [&["collector-config.yaml"][..], &["collector-config.yaml", "collector-debug.yaml"]]
    {
        let mut command = Command::new(&otelcol);
        command.arg("validate").current_dir(&root);
        for file in configs {
            command.arg("--config").arg(file);
        }
        testkit::process::output("otelcol validate", &mut command, Duration::from_secs(60))
            .with_context(|| format!("otelcol validate {configs:?}"))?;
    }
    Ok(())
}

/// One span over OTLP/HTTP (JSON) to the collector, found by Jaeger's query API by id and by the
/// search the dashboards' trace links make (service, operation, time range, minDuration).
#[test]
fn a_span_sent_to_the_collector_is_served_by_jaeger() -> anyhow::Result<()> {
    let jaeger = Jaeger::start()?;
    let collector =
        Collector::start_with(&[("JAEGER_OTLP_ENDPOINT", &jaeger.otlp_grpc_endpoint())])?;
    // 32 hex digits without leading zeros (Jaeger prints ids without them).
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let trace_id = format!("{:032x}", nanos | (1 << 127));
    let end = SystemTime::now().duration_since(UNIX_EPOCH)?;
    let start = end - Duration::from_millis(750);
    let body = serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "api"}},
                {"key": "service.namespace", "value": {"stringValue": "orgraph"}},
            ]},
            "scopeSpans": [{"spans": [{
                "traceId": trace_id,
                "spanId": "00f067aa0ba902b7",
                "name": "POST /api/exports",
                "kind": 2,
                "startTimeUnixNano": start.as_nanos().to_string(),
                "endTimeUnixNano": end.as_nanos().to_string(),
                "attributes": [{"key": "http.route", "value": {"stringValue": "/api/exports"}}],
            }]}],
        }],
    });
    let url = format!("{}/v1/traces", collector.otlp_http_endpoint());
    let (status, answer) = http_post_json(&url, &body.to_string())?;
    assert_eq!(status, 200, "{url}: {answer}");
    let by_id = format!("{}/api/traces/{trace_id}", jaeger.query_url());
    testkit::wait_for("the span in Jaeger", Duration::from_secs(30), || match http_get(&by_id)? {
        (200, body) if body.contains("POST /api/exports") => Ok(Some(())),
        _ => Ok(None),
    })
    .with_context(|| {
        format!("collector log:\n{}\njaeger log:\n{}", collector.log(), jaeger.log())
    })?;
    let micros = |t: Duration| t.as_micros();
    let search = format!(
        "{}/api/traces?service=api&operation=POST%20%2Fapi%2Fexports&start={}&end={}\
         &minDuration=500ms&limit=20",
        jaeger.query_url(),
        micros(start) - 1_000_000,
        micros(end) + 1_000_000
    );
    let (status, found) = http_get(&search)?;
    assert_eq!(status, 200, "{search}: {found}");
    assert!(found.contains(&trace_id), "{search} did not find {trace_id}: {found}");
    let slower = search.replace("minDuration=500ms", "minDuration=1s");
    let (_, none) = http_get(&slower)?;
    assert!(!none.contains(&trace_id), "minDuration=1s found a 750 ms span: {none}");
    Ok(())
}
