//! postgres_exporter at `POSTGRES_EXPORTER_VERSION`, which the collector's `prometheus/postgres`
//! receiver scrapes (the contrib `postgresql` receiver is not served by the Go module proxy).
//!
//! `go install …@v0.17.1` refuses to build it here: it first asks the proxy for the module's
//! version list (to warn about deprecation), which the proxy does not serve. So it is built the
//! other way `go` allows: a throwaway module in the tool directory that requires exactly that
//! version (`go get`), then `go build` of the command. The binary reports no version (the
//! release's ldflags are not applied); the directory name carries it.

use super::go;
use std::path::{Path, PathBuf};
use std::process::Command;
use testkit::process::{Output, run};
use testkit::tools;

/// The Go module, and its command's package.
const MODULE: &str = "github.com/prometheus-community/postgres_exporter";

/// The postgres_exporter binary, built if it is missing or does not run.
pub fn ensure(version: &str) -> anyhow::Result<PathBuf> {
    let path = tools::postgres_exporter_path()?;
    let [path] = go::ensure(version, [("postgres_exporter", path)], "--version", || {
        eprintln!("postgres_exporter {version}: building {MODULE}@v{version} (about a minute)");
        build(version, &tools::postgres_exporter_dir()?)
    })?;
    Ok(path)
}

fn build(version: &str, dir: &Path) -> anyhow::Result<()> {
    let module = dir.join("module");
    std::fs::create_dir_all(&module)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", module.display()))?;
    // A fresh go.mod each time: a half-finished earlier build leaves nothing that matters.
    std::fs::write(module.join("go.mod"), "module orgraph/postgres-exporter-build\n\ngo 1.24\n")?;
    let _ = std::fs::remove_file(module.join("go.sum"));
    let label = "postgres_exporter build";
    let go = go::go()?;
    let mut get = Command::new(&go);
    get.args(["get", &format!("{MODULE}/cmd/postgres_exporter@v{version}")]).current_dir(&module);
    run(label, &mut get, Output::Prefixed(label), go::BUILD_TIMEOUT)?;
    let mut build = Command::new(&go);
    build
        .arg("build")
        .arg("-o")
        .arg(dir.join("postgres_exporter"))
        .arg(format!("{MODULE}/cmd/postgres_exporter"))
        .current_dir(&module);
    run(label, &mut build, Output::Prefixed(label), go::BUILD_TIMEOUT)
}
