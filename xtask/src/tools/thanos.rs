//! Thanos at `THANOS_VERSION` (one binary for the sidecar, Query, Store Gateway and Compactor),
//! built from its Go module `github.com/thanos-io/thanos`.
//!
//! Like Jaeger, the module has `replace` directives, so `go install …@v0.42.5` refuses it and it is
//! built in a throwaway module ([`GoModuleBuild`]). As upstream's release build does (its
//! `.promu.yml`), the version goes in with `-ldflags -X` (so `thanos --version` prints it) and the
//! build tags are `netgo` and `slicelabels` (the latter picks Prometheus' label representation
//! that Thanos' gRPC codec is released with).
//!
//! The module's go.mod says `go 1.26.10`, newer than the machines' Go: its go commands run with
//! `GOTOOLCHAIN=<THANOS_GOTOOLCHAIN>` (the `go` command fetches that toolchain from the module
//! proxy once, into the module cache), set on this build's commands only, so that every other tool
//! is still built by the installed Go. Go's module and build caches are the same as the others'.

use super::go;
use super::go_module_build::GoModuleBuild;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use testkit::tools;

/// The Go module, and its command's package.
const MODULE: &str = "github.com/thanos-io/thanos";
const PACKAGE: &str = "github.com/thanos-io/thanos/cmd/thanos";

/// The variable upstream's release build sets to the release's version (`.promu.yml`).
const VERSION_VAR: &str = "github.com/prometheus/common/version.Version";

/// The build tags of upstream's release build (`.promu.yml`).
const TAGS: [&str; 2] = ["netgo", "slicelabels"];

/// The thanos binary, built if it is missing or does not run.
pub fn ensure(versions: &tools::Versions) -> anyhow::Result<PathBuf> {
    let path = tools::thanos_path()?;
    let version = &versions.thanos;
    let [path] = go::ensure(version, [("thanos", path)], "--version", || {
        eprintln!(
            "thanos {version}: building {PACKAGE}@v{version} with GOTOOLCHAIN={} (minutes on two \
             cores)",
            versions.thanos_gotoolchain
        );
        build_of(versions).build(&tools::thanos_dir()?)?;
        check_version(&tools::thanos_path()?, version)
    })?;
    Ok(path)
}

/// The build of the pinned release, as upstream's release build makes it.
fn build_of(versions: &tools::Versions) -> GoModuleBuild<'_> {
    GoModuleBuild {
        name: "thanos",
        module: MODULE,
        version: &versions.thanos,
        package: PACKAGE,
        ldflags: format!("-X {VERSION_VAR}={}", versions.thanos),
        tags: &TAGS,
        env: vec![("GOTOOLCHAIN", versions.thanos_gotoolchain.as_str())],
    }
}

/// Fails unless `thanos --version` reports `version` (i.e. the `-X` flag took). It prints to
/// stderr, and exits at once.
fn check_version(path: &Path, version: &str) -> anyhow::Result<()> {
    let ran = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} --version", path.display()))?;
    let out = String::from_utf8_lossy(&ran.stderr);
    anyhow::ensure!(
        ran.status.success() && reports_version(&out, version),
        "{} --version does not report version {version}:\n{out}",
        path.display()
    );
    Ok(())
}

/// Whether `thanos --version` output (`thanos, version 0.42.5 (branch: …`) names `version`.
fn reports_version(output: &str, version: &str) -> bool {
    output.lines().next().is_some_and(|line| {
        line.split_whitespace().skip_while(|w| *w != "version").nth(1) == Some(version)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_is_read() {
        let out = "thanos, version 0.42.5 (branch: , revision: unknown)\n  go version: go1.27.3\n";
        assert!(reports_version(out, "0.42.5"));
        assert!(!reports_version(out, "0.42.4"));
        assert!(!reports_version("thanos, version  (branch: , revision: unknown)\n", "0.42.5"));
    }

    /// The version variable and build tags are those of upstream's release build at
    /// `THANOS_VERSION` (its `.promu.yml`), so a version bump that changes them fails here. Needs
    /// `go` (the module comes from the module proxy, or the module cache once `cargo xtask tools`
    /// fetched it).
    #[test]
    fn the_flags_are_those_of_the_upstream_release_build() -> anyhow::Result<()> {
        let versions = tools::versions()?;
        let dir = build_of(&versions).module_dir().context(
            "this test reads Thanos' .promu.yml from the Go module cache: install Go \
             (https://go.dev/dl/) so that `go mod download` can fetch it",
        )?;
        let promu = std::fs::read_to_string(dir.join(".promu.yml"))?;
        let promu: serde_norway::Value = serde_norway::from_str(&promu)?;
        let build = promu.get("build").context(".promu.yml has no `build`")?;
        let ldflags = build.get("ldflags").and_then(|v| v.as_str()).unwrap_or_default();
        assert!(ldflags.contains(&format!("-X {VERSION_VAR}={{{{.Version}}}}")), "{ldflags}");
        let tags: Vec<&str> = build
            .get("tags")
            .and_then(|t| t.get("all"))
            .and_then(|t| t.as_sequence())
            .map(|all| all.iter().filter_map(|t| t.as_str()).collect())
            .unwrap_or_default();
        assert_eq!(tags, TAGS);
        Ok(())
    }
}
