//! The pinned versions of the stack, read from the repo's `.env` (the one place they are written;
//! compose reads the same file), so no Rust code spells a version.

use anyhow::Context;
use std::collections::BTreeMap;

/// The versions of `.env` the native tools are built at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// `OTELCOL_VERSION`, e.g. `0.161.0`: the collector, its builder and every component.
    pub otelcol: String,
    /// `PROMETHEUS_VERSION`, e.g. `3.16.0`.
    pub prometheus: String,
    /// `ALERTMANAGER_VERSION`, e.g. `0.31.1`: Alertmanager and amtool.
    pub alertmanager: String,
    /// `POSTGRES_EXPORTER_VERSION`, e.g. `0.17.1`: what the collector reads Postgres through.
    pub postgres_exporter: String,
    /// `JAEGER_VERSION`, e.g. `2.13.0`: the Jaeger v2 release (the image tag; the native binary
    /// reports it as its version).
    pub jaeger: String,
    /// `JAEGER_MODULE_VERSION`, e.g. `1.76.0`: the Go module tag released with [`Versions::jaeger`],
    /// which the native Jaeger is built from.
    pub jaeger_module: String,
    /// `THANOS_VERSION`, e.g. `0.42.5`: Thanos (sidecar, Query, Store Gateway, Compactor).
    pub thanos: String,
    /// `THANOS_GOTOOLCHAIN`, e.g. `go1.27.3`: the Go toolchain Thanos' native build runs under (its
    /// go.mod asks for a newer Go than the machine's).
    pub thanos_gotoolchain: String,
    /// `ACTIONLINT_VERSION`, e.g. `1.7.12`: the linter of `.github/workflows`.
    pub actionlint: String,
    /// `SCHEMATHESIS_VERSION`, e.g. `4.32.5`: the API's OpenAPI-driven fuzzer (from PyPI).
    pub schemathesis: String,
    /// `HYPOTHESIS_VERSION`, e.g. `6.170.17`: the example generator schemathesis drives.
    pub hypothesis: String,
}

/// Reads `<repo>/.env`.
pub fn versions() -> anyhow::Result<Versions> {
    let path = crate::repo_root().join(".env");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Versions::from_env_file(&text).with_context(|| format!("in {}", path.display()))
}

impl Versions {
    /// The versions in the text of an env file.
    pub fn from_env_file(text: &str) -> anyhow::Result<Versions> {
        let vars = parse_env_file(text)?;
        let get = |key: &str| {
            vars.get(key)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{key} is not set"))
        };
        Ok(Versions {
            otelcol: get("OTELCOL_VERSION")?,
            prometheus: get("PROMETHEUS_VERSION")?,
            alertmanager: get("ALERTMANAGER_VERSION")?,
            postgres_exporter: get("POSTGRES_EXPORTER_VERSION")?,
            jaeger: get("JAEGER_VERSION")?,
            jaeger_module: get("JAEGER_MODULE_VERSION")?,
            thanos: get("THANOS_VERSION")?,
            thanos_gotoolchain: get("THANOS_GOTOOLCHAIN")?,
            actionlint: get("ACTIONLINT_VERSION")?,
            schemathesis: get("SCHEMATHESIS_VERSION")?,
            hypothesis: get("HYPOTHESIS_VERSION")?,
        })
    }
}

/// `KEY=VALUE` lines; blank lines and `#` comments are skipped, surrounding quotes removed.
pub fn parse_env_file(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("line {}: expected KEY=VALUE, got `{line}`", n + 1))?;
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        vars.insert(key.trim().to_string(), value.to_string());
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_blank_lines_and_quotes() -> anyhow::Result<()> {
        let text = "# pinned\n\nOTELCOL_VERSION=0.161.0\n  PROMETHEUS_VERSION = \"3.16.0\"\n\
                    ALERTMANAGER_VERSION='0.31.1'\nPOSTGRES_EXPORTER_VERSION=0.17.1\n\
                    JAEGER_VERSION=2.13.0\nJAEGER_MODULE_VERSION=1.76.0\nTHANOS_VERSION=0.42.5\n\
                    THANOS_GOTOOLCHAIN=go1.27.3\nACTIONLINT_VERSION=1.7.12\n\
                    SCHEMATHESIS_VERSION=4.32.5\nHYPOTHESIS_VERSION=6.170.17\nX='y'\n";
        let v = Versions::from_env_file(text)?;
        let want = Versions {
            otelcol: "0.161.0".into(),
            prometheus: "3.16.0".into(),
            alertmanager: "0.31.1".into(),
            postgres_exporter: "0.17.1".into(),
            jaeger: "2.13.0".into(),
            jaeger_module: "1.76.0".into(),
            thanos: "0.42.5".into(),
            thanos_gotoolchain: "go1.27.3".into(),
            actionlint: "1.7.12".into(),
            schemathesis: "4.32.5".into(),
            hypothesis: "6.170.17".into(),
        };
        assert_eq!(v, want);
        assert_eq!(parse_env_file(text)?.get("X").map(String::as_str), Some("y"));
        Ok(())
    }

    #[test]
    fn missing_key_and_bad_line_are_named() {
        let err = Versions::from_env_file("OTELCOL_VERSION=1\n").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("PROMETHEUS_VERSION is not set"));
        let err = Versions::from_env_file("OTELCOL_VERSION=1\nPROMETHEUS_VERSION=3.0.0\n")
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("ALERTMANAGER_VERSION is not set"));
        let err = parse_env_file("# ok\nnonsense\n").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("line 2: expected KEY=VALUE, got `nonsense`"));
    }

    #[test]
    fn the_repo_env_file_has_every_version() -> anyhow::Result<()> {
        let v = versions()?;
        assert!(v.otelcol.starts_with("0."), "{v:?}");
        assert!(v.prometheus.starts_with("3."), "{v:?}");
        assert!(v.alertmanager.starts_with("0."), "{v:?}");
        assert!(v.postgres_exporter.starts_with("0."), "{v:?}");
        assert!(v.jaeger.starts_with("2."), "{v:?}");
        assert!(v.jaeger_module.starts_with("1."), "{v:?}");
        assert!(v.thanos.starts_with("0."), "{v:?}");
        assert!(v.thanos_gotoolchain.starts_with("go1."), "{v:?}");
        assert!(v.actionlint.starts_with("1."), "{v:?}");
        assert!(v.schemathesis.starts_with("4."), "{v:?}");
        assert!(v.hypothesis.starts_with("6."), "{v:?}");
        Ok(())
    }
}
