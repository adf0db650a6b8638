//! The collector builder manifest (`collector/builder-config.yaml`) against `.env`: the manifest
//! spells the collector version once per component, so before building, every place must agree
//! with `OTELCOL_VERSION`; and a built collector is up to date only if it holds exactly the
//! manifest's components (`otelcol components` lists them).

use anyhow::Context;
use serde_norway::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Component sections of a manifest, also the sections `otelcol components` prints.
const SECTIONS: [&str; 6] =
    ["receivers", "processors", "exporters", "connectors", "extensions", "providers"];

/// The output directory `testkit::tools::otelcol_path` expects, relative to the build directory.
const OUTPUT_PATH: &str = "./_build";

/// `<repo>/collector/builder-config.yaml`.
pub fn path() -> PathBuf {
    testkit::repo_root().join("collector").join("builder-config.yaml")
}

/// What matters of a manifest (or of a built collector's component list).
#[derive(Debug, PartialEq, Eq)]
pub struct Manifest {
    /// `dist.version` (`buildinfo.version` of a built collector).
    pub version: String,
    /// Every component module with its version, e.g. `go.opentelemetry.io/…/otlpreceiver v0.161.0`.
    pub modules: BTreeSet<String>,
    /// Whether the manifest lists config providers (else the builder's defaults are used).
    pub lists_providers: bool,
}

impl Manifest {
    /// Reads and checks a manifest file.
    pub fn read(path: &Path) -> anyhow::Result<Manifest> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Manifest::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Parses a manifest's text.
    pub fn parse(text: &str) -> anyhow::Result<Manifest> {
        let doc: Value = serde_norway::from_str(text).context("not YAML")?;
        let dist = doc.get("dist").context("no `dist` section")?;
        let version = str_at(dist, "version").context("no `dist.version`")?;
        let output = str_at(dist, "output_path").unwrap_or_default();
        anyhow::ensure!(
            output.trim_end_matches('/') == OUTPUT_PATH || output == "_build",
            "`dist.output_path` must be `{OUTPUT_PATH}` (cargo xtask and testkit look there), \
             not `{output}`"
        );
        let modules = modules(&doc, "gomod")?;
        let lists_providers = doc.get("providers").is_some_and(|p| !p.is_null());
        Ok(Manifest { version, modules, lists_providers })
    }

    /// The component list `otelcol components` printed, in the same shape.
    pub fn from_components_output(text: &str) -> anyhow::Result<Manifest> {
        let doc: Value =
            serde_norway::from_str(text).context("`otelcol components` is not YAML")?;
        let info = doc.get("buildinfo").context("no `buildinfo`")?;
        let version = str_at(info, "version").context("no `buildinfo.version`")?;
        Ok(Manifest { version, modules: modules(&doc, "module")?, lists_providers: true })
    }

    /// Fails unless `dist.version` and every `v0.x` component equal `otelcol_version` (modules at
    /// v1.x are the collector's stable modules, versioned separately).
    pub fn check_version(&self, otelcol_version: &str) -> anyhow::Result<()> {
        let want = format!("v{otelcol_version}");
        let mut problems = Vec::new();
        if self.version != otelcol_version {
            problems.push(format!("dist.version is {}", self.version));
        }
        for module in &self.modules {
            match module.rsplit_once(' ') {
                Some((_, v)) if v.starts_with("v0.") && v != want => {
                    problems.push(module.clone());
                }
                Some(_) => {}
                None => problems.push(format!("{module} (no version)")),
            }
        }
        anyhow::ensure!(
            problems.is_empty(),
            "{} disagrees with OTELCOL_VERSION={otelcol_version} of .env:\n  {}\nmake them agree \
             (every v0.x component at v{otelcol_version})",
            path().display(),
            problems.join("\n  ")
        );
        Ok(())
    }

    /// Whether a collector built with `built`'s components is this manifest's collector.
    pub fn is_built_as(&self, built: &Manifest) -> bool {
        let relevant = |m: &Manifest| -> BTreeSet<String> {
            if self.lists_providers {
                m.modules.clone()
            } else {
                m.modules.iter().filter(|x| !x.contains("/confmap/provider/")).cloned().collect()
            }
        };
        self.version == built.version && relevant(self) == relevant(built)
    }
}

fn str_at(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The `key` strings of every entry of every component section.
fn modules(doc: &Value, key: &str) -> anyhow::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for section in SECTIONS {
        let Some(entries) = doc.get(section).filter(|v| !v.is_null()) else { continue };
        let entries =
            entries.as_sequence().with_context(|| format!("`{section}` is not a list"))?;
        for entry in entries {
            let module = str_at(entry, key)
                .with_context(|| format!("an entry of `{section}` has no `{key}`"))?;
            out.insert(module.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "dist:\n  name: otelcol\n  version: 0.161.0\n  output_path: ./_build\n\
        receivers:\n  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver v0.161.0\n\
        extensions:\n  - gomod: example.com/ext v1.67.0\n";

    #[test]
    fn the_repo_manifest_agrees_with_env() -> anyhow::Result<()> {
        let versions = testkit::tools::versions()?;
        Manifest::read(&path())?.check_version(&versions.otelcol)
    }

    #[test]
    fn a_disagreeing_component_is_named() -> anyhow::Result<()> {
        let m =
            Manifest::parse(&MANIFEST.replace("otlpreceiver v0.161.0", "otlpreceiver v0.160.0"))?;
        let err = m.check_version("0.161.0").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("otlpreceiver v0.160.0"), "{err}");
        assert!(!err.contains("example.com/ext"), "v1 modules are exempt: {err}");
        let err = Manifest::parse(MANIFEST)?.check_version("0.162.0").err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("dist.version is 0.161.0")));
        Ok(())
    }

    #[test]
    fn built_components_are_compared_without_default_providers() -> anyhow::Result<()> {
        let manifest = Manifest::parse(MANIFEST)?;
        let components = "buildinfo:\n  version: 0.161.0\nreceivers:\n  - name: otlp\n    module: \
            go.opentelemetry.io/collector/receiver/otlpreceiver v0.161.0\nextensions:\n  - name: x\n    \
            module: example.com/ext v1.67.0\nconnectors: []\nproviders:\n  - scheme: env\n    \
            module: go.opentelemetry.io/collector/confmap/provider/envprovider v1.67.0\n";
        let built = Manifest::from_components_output(components)?;
        assert!(manifest.is_built_as(&built));
        let fewer =
            Manifest::from_components_output(&components.replace("example.com/ext", "other"))?;
        assert!(!manifest.is_built_as(&fewer));
        Ok(())
    }
}
