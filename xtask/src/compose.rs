//! The compose project as Compose itself loads it, for the structural tests of compose.yaml
//! (`tests/compose.rs`) and of its HA variant (`tests/compose_ha.rs`, compose.yaml with
//! compose.ha.yaml merged over it): `xtask/compose-check`, a small Go program on the
//! compose-spec loader (the library `docker compose` uses), prints the interpolated, merged and
//! normalised project as JSON, and the accessors below read it.

use crate::go_program;
use anyhow::Context;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The project of `files` (relative to the repo root, merged in order, as `docker compose -f a
/// -f b` merges them), interpolated with `.env` only (so the caller's environment changes
/// nothing).
pub fn load(files: &[&str]) -> anyhow::Result<Value> {
    let checker = go_program::binary("compose-check")?;
    let mut command = Command::new(&checker);
    command.arg("-dir").arg(testkit::repo_root());
    for file in files {
        command.args(["-file", file]);
    }
    command.args(["-env-file", ".env"]);
    let json = testkit::process::output("compose-check", &mut command, Duration::from_secs(60))?;
    // JSON is YAML: serde_norway reads it, so no other parser is needed.
    serde_norway::from_str(&json).context("the output of compose-check is not JSON")
}

/// Every service, by name.
pub fn services(project: &Value) -> anyhow::Result<BTreeMap<String, &Value>> {
    let services = project.get("services").and_then(Value::as_mapping).context("no services")?;
    Ok(services.iter().filter_map(|(k, v)| Some((k.as_str()?.to_string(), v))).collect())
}

/// The service `name`.
pub fn service<'a>(project: &'a Value, name: &str) -> anyhow::Result<&'a Value> {
    project
        .get("services")
        .and_then(|s| s.get(name))
        .with_context(|| format!("the compose project has no service `{name}`"))
}

/// A string at a path of keys.
pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(*key))?.as_str()
}

/// A list of strings at a path of keys (empty if absent).
pub fn strings_at(value: &Value, path: &[&str]) -> Vec<String> {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// A service's environment (a variable without a value maps to "").
pub fn env_of(service: &Value) -> BTreeMap<String, String> {
    service
        .get("environment")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    Some((k.as_str()?.to_string(), v.as_str().unwrap_or("").to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The networks a service joins.
pub fn networks_of(service: &Value) -> BTreeSet<String> {
    service
        .get("networks")
        .and_then(Value::as_mapping)
        .map(|m| m.keys().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// A service's mount, as the loader normalises it.
#[derive(Debug)]
pub struct Mount {
    /// `bind`, `volume`, `tmpfs`.
    pub kind: String,
    /// The host path of a bind mount (absolute), the volume's name of a volume.
    pub source: PathBuf,
    /// Where it is in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// A bind mount's SELinux relabelling: `z` (shared), `Z` (private), or empty (none).
    pub selinux: String,
    /// A bind mount's propagation (`rslave`, ...), or empty (the engine's default, `rprivate`).
    pub propagation: String,
}

/// A service's mounts.
pub fn mounts(service: &Value) -> anyhow::Result<Vec<Mount>> {
    let Some(volumes) = service.get("volumes").and_then(Value::as_sequence) else {
        return Ok(Vec::new());
    };
    volumes
        .iter()
        .map(|v| {
            Ok(Mount {
                kind: str_at(v, &["type"]).context("a mount without a type")?.to_string(),
                source: PathBuf::from(str_at(v, &["source"]).unwrap_or_default()),
                target: str_at(v, &["target"]).context("a mount without a target")?.to_string(),
                read_only: v.get("read_only").and_then(Value::as_bool).unwrap_or(false),
                selinux: str_at(v, &["bind", "selinux"]).unwrap_or_default().to_string(),
                propagation: str_at(v, &["bind", "propagation"]).unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// Whether a named volume is mounted at `target`.
pub fn named_volume_at(service: &Value, target: &str) -> anyhow::Result<bool> {
    Ok(mounts(service)?
        .iter()
        .any(|m| m.kind == "volume" && m.target == target && !m.source.as_os_str().is_empty()))
}

/// `text` with Grafana's provisioning variables (`$NAME`, `${NAME}`) replaced by their values in
/// `env` (Grafana's environment), as Grafana expands them when it reads a provisioning file; an
/// error names a variable `env` does not set.
pub fn expand_grafana_variables(
    text: &str,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(inner) => {
                let end = inner.find('}').with_context(|| format!("unclosed ${{ in `{text}`"))?;
                (&inner[..end], &inner[end + 1..])
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        anyhow::ensure!(!name.is_empty(), "a lone `$` in `{text}`");
        let value = env.get(name).with_context(|| {
            format!("`{text}` reads ${name}, which Grafana's environment lacks")
        })?;
        out.push_str(value);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grafana_variables_expand_from_the_environment() -> anyhow::Result<()> {
        let env = BTreeMap::from([("URL".to_string(), "http://q:1".to_string())]);
        assert_eq!(expand_grafana_variables("${URL}/x", &env)?, "http://q:1/x");
        assert_eq!(expand_grafana_variables("a $URL b", &env)?, "a http://q:1 b");
        assert_eq!(expand_grafana_variables("plain", &env)?, "plain");
        assert!(expand_grafana_variables("${OTHER}", &env).is_err());
        assert!(expand_grafana_variables("${URL", &env).is_err());
        Ok(())
    }
}
