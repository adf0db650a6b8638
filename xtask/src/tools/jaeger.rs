//! Jaeger v2, the trace store of the native stack, built from its Go module at
//! `JAEGER_MODULE_VERSION` (the v2 binary, `cmd/jaeger`, lives in the module's v1 tags).
//!
//! `go install …@v1.76.0` refuses it: the module's go.mod has a `replace` directive, which `go
//! install pkg@version` does not allow. So it is built in a throwaway module
//! ([`GoModuleBuild`], which takes over those directives). The binary's
//! `version` subcommand reports `JAEGER_VERSION` (set with `-ldflags -X`, as upstream's release
//! build does). It serves the query API and a placeholder page instead of the web UI: the UI's
//! assets are built from another repository with npm and are not in the Go module.

use super::go;
use super::go_module_build::GoModuleBuild;
use std::path::PathBuf;
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
        build_of(versions).build(&tools::jaeger_dir()?)
    })?;
    Ok(path)
}

/// The build of the pinned release: the module tag `JAEGER_MODULE_VERSION`, reporting
/// `JAEGER_VERSION`.
fn build_of(versions: &tools::Versions) -> GoModuleBuild<'_> {
    GoModuleBuild {
        name: "jaeger",
        module: MODULE,
        version: &versions.jaeger_module,
        package: PACKAGE,
        ldflags: format!("-X {VERSION_VAR}=v{}", versions.jaeger),
        tags: &[],
        env: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

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
        let dir = build_of(&versions).module_dir().context(
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
