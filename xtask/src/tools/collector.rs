//! The collector: the builder (ocb) at `OTELCOL_VERSION`, then the collector it builds from
//! `collector/builder-config.yaml`, in `<cache>/otelcol-<version>` (the manifest's
//! `output_path: ./_build` is relative to that working directory).

use super::go;
use super::manifest::{self, Manifest};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::process::{self, Output};
use testkit::tools;

/// The builder binary, installed with `go install` if missing or broken.
pub fn ensure_builder(version: &str) -> anyhow::Result<PathBuf> {
    let [path] = go::ensure(version, [("builder", tools::builder_path()?)], "version", || {
        eprintln!("builder {version}: building (about a minute)");
        let package = format!("go.opentelemetry.io/collector/cmd/builder@v{version}");
        go::install("builder", &tools::builder_dir()?, &[package])
    })?;
    Ok(path)
}

/// The collector binary, (re)built when it is missing, does not run, or holds other components
/// than the manifest lists.
pub fn ensure_otelcol(builder: &Path, manifest: &Manifest) -> anyhow::Result<PathBuf> {
    let path = tools::otelcol_path()?;
    let version = &manifest.version;
    match built_as(&path, manifest) {
        Ok(()) => {
            eprintln!("otelcol {version}: ok ({})", path.display());
            return Ok(path);
        }
        Err(why) => eprintln!("otelcol {version}: building, because {why:#} (takes minutes)"),
    }
    let dir = tools::otelcol_build_dir()?;
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let start = Instant::now();
    let mut command = Command::new(builder);
    command.arg("--config").arg(manifest::path()).current_dir(&dir);
    process::run(
        "otelcol build",
        &mut command,
        Output::Prefixed("otelcol build"),
        go::BUILD_TIMEOUT,
    )?;
    tools::require(&path, "otelcol")?;
    built_as(&path, manifest).map_err(|e| e.context("the collector just built"))?;
    eprintln!("otelcol {version}: built in {:.0?} ({})", start.elapsed(), path.display());
    Ok(path)
}

/// `Ok` if the collector at `path` runs and holds exactly the manifest's components.
fn built_as(path: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    anyhow::ensure!(path.is_file(), "{} does not exist", path.display());
    let mut command = Command::new(path);
    command.arg("components");
    let what = format!("{} components", path.display());
    let components = process::output(&what, &mut command, Duration::from_secs(30))?;
    let built = Manifest::from_components_output(&components)?;
    anyhow::ensure!(
        manifest.is_built_as(&built),
        "{} was built from another manifest (version {}, {} components)",
        path.display(),
        built.version,
        built.modules.len()
    );
    Ok(())
}
