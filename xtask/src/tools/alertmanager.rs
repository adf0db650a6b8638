//! Alertmanager and amtool at `ALERTMANAGER_VERSION`, built with `go install` from the Go module
//! `github.com/prometheus/alertmanager`, whose versions are the releases' (`0.31.1` is `v0.31.1`).
//!
//! Only releases up to 0.31 build that way: from 0.32 on, the module embeds its web UI from
//! `ui/app/dist` (`//go:embed`), which is built by `make` and not part of the module, so
//! `go install` fails with `pattern app/dist: no matching files found`.

use super::go;
use anyhow::Context;
use std::path::PathBuf;
use testkit::tools;

/// The Go module of both commands.
const MODULE: &str = "github.com/prometheus/alertmanager";

/// The first minor release whose Go module lacks the embedded web UI.
const FIRST_UNBUILDABLE_MINOR: u32 = 32;

/// `(alertmanager, amtool)`, built if either is missing or does not run.
pub fn ensure(version: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let commands =
        [("alertmanager", tools::alertmanager_path()?), ("amtool", tools::amtool_path()?)];
    let [alertmanager, amtool] = go::ensure(version, commands, "--version", || {
        eprintln!("alertmanager {version}: building {MODULE}@v{version} (about a minute)");
        let packages =
            ["alertmanager", "amtool"].map(|cmd| format!("{MODULE}/cmd/{cmd}@v{version}")).to_vec();
        go::install("alertmanager build", &tools::alertmanager_dir()?, &packages)
            .with_context(|| build_hint(version))
    })?;
    Ok((alertmanager, amtool))
}

/// What to say when the build failed: for 0.32 and later, why `go install` cannot build them.
fn build_hint(version: &str) -> String {
    let minor = version.strip_prefix("0.").and_then(|rest| rest.split('.').next());
    match minor.and_then(|m| m.parse::<u32>().ok()) {
        Some(minor) if minor >= FIRST_UNBUILDABLE_MINOR => format!(
            "ALERTMANAGER_VERSION={version}: Alertmanager 0.{FIRST_UNBUILDABLE_MINOR} and later \
             embed a web UI (ui/app/dist) that their Go module does not contain, so `go install` \
             cannot build them; pin 0.{}.x in .env",
            FIRST_UNBUILDABLE_MINOR - 1
        ),
        _ => format!("building Alertmanager {version} (ALERTMANAGER_VERSION in .env)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_without_the_ui_in_their_module_are_explained() {
        assert!(build_hint("0.32.1").contains("pin 0.31.x"));
        assert!(build_hint("0.34.2").contains("embed a web UI"));
        assert!(!build_hint("0.31.1").contains("embed"));
        assert!(!build_hint("1.0.0").contains("embed"));
    }
}
