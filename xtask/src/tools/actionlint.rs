//! actionlint at `ACTIONLINT_VERSION`, built with `go install` from the Go module
//! `github.com/rhysd/actionlint`, whose versions are the releases' (`1.7.12` is `v1.7.12`). It
//! lints `.github/workflows` (xtask/tests/workflows.rs); it runs shellcheck on the workflows'
//! `run:` scripts when shellcheck is on PATH.

use super::go;
use std::path::PathBuf;
use testkit::tools;

/// The Go package of the command.
const PACKAGE: &str = "github.com/rhysd/actionlint/cmd/actionlint";

/// The actionlint binary, built if it is missing or does not run.
pub fn ensure(version: &str) -> anyhow::Result<PathBuf> {
    let [path] =
        go::ensure(version, [("actionlint", tools::actionlint_path()?)], "-version", || {
            eprintln!("actionlint {version}: building {PACKAGE}@v{version} (under a minute)");
            let package = format!("{PACKAGE}@v{version}");
            go::install("actionlint build", &tools::actionlint_dir()?, &[package])
        })?;
    Ok(path)
}
