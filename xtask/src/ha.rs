//! Facts of the HA topology (docs/SCALING.md) that both its ways of running it use, compose.ha.yaml
//! and the native proof (`cargo xtask e2e --profile ha`): tests hold compose.ha.yaml to them.

use anyhow::Context;

/// The Compactor's retention: raw samples 30 days (as long as a Prometheus keeps them locally),
/// 5-minute downsamples 180 days, 1-hour downsamples 2 years.
pub const COMPACTOR_RETENTION: [&str; 3] = [
    "--retention.resolution-raw=30d",
    "--retention.resolution-5m=180d",
    "--retention.resolution-1h=2y",
];

/// The names of prometheus.yml's external labels. Thanos Query is given each as a replica label
/// (`--query.replica-label`): `replica` is the one the replicas differ in, and the others are the
/// same on every replica, so dropping them from results leaves each series as one Prometheus
/// shows it (Query would otherwise add them to every series).
pub fn external_labels() -> anyhow::Result<Vec<String>> {
    let path = crate::dashboards::repo_root().join("prometheus").join("prometheus.yml");
    let config = crate::yaml::read(&path)?;
    let labels = config
        .get("global")
        .and_then(|g| g.get("external_labels"))
        .and_then(|l| l.as_mapping())
        .with_context(|| format!("no global.external_labels in {}", path.display()))?;
    Ok(labels.keys().filter_map(|k| k.as_str().map(str::to_string)).collect())
}
