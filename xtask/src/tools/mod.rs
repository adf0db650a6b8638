//! `cargo xtask tools`: makes every native tool the stack and the tests need exist, idempotently.
//! The Go-built ones (collector builder, collector, Prometheus, promtool, Alertmanager, amtool,
//! Jaeger, Thanos, actionlint, postgres_exporter) go to the cache outside the clone at the versions
//! of `.env`, at exactly the paths `testkit::tools` looks at, and so does schemathesis (the API's
//! fuzzer, a Python package: pip into a venv there); Postgres and Redis come from the OS packages.

mod actionlint;
mod alertmanager;
mod collector;
mod go;
mod go_module_build;
mod jaeger;
mod manifest;
mod postgres_exporter;
mod prometheus;
mod schemathesis;
mod system;
mod thanos;

use std::path::PathBuf;

/// Absolute paths of every tool, once they are known to exist.
#[derive(Debug)]
pub struct ToolSet {
    /// The collector built from `collector/builder-config.yaml`.
    pub otelcol: PathBuf,
    pub prometheus: PathBuf,
    pub promtool: PathBuf,
    pub alertmanager: PathBuf,
    pub amtool: PathBuf,
    /// The collector builder (ocb).
    pub builder: PathBuf,
    /// actionlint, the linter of `.github/workflows`.
    pub actionlint: PathBuf,
    /// postgres_exporter, which the collector scrapes for Postgres' metrics.
    pub postgres_exporter: PathBuf,
    /// Jaeger v2, the trace store the collector sends spans to.
    pub jaeger: PathBuf,
    /// Thanos (sidecar, Query, Store Gateway, Compactor), in front of the Prometheus replicas.
    pub thanos: PathBuf,
    /// schemathesis, the API's OpenAPI-driven fuzzer (in the cache's Python venv).
    pub schemathesis: PathBuf,
    /// Postgres' `pg_ctl` (with `initdb` and `postgres` beside it).
    pub pg_ctl: PathBuf,
    pub redis_server: PathBuf,
}

pub fn command(print: bool) -> anyhow::Result<()> {
    let tools = ensure()?;
    if print {
        for (name, path) in tools.lines() {
            println!("{name}={}", path.display());
        }
    }
    Ok(())
}

/// Builds or finds every tool. Progress goes to stderr.
pub fn ensure() -> anyhow::Result<ToolSet> {
    let versions = testkit::tools::versions()?;
    let manifest = manifest::Manifest::read(&manifest::path())?;
    manifest.check_version(&versions.otelcol)?;
    let builder = collector::ensure_builder(&versions.otelcol)?;
    let otelcol = collector::ensure_otelcol(&builder, &manifest)?;
    let (prometheus, promtool) = prometheus::ensure(&versions.prometheus)?;
    let (alertmanager, amtool) = alertmanager::ensure(&versions.alertmanager)?;
    let postgres_exporter = postgres_exporter::ensure(&versions.postgres_exporter)?;
    let jaeger = jaeger::ensure(&versions)?;
    let thanos = thanos::ensure(&versions)?;
    let actionlint = actionlint::ensure(&versions.actionlint)?;
    let schemathesis = schemathesis::ensure(&versions.schemathesis)?;
    let system = system::ensure()?;
    Ok(ToolSet {
        otelcol,
        prometheus,
        promtool,
        alertmanager,
        amtool,
        builder,
        actionlint,
        postgres_exporter,
        jaeger,
        thanos,
        schemathesis,
        pg_ctl: system.pg_ctl,
        redis_server: system.redis_server,
    })
}

impl ToolSet {
    /// `(name, path)` in the order `--print` prints them.
    pub fn lines(&self) -> [(&'static str, &PathBuf); 13] {
        [
            ("otelcol", &self.otelcol),
            ("prometheus", &self.prometheus),
            ("promtool", &self.promtool),
            ("alertmanager", &self.alertmanager),
            ("amtool", &self.amtool),
            ("builder", &self.builder),
            ("actionlint", &self.actionlint),
            ("postgres_exporter", &self.postgres_exporter),
            ("jaeger", &self.jaeger),
            ("thanos", &self.thanos),
            ("schemathesis", &self.schemathesis),
            ("pg_ctl", &self.pg_ctl),
            ("redis-server", &self.redis_server),
        ]
    }
}
