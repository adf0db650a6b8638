//! Prometheus and promtool at `PROMETHEUS_VERSION`, built with `go install` from the Go module
//! `github.com/prometheus/prometheus`, whose versions encode release 3.X.Y as v0.(300+X).Y.

use super::go;
use std::path::PathBuf;
use testkit::tools;

/// The Go module of both commands.
const MODULE: &str = "github.com/prometheus/prometheus";

/// `(prometheus, promtool)`, built if either is missing or does not run.
pub fn ensure(version: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let commands =
        [("prometheus", tools::prometheus_path()?), ("promtool", tools::promtool_path()?)];
    let [prometheus, promtool] = go::ensure(version, commands, "--version", || {
        let module_version = go_module_version(version)?;
        eprintln!("prometheus {version}: building {MODULE}@{module_version} (takes minutes)");
        let packages = ["prometheus", "promtool"]
            .map(|cmd| format!("{MODULE}/cmd/{cmd}@{module_version}"))
            .to_vec();
        go::install("prometheus build", &tools::prometheus_dir()?, &packages)
    })?;
    Ok((prometheus, promtool))
}

/// The Go module version of a Prometheus 3.x release: `3.16.0` -> `v0.316.0`.
pub fn go_module_version(release: &str) -> anyhow::Result<String> {
    let parts: Vec<u32> = release
        .split('.')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("PROMETHEUS_VERSION={release} is not X.Y.Z: {e}"))?;
    match parts[..] {
        [3, minor, patch] => Ok(format!("v0.{}.{patch}", 300 + minor)),
        _ => anyhow::bail!(
            "PROMETHEUS_VERSION={release}: only 3.x.y releases map to Go module versions here"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_map_to_module_versions() {
        assert_eq!(go_module_version("3.16.0").ok().as_deref(), Some("v0.316.0"));
        assert_eq!(go_module_version("3.0.1").ok().as_deref(), Some("v0.300.1"));
        assert!(go_module_version("2.53.0").is_err());
        assert!(go_module_version("3.x").is_err());
    }
}
