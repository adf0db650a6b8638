//! Where the project's native tools are: the collector, Prometheus, promtool, Alertmanager, amtool,
//! the collector builder and actionlint live in a cache outside the clone, in directories named
//! after the versions pinned in `.env`; Postgres and Redis come from the OS packages. `cargo xtask tools`
//! builds into exactly these paths, and tests only ever look here.

mod system;
mod versions;

pub use system::{find_on_path, postgres_bin_dir, redis_server, redis_server_in};
pub use versions::{Versions, parse_env_file, versions};

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Environment variable that moves the tool cache.
pub const CACHE_DIR_ENV: &str = "ORGRAPH_CACHE_DIR";

/// The tool cache: `$ORGRAPH_CACHE_DIR` if set (made absolute), else
/// `$HOME/.cache/rust-otel-metrics`.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(CACHE_DIR_ENV).filter(|d| !d.is_empty()) {
        return std::path::absolute(&dir).with_context(|| {
            format!("making {CACHE_DIR_ENV}={} absolute", Path::new(&dir).display())
        });
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| anyhow::anyhow!("neither {CACHE_DIR_ENV} nor HOME is set"))?;
    Ok(PathBuf::from(home).join(".cache").join("rust-otel-metrics"))
}

/// Directory holding the collector builder (ocb) of the pinned collector version.
pub fn builder_dir() -> anyhow::Result<PathBuf> {
    Ok(cache_dir()?.join("bin").join(format!("builder-{}", versions()?.otelcol)))
}

/// The collector builder (ocb) binary.
pub fn builder_path() -> anyhow::Result<PathBuf> {
    Ok(builder_dir()?.join("builder"))
}

/// Directory the builder runs in; its manifest's `output_path: ./_build` is relative to it.
pub fn otelcol_build_dir() -> anyhow::Result<PathBuf> {
    Ok(cache_dir()?.join(format!("otelcol-{}", versions()?.otelcol)))
}

/// The collector built from `collector/builder-config.yaml`.
pub fn otelcol_path() -> anyhow::Result<PathBuf> {
    Ok(otelcol_build_dir()?.join("_build").join("otelcol"))
}

/// Directory holding `prometheus` and `promtool` of the pinned Prometheus version.
pub fn prometheus_dir() -> anyhow::Result<PathBuf> {
    Ok(cache_dir()?.join(format!("prometheus-{}", versions()?.prometheus)))
}

/// The Prometheus server binary.
pub fn prometheus_path() -> anyhow::Result<PathBuf> {
    Ok(prometheus_dir()?.join("prometheus"))
}

/// The promtool binary (config checks, rule unit tests).
pub fn promtool_path() -> anyhow::Result<PathBuf> {
    Ok(prometheus_dir()?.join("promtool"))
}

/// Directory holding `alertmanager` and `amtool` of the pinned Alertmanager version.
pub fn alertmanager_dir() -> anyhow::Result<PathBuf> {
    Ok(cache_dir()?.join(format!("alertmanager-{}", versions()?.alertmanager)))
}

/// The Alertmanager binary.
pub fn alertmanager_path() -> anyhow::Result<PathBuf> {
    Ok(alertmanager_dir()?.join("alertmanager"))
}

/// The amtool binary (config checks, routing tests, silences).
pub fn amtool_path() -> anyhow::Result<PathBuf> {
    Ok(alertmanager_dir()?.join("amtool"))
}

/// Directory holding `actionlint` of the pinned version.
pub fn actionlint_dir() -> anyhow::Result<PathBuf> {
    Ok(cache_dir()?.join(format!("actionlint-{}", versions()?.actionlint)))
}

/// The actionlint binary (the linter of `.github/workflows`).
pub fn actionlint_path() -> anyhow::Result<PathBuf> {
    Ok(actionlint_dir()?.join("actionlint"))
}

/// `path` if it is a file, else an error telling how to get it.
pub fn require(path: &Path, name: &str) -> anyhow::Result<PathBuf> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        anyhow::bail!(
            "{name} not found at {}: run `cargo xtask tools` (it builds it from Go modules)",
            path.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn require_says_how_to_get_a_missing_tool() {
        let missing = Path::new("/nonexistent/otelcol");
        let err = require(missing, "otelcol").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "otelcol not found at /nonexistent/otelcol: run `cargo xtask tools` (it builds it \
                 from Go modules)"
            )
        );
    }

    #[test]
    fn tool_paths_are_versioned_and_absolute() -> anyhow::Result<()> {
        let v = versions()?;
        let otelcol = otelcol_path()?;
        assert!(otelcol.is_absolute(), "{}", otelcol.display());
        assert!(otelcol.ends_with(format!("otelcol-{}/_build/otelcol", v.otelcol)));
        assert!(promtool_path()?.ends_with(format!("prometheus-{}/promtool", v.prometheus)));
        let alertmanager = format!("alertmanager-{}", v.alertmanager);
        assert!(alertmanager_path()?.ends_with(format!("{alertmanager}/alertmanager")));
        assert!(amtool_path()?.ends_with(format!("{alertmanager}/amtool")));
        assert!(builder_path()?.ends_with(format!("bin/builder-{}/builder", v.otelcol)));
        let actionlint = format!("actionlint-{}/actionlint", v.actionlint);
        assert!(actionlint_path()?.ends_with(actionlint));
        Ok(())
    }
}
