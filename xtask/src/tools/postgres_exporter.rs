//! postgres_exporter at `POSTGRES_EXPORTER_VERSION`, which the collector's `prometheus/postgres`
//! receiver scrapes (the contrib `postgresql` receiver is not served by the Go module proxy).
//!
//! `go install …@v0.17.1` refuses to build it here: it first asks the proxy for the module's
//! version list (to warn about deprecation), which the proxy does not serve. So it is built in a
//! throwaway module ([`GoModuleBuild`]) that requires exactly that version. The binary reports no
//! version (the release's ldflags are not applied); the directory name carries it.

use super::go;
use super::go_module_build::GoModuleBuild;
use std::path::PathBuf;
use testkit::tools;

/// The Go module, and its command's package.
const MODULE: &str = "github.com/prometheus-community/postgres_exporter";
const PACKAGE: &str = "github.com/prometheus-community/postgres_exporter/cmd/postgres_exporter";

/// The postgres_exporter binary, built if it is missing or does not run.
pub fn ensure(version: &str) -> anyhow::Result<PathBuf> {
    let path = tools::postgres_exporter_path()?;
    let [path] = go::ensure(version, [("postgres_exporter", path)], "--version", || {
        eprintln!("postgres_exporter {version}: building {MODULE}@v{version} (about a minute)");
        let build = GoModuleBuild {
            name: "postgres_exporter",
            module: MODULE,
            version,
            package: PACKAGE,
            ldflags: String::new(),
            tags: &[],
            env: Vec::new(),
        };
        build.build(&tools::postgres_exporter_dir()?)
    })?;
    Ok(path)
}
