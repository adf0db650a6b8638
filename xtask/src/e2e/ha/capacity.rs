//! The measurements docs/SCALING.md's capacity table is built on, taken from the HA proof's run:
//! series per API and worker instance and per platform job, what the collectors hold per series,
//! and what a sample costs on disk in the blocks the sidecars uploaded. Printed as
//! `capacity: name=value` lines.

use super::stack::{GATEWAYS, HaStack, PROMETHEUS};
use crate::e2e::prom;
use std::path::Path;

/// One block in the bucket, from its `meta.json`, with its size on disk.
#[derive(Debug, Clone)]
pub struct Block {
    /// Milliseconds since the epoch.
    pub min_time: i64,
    pub max_time: i64,
    pub samples: u64,
    pub series: u64,
    /// Bytes of its chunks (the samples, compressed).
    pub chunk_bytes: u64,
    /// Bytes of its index (the series, their labels and where their chunks are).
    pub index_bytes: u64,
}

/// The blocks of the bucket at `bucket` whose external label `replica` is `replica`.
pub fn blocks(bucket: &Path, replica: &str) -> Vec<Block> {
    let Ok(entries) = std::fs::read_dir(bucket) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(text) = std::fs::read_to_string(dir.join("meta.json")) else { continue };
        let Ok(meta) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        if meta["thanos"]["labels"]["replica"] != replica {
            continue;
        }
        out.push(Block {
            min_time: meta["minTime"].as_i64().unwrap_or(0),
            max_time: meta["maxTime"].as_i64().unwrap_or(0),
            samples: meta["stats"]["numSamples"].as_u64().unwrap_or(0),
            series: meta["stats"]["numSeries"].as_u64().unwrap_or(0),
            chunk_bytes: size(&dir.join("chunks")),
            index_bytes: std::fs::metadata(dir.join("index")).map_or(0, |m| m.len()),
        });
    }
    out.sort_by_key(|b| b.min_time);
    out
}

/// Bytes of the files under `dir`.
fn size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { size(&path) } else { e.metadata().map_or(0, |m| m.len()) }
        })
        .sum()
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    bench::rss_bytes(pid).ok().map(|bytes| bytes / 1024)
}

/// Prints the capacity figures.
pub fn report(stack: &HaStack) {
    println!("\n==> HA proof: capacity figures (docs/SCALING.md)");
    let a = stack.prometheus_url(0);
    let figure = |name: &str, value: String| println!("capacity: {name}={value}");
    for (name, job) in [("api", "orgraph/api"), ("worker", "orgraph/worker")] {
        let expr =
            format!("max(count by (instance) ({{job=\"{job}\", __name__!~\".*:.*|ALERTS.*\"}}))");
        figure(&format!("series_per_{name}_instance"), show(prom::value_on(&a, &expr, &[])));
    }
    for job in ["orgraph/postgres", "orgraph/redis", "orgraph/host"] {
        let expr = format!("count({{job=\"{job}\", __name__!~\".*:.*|ALERTS.*\"}})");
        let name = job.trim_start_matches("orgraph/");
        figure(&format!("series_{name}"), show(prom::value_on(&a, &expr, &[])));
    }
    figure(
        "prometheus_head_series",
        show(prom::value_on(&a, "max(prometheus_tsdb_head_series)", &[])),
    );
    figure("recording_rule_series", show(prom::value_on(&a, "count({__name__=~\".+:.+\"})", &[])));
    let mut served_total = 0u64;
    for (i, gateway) in GATEWAYS.iter().enumerate() {
        let series = testkit::http_get(&stack.gateway_metrics_url(i))
            .map(|(_, body)| body.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count())
            .unwrap_or(0) as u64;
        served_total += series;
        let rss = stack.pid(gateway).and_then(rss_kib);
        figure(&format!("{gateway}_series_served"), series.to_string());
        figure(&format!("{gateway}_rss_kib"), format!("{rss:?}"));
    }
    figure("gateways_series_served", served_total.to_string());
    figure("agent_rss_kib", format!("{:?}", stack.pid("agent").and_then(rss_kib)));
    // The samples' cost grows with time, the index's with series per block: reported apart
    // (2-minute blocks here make the index a far larger share than 2-hour blocks do).
    let blocks: Vec<Block> =
        ["a", "b"].iter().flat_map(|r| blocks(&stack.bucket_dir(), r)).collect();
    let samples: u64 = blocks.iter().map(|b| b.samples).sum();
    let chunks: u64 = blocks.iter().map(|b| b.chunk_bytes).sum();
    let series: u64 = blocks.iter().map(|b| b.series).sum();
    let index: u64 = blocks.iter().map(|b| b.index_bytes).sum();
    figure("blocks_uploaded", blocks.len().to_string());
    figure("samples_uploaded", samples.to_string());
    if samples > 0 && series > 0 {
        figure("chunk_bytes_per_sample", format!("{:.2}", chunks as f64 / samples as f64));
        figure("index_bytes_per_series_per_block", format!("{:.1}", index as f64 / series as f64));
        figure("samples_per_series_per_block", format!("{:.1}", samples as f64 / series as f64));
    }
    for name in PROMETHEUS {
        let rss = stack.pid(name).and_then(rss_kib);
        figure(&format!("{name}_rss_kib"), format!("{rss:?}"));
    }
}

fn show(value: anyhow::Result<Option<f64>>) -> String {
    match value {
        Ok(Some(v)) => format!("{v}"),
        Ok(None) => "none".to_string(),
        Err(e) => format!("error ({e:#})"),
    }
}
