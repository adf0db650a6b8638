//! Jaeger v2, the trace store of the native stack, built from its Go module at
//! `JAEGER_MODULE_VERSION` (the v2 binary, `cmd/jaeger`, lives in the module's v1 tags).
//!
//! `go install …@v1.76.0` refuses it: the module's go.mod has a `replace` directive, which `go
//! install pkg@version` does not allow. So, as for postgres_exporter, it is built in a throwaway
//! module in the tool directory: that module takes over the Jaeger module's own `replace`
//! directives (read from its go.mod in the module cache, so the build resolves what upstream's
//! does), requires exactly that version (`go get`), and `go build`s the command. The binary's
//! `version` subcommand reports `JAEGER_VERSION` (set with `-ldflags -X`, as upstream's release
//! build does). It serves the query API and a placeholder page instead of the web UI: the UI's
//! assets are built from another repository with npm and are not in the Go module.

use super::go;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testkit::process::{self, Output, run};
use testkit::tools;

/// The Go module, and its v2 command's package.
const MODULE: &str = "github.com/jaegertracing/jaeger";
const PACKAGE: &str = "github.com/jaegertracing/jaeger/cmd/jaeger";

/// The variable upstream's release build sets to the release's version (`jaeger version` prints
/// it as `gitVersion`).
const VERSION_VAR: &str = "github.com/jaegertracing/jaeger/internal/version.latestVersion";

/// The jaeger binary, built if it is missing or does not run.
pub fn ensure(versions: &tools::Versions) -> anyhow::Result<PathBuf> {
    let path = tools::jaeger_path()?;
    let module_version = &versions.jaeger_module;
    let [path] = go::ensure(module_version, [("jaeger", path)], "version", || {
        eprintln!(
            "jaeger {} ({MODULE} v{module_version}): building {PACKAGE} (minutes on two cores)",
            versions.jaeger
        );
        build(versions, &tools::jaeger_dir()?)
    })?;
    Ok(path)
}

fn build(versions: &tools::Versions, dir: &Path) -> anyhow::Result<()> {
    let module = dir.join("module");
    std::fs::create_dir_all(&module).with_context(|| format!("creating {}", module.display()))?;
    // A fresh go.mod each time: a half-finished earlier build leaves nothing that matters.
    std::fs::write(module.join("go.mod"), "module orgraph/jaeger-build\n\ngo 1.24\n")?;
    let _ = std::fs::remove_file(module.join("go.sum"));
    let label = "jaeger build";
    let go = go::go()?;
    let upstream = module_dir(&versions.jaeger_module)?;
    let go_mod = upstream.join("go.mod");
    let text = std::fs::read_to_string(&go_mod)
        .with_context(|| format!("reading {}", go_mod.display()))?;
    for (old, new) in replaces(&text) {
        let mut edit = Command::new(&go);
        edit.args(["mod", "edit", &format!("-replace={old}={new}")]).current_dir(&module);
        run(label, &mut edit, Output::Prefixed(label), Duration::from_secs(60))?;
    }
    let mut get = Command::new(&go);
    get.args(["get", &format!("{PACKAGE}@v{}", versions.jaeger_module)]).current_dir(&module);
    run(label, &mut get, Output::Prefixed(label), go::BUILD_TIMEOUT)?;
    let mut build = Command::new(&go);
    build
        .arg("build")
        .arg(format!("-ldflags=-X {VERSION_VAR}=v{}", versions.jaeger))
        .arg("-o")
        .arg(dir.join("jaeger"))
        .arg(PACKAGE)
        .current_dir(&module);
    run(label, &mut build, Output::Prefixed(label), go::BUILD_TIMEOUT)
}

/// Where the Go module cache holds the Jaeger module at `version` (`go mod download` fetches it
/// from the module proxy the first time).
pub fn module_dir(version: &str) -> anyhow::Result<PathBuf> {
    let mut command = Command::new(go::go()?);
    command.args(["mod", "download", "-json", &format!("{MODULE}@v{version}")]);
    let json = process::output("go mod download", &mut command, Duration::from_secs(10 * 60))?;
    let info: serde_json::Value =
        serde_json::from_str(&json).context("`go mod download -json` printed no JSON")?;
    let dir = info.get("Dir").and_then(serde_json::Value::as_str).with_context(|| {
        format!("`go mod download -json {MODULE}@v{version}` names no Dir: {json}")
    })?;
    Ok(PathBuf::from(dir))
}

/// The `replace` directives of a go.mod, as `(old, new)` in the form `go mod edit -replace`
/// takes (`path[@version]`), single-line and block form alike. Local-path replacements (which a
/// published module cannot use) are left out.
pub fn replaces(go_mod: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in go_mod.lines() {
        let line = line.split("//").next().unwrap_or_default().trim();
        let directive = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line
        } else if line == "replace (" {
            in_block = true;
            continue;
        } else if let Some(rest) = line.strip_prefix("replace ") {
            rest
        } else {
            continue;
        };
        let Some((old, new)) = directive.split_once("=>") else { continue };
        let joined = |side: &str| side.split_whitespace().collect::<Vec<_>>().join("@");
        let (old, new) = (joined(old), joined(new));
        if !new.starts_with('.') && !new.starts_with('/') && !old.is_empty() {
            out.push((old, new));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The v2 release paired with module tag `v<module_version>` in the module's CHANGELOG.md, whose
    /// release headings read `v1.76.0 / v2.13.0 (2025-12-03)`: `2.13.0`.
    fn paired_release(changelog: &str, module_version: &str) -> Option<String> {
        let prefix = format!("v{module_version} / v");
        changelog.lines().find_map(|line| {
            let rest = line.trim().strip_prefix(&prefix)?;
            let release = rest.split_whitespace().next()?;
            Some(release.to_string())
        })
    }

    #[test]
    fn replace_directives_are_read_in_both_forms() {
        let go_mod = "module m\n\nrequire x v1\n\nreplace github.com/a/b => github.com/a/b v1.33.0\n\
                      replace (\n\tgithub.com/c/d v0.2.0 => github.com/e/d v0.1.0 // why\n\
                      \tgithub.com/local => ../local\n)\n// replace github.com/no => github.com/no v1\n";
        assert_eq!(
            replaces(go_mod),
            [
                ("github.com/a/b".to_string(), "github.com/a/b@v1.33.0".to_string()),
                ("github.com/c/d@v0.2.0".to_string(), "github.com/e/d@v0.1.0".to_string()),
            ]
        );
        assert!(replaces("module m\nrequire x v1\n").is_empty());
    }

    #[test]
    fn the_changelog_pairs_a_module_tag_with_its_v2_release() {
        let changelog = "next release v1.x.x / v2.x.x (yyyy-mm-dd)\n\
                         v1.76.0 / v2.13.0 (2025-12-03)\n-----\n\
                         v1.75.0 / v2.12.0 (2025-11-01)\n";
        assert_eq!(paired_release(changelog, "1.76.0").as_deref(), Some("2.13.0"));
        assert_eq!(paired_release(changelog, "1.75.0").as_deref(), Some("2.12.0"));
        assert_eq!(paired_release(changelog, "1.7.0"), None);
    }

    /// `.env` keeps both numbers of the pinned Jaeger release (the image tag and the module tag):
    /// they must be the pair the module's own CHANGELOG.md names. Needs `go` (the module comes
    /// from the module proxy, or the module cache once `cargo xtask tools` fetched it).
    #[test]
    fn the_image_tag_is_the_v2_release_of_the_module_version() -> anyhow::Result<()> {
        let versions = tools::versions()?;
        let dir = module_dir(&versions.jaeger_module).context(
            "this test reads the Jaeger module's CHANGELOG.md from the Go module cache: install \
             Go (https://go.dev/dl/) so that `go mod download` can fetch it",
        )?;
        let changelog = std::fs::read_to_string(dir.join("CHANGELOG.md"))?;
        assert_eq!(
            paired_release(&changelog, &versions.jaeger_module).as_deref(),
            Some(versions.jaeger.as_str()),
            "JAEGER_VERSION and JAEGER_MODULE_VERSION of .env are not one release"
        );
        Ok(())
    }
}
