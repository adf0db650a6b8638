//! Where the project's native tools are: the collector, Prometheus, promtool, Alertmanager, amtool,
//! Jaeger, Thanos, the collector builder and actionlint live in a cache outside the clone, in
//! directories named after the versions pinned in `.env`, and so does a Python venv holding schemathesis (the API's
//! fuzzer) at its pinned version; Postgres and Redis come from the OS packages. `cargo xtask tools`
//! builds into exactly these paths, and tests only ever look here.

mod system;
mod versions;

pub use system::{find_on_path, postgres_bin_dir, redis_server, redis_server_in};
pub use versions::{Versions, parse_env_file, versions};

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Directory holding `postgres_exporter` of the pinned version (and the throwaway Go module it is
/// built in).
pub fn postgres_exporter_dir() -> anyhow::Result<PathBuf> {
    Ok(cache_dir()?.join(format!("postgres_exporter-{}", versions()?.postgres_exporter)))
}

/// The postgres_exporter binary, which the collector's `prometheus/postgres` receiver scrapes.
pub fn postgres_exporter_path() -> anyhow::Result<PathBuf> {
    Ok(postgres_exporter_dir()?.join("postgres_exporter"))
}

/// Directory holding `jaeger` (Jaeger v2, the trace store) built from its Go module at
/// `JAEGER_MODULE_VERSION` (and the throwaway Go module it is built in).
pub fn jaeger_dir() -> anyhow::Result<PathBuf> {
    Ok(cache_dir()?.join(format!("jaeger-{}", versions()?.jaeger_module)))
}

/// The Jaeger v2 binary (`cmd/jaeger`), which stores the traces the collector sends it.
pub fn jaeger_path() -> anyhow::Result<PathBuf> {
    Ok(jaeger_dir()?.join("jaeger"))
}

/// Directory holding `thanos` of the pinned version (and the throwaway Go module it is built in).
pub fn thanos_dir() -> anyhow::Result<PathBuf> {
    Ok(cache_dir()?.join(format!("thanos-{}", versions()?.thanos)))
}

/// The Thanos binary (`thanos sidecar|query|store|compact|tools …`).
pub fn thanos_path() -> anyhow::Result<PathBuf> {
    Ok(thanos_dir()?.join("thanos"))
}

/// Directory holding `actionlint` of the pinned version.
pub fn actionlint_dir() -> anyhow::Result<PathBuf> {
    Ok(cache_dir()?.join(format!("actionlint-{}", versions()?.actionlint)))
}

/// The actionlint binary (the linter of `.github/workflows`).
pub fn actionlint_path() -> anyhow::Result<PathBuf> {
    Ok(actionlint_dir()?.join("actionlint"))
}

/// The Python venv of the Python tools (schemathesis): one venv, whatever the versions; `cargo
/// xtask tools` installs the pinned version into it with pip.
pub fn python_dir() -> anyhow::Result<PathBuf> {
    Ok(cache_dir()?.join("python"))
}

/// The schemathesis command of the venv.
pub fn schemathesis_path() -> anyhow::Result<PathBuf> {
    Ok(python_dir()?.join("bin").join("schemathesis"))
}

/// The venv's Python (it tells the versions of the installed packages).
pub fn venv_python_path() -> anyhow::Result<PathBuf> {
    Ok(python_dir()?.join("bin").join("python"))
}

/// The Python packages of the venv at their pinned versions: `name==version` each, what
/// `pip install` takes and what [`python_packages_installed`] compares with.
pub fn python_packages() -> anyhow::Result<Vec<String>> {
    let v = versions()?;
    Ok(vec![format!("schemathesis=={}", v.schemathesis), format!("hypothesis=={}", v.hypothesis)])
}

/// Prints `name==version` (or `name missing`) for each package named in its arguments.
const VERSIONS_SCRIPT: &str = "import importlib.metadata as m, sys
for n in sys.argv[1:]:
    try:
        print(n + '==' + m.version(n))
    except m.PackageNotFoundError:
        print(n + ' missing')
";

/// Whether the venv holds exactly the pinned [`python_packages`]; `Err` says what differs and how
/// to install them (`cargo xtask tools`, or the pip commands).
pub fn python_packages_installed() -> anyhow::Result<()> {
    let wanted = python_packages()?;
    let python = venv_python_path()?;
    let venv = python_dir()?;
    let found = if python.is_file() {
        let mut command = std::process::Command::new(&python);
        command.args(["-c", VERSIONS_SCRIPT]);
        command.args(wanted.iter().filter_map(|p| p.split_once("==")).map(|(name, _)| name));
        crate::process::output("the venv's python", &mut command, Duration::from_secs(60))
            .map(|out| out.lines().map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_else(|e| vec![format!("{e:#}")])
    } else {
        vec![format!("no venv at {}", venv.display())]
    };
    anyhow::ensure!(
        found == wanted,
        "the Python tools are not at their pinned versions (.env): want {}, found {}; run `cargo \
         xtask tools`, or by hand:\n  {}",
        wanted.join(" "),
        found.join(", "),
        pip_install_commands(&venv, &wanted),
    );
    Ok(())
}

/// The shell commands that make the venv and install `packages` into it.
pub fn pip_install_commands(venv: &Path, packages: &[String]) -> String {
    format!(
        "python3 -m venv {venv} && {venv}/bin/pip install {}",
        packages.join(" "),
        venv = venv.display()
    )
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
        assert!(jaeger_path()?.ends_with(format!("jaeger-{}/jaeger", v.jaeger_module)));
        assert!(thanos_path()?.ends_with(format!("thanos-{}/thanos", v.thanos)));
        assert!(schemathesis_path()?.ends_with("python/bin/schemathesis"));
        Ok(())
    }

    #[test]
    fn the_python_tools_are_pinned_and_their_install_spelled_out() -> anyhow::Result<()> {
        let v = versions()?;
        let packages = python_packages()?;
        let want =
            [format!("schemathesis=={}", v.schemathesis), format!("hypothesis=={}", v.hypothesis)];
        assert_eq!(packages, want);
        assert_eq!(
            pip_install_commands(Path::new("/c/python"), &packages),
            format!("python3 -m venv /c/python && /c/python/bin/pip install {}", want.join(" "))
        );
        Ok(())
    }
}
