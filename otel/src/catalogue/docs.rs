//! Renders `docs/METRICS.md`, the reference from OTel names to the Prometheus series that
//! dashboards and alerts query. `cargo xtask docs` writes it; a test fails when the checked-in
//! file differs from what the catalogue says now.

use super::infrastructure::{self, INFRA_METRICS, Source};
use super::{ALL, Attribute, Scope, Values, prometheus, shared};
use std::fmt::Write;

/// The heading of the infrastructure section, after the services' tables: readers of the file
/// (the translation proofs) tell the two apart by it.
pub const INFRASTRUCTURE_HEADING: &str = "## Infrastructure metrics";

/// The whole of `docs/METRICS.md`.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "# Metrics reference\n\n\
         Generated from the catalogue in `otel/src/catalogue/` by `cargo xtask docs`; do not edit.\n\
         A test fails when this file is stale.\n\n\
         Names are what the OpenTelemetry Collector's `prometheus` exporter (the version pinned in\n\
         `collector/builder-config.yaml`, `translation_strategy: UnderscoreEscapingWithSuffixes`)\n\
         emits; the translation proof test checks them against the real collector.\n\n",
    );
    let _ = writeln!(
        out,
        "Every series also carries `{}` (from `service.namespace/service.name` and \
         `service.instance.id`) and `{}`. Other resource attributes are on `{}`.\n",
        prometheus::RESOURCE_LABELS.join("`, `"),
        prometheus::SCOPE_LABELS.join("`, `"),
        prometheus::TARGET_INFO,
    );
    out.push_str("| OTel instrument | Prometheus series | Type | Unit | Labels | Description |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for instrument in ALL {
        let family = prometheus::family(instrument);
        let series = family.series.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>();
        let labels = instrument.attributes.iter().map(describe).collect::<Vec<_>>();
        let _ = writeln!(
            out,
            "| `{}` ({}) | {} | {} | `{}` | {} | {} |",
            instrument.name,
            instrument.kind.otel_name(),
            series.join("<br>"),
            family.metric_type.as_str(),
            instrument.unit,
            if labels.is_empty() { "—".to_string() } else { labels.join("<br>") },
            instrument.description,
        );
    }
    out.push_str("\n## Histogram buckets\n\n");
    for instrument in ALL.iter().filter(|i| !i.buckets.is_empty()) {
        let bounds = instrument.buckets.iter().map(|b| b.to_string()).collect::<Vec<_>>();
        let _ =
            writeln!(out, "- `{}` ({}): {}", instrument.name, instrument.unit, bounds.join(", "));
    }
    instances_section(&mut out);
    infrastructure_section(&mut out);
    out
}

/// How the values of several instances of a service combine: the shared gauges.
fn instances_section(out: &mut String) {
    out.push_str(
        "\n## Across instances\n\n\
         A service may run as several instances (replicas), each exporting its own series (its\n\
         own `instance`). Counters and histograms count each instance's own events: sum them\n\
         over instances. Most gauges are the instance's own too (its pools, memory, in-flight\n\
         requests): sum them, or show them per instance. A stopped instance's last values stay\n\
         in the collector for `metric_expiration` (5m): its counters rate 0, its gauges are\n\
         still there, and the rules' sums of gauges leave out the instances of\n\
         `job_instance:process_uptime_seconds:frozen2m` (`prometheus/rules/recording.yaml`).\n\n\
         These gauges are readings of one shared thing that every instance reads alike: each\n\
         instance reports the same number, so combine them with `max` over instances, never\n\
         with `sum` (a test fails on any panel or rule that sums one):\n\n",
    );
    for instrument in shared() {
        let Scope::Shared { what, only_when } = instrument.scope else { continue };
        let series = prometheus::family(instrument).name;
        let when = only_when.map_or(String::new(), |(key, value)| {
            let label = prometheus::label_name(key);
            format!(" (the series with `{label}=\"{value}\"`; the others are the instance's own)")
        });
        let _ = writeln!(out, "- `{series}`{when}: {what}.");
    }
}

/// What the collector reads itself: the jobs with their budgets, then one row per family.
fn infrastructure_section(out: &mut String) {
    let _ = write!(
        out,
        "\n{INFRASTRUCTURE_HEADING}\n\n\
         What the collector reads itself rather than receives from a service: Postgres (through\n\
         postgres_exporter), Redis and the host, listed in `otel/src/catalogue/infrastructure.rs`;\n\
         the infrastructure translation proof checks them against the real collector. Every series\n\
         also carries `{}` and `{}`; each job also serves one `{}`.\n\n\
         Series per job (`target_info` included), with the budget the proof holds them to:\n\n",
        prometheus::RESOURCE_LABELS.join("`, `"),
        prometheus::SCOPE_LABELS.join("`, `"),
        prometheus::TARGET_INFO,
    );
    for job in infrastructure::JOBS {
        let _ = writeln!(
            out,
            "- `{}` (receiver `{}`, `instance` from `{}`): at most {} series; {}.",
            job.job, job.receiver, job.instance_variable, job.series_budget, job.cost
        );
    }
    let _ = writeln!(
        out,
        "\n`{}` also serves the `prometheus` receiver's own `{}`: one series each, counted in its \
         budget, read by nothing, and impossible to switch off in the receiver.\n",
        infrastructure::POSTGRES.job,
        infrastructure::UNUSED_SCRAPE_FAMILIES.join("`, `"),
    );
    out.push_str("| Prometheus family | Type | Labels | Job | Receiver | Source | Description |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for metric in INFRA_METRICS {
        let labels = metric.labels.iter().map(describe).collect::<Vec<_>>();
        let scraper = metric.scraper.map(|s| format!(" ({s})")).unwrap_or_default();
        let source = match metric.source {
            Source::Exporter(name) => format!("`{name}` (postgres_exporter)"),
            Source::Scrape(name) => format!("`{name}` (the receiver's own)"),
            Source::Otel { name, unit, kind } => {
                format!("`{name}` ({}, `{unit}`)", kind.otel_name())
            }
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | `{}` | `{}`{scraper} | {source} | {} |",
            metric.family,
            metric.metric_type.as_str(),
            if labels.is_empty() { "—".to_string() } else { labels.join("<br>") },
            metric.job.job,
            metric.job.receiver,
            metric.description,
        );
    }
}

fn describe(attribute: &Attribute) -> String {
    let values = match attribute.values {
        Values::OneOf(values) => values.join(", "),
        Values::BoundedBy(bound) => bound.to_string(),
    };
    let when = attribute.only_when.map(|w| format!("; only when {w}")).unwrap_or_default();
    format!("`{}` ({values}{when})", prometheus::label_name(attribute.key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_reference_is_current() {
        let path = testkit::repo_root().join("docs").join("METRICS.md");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("cannot read {}: {e}; run `cargo xtask docs`", path.display())
        });
        assert!(
            on_disk == markdown(),
            "docs/METRICS.md is stale: run `cargo xtask docs` and commit the result"
        );
    }

    #[test]
    fn every_infrastructure_family_and_job_is_listed_after_the_heading() {
        let doc = markdown();
        let (_, section) = doc.split_once(INFRASTRUCTURE_HEADING).expect("the heading");
        for metric in INFRA_METRICS {
            assert!(section.contains(&format!("| `{}` |", metric.family)), "{}", metric.family);
        }
        for job in infrastructure::JOBS {
            assert!(section.contains(&format!("at most {} series", job.series_budget)));
        }
    }

    #[test]
    fn every_instrument_and_series_is_listed() {
        let doc = markdown();
        for family in prometheus::families() {
            for series in &family.series {
                assert!(doc.contains(&format!("`{series}`")), "{series} missing");
            }
        }
    }
}
