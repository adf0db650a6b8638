//! The trace settings of the stack's services (`OTEL_TRACES_EXPORTER`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_TRACES_SAMPLER_ARG`), read from the repo's `.env`: compose interpolates the same lines into
//! the API's and the worker's environment, so the native stack (`cargo xtask stack`), the
//! benchmarks and compose run the services with one set of values, written once.

use anyhow::Context;

/// The variables, in the order [`trace_env`] returns them.
pub const TRACE_VARS: [&str; 3] =
    ["OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"];

/// `(name, value)` of each of [`TRACE_VARS`] as `.env` sets them, e.g.
/// `("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")`; an error names a missing or empty one.
pub fn trace_env() -> anyhow::Result<Vec<(&'static str, String)>> {
    let path = crate::repo_root().join(".env");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    from_env_file(&text).with_context(|| format!("in {}", path.display()))
}

/// [`trace_env`] from the text of an env file.
pub fn from_env_file(text: &str) -> anyhow::Result<Vec<(&'static str, String)>> {
    let vars = crate::tools::parse_env_file(text)?;
    TRACE_VARS
        .iter()
        .map(|&key| match vars.get(key).filter(|v| !v.is_empty()) {
            Some(value) => Ok((key, value.clone())),
            None => anyhow::bail!("{key} is not set (the services' trace settings live in .env)"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_three_variables_in_order() -> anyhow::Result<()> {
        let text = "# x\nOTEL_TRACES_SAMPLER_ARG=0.25\nOTEL_TRACES_EXPORTER=otlp\nOTHER=1\n\
                    OTEL_TRACES_SAMPLER=traceidratio\n";
        let env = from_env_file(text)?;
        assert_eq!(
            env,
            [
                ("OTEL_TRACES_EXPORTER", "otlp".to_string()),
                ("OTEL_TRACES_SAMPLER", "traceidratio".to_string()),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25".to_string()),
            ]
        );
        Ok(())
    }

    #[test]
    fn a_missing_or_empty_variable_is_named() {
        let err = from_env_file("OTEL_TRACES_EXPORTER=otlp\nOTEL_TRACES_SAMPLER=\n")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("OTEL_TRACES_SAMPLER is not set (the services' trace settings live in .env)")
        );
    }

    #[test]
    fn the_repo_sends_every_trace_to_the_collector() -> anyhow::Result<()> {
        let env = trace_env()?;
        let get = |key: &str| env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("OTEL_TRACES_EXPORTER"), Some("otlp"));
        assert_eq!(get("OTEL_TRACES_SAMPLER"), Some("parentbased_traceidratio"));
        assert_eq!(get("OTEL_TRACES_SAMPLER_ARG"), Some("1.0"));
        Ok(())
    }
}
