//! The infrastructure table against itself, the exporter's naming rules and
//! `collector-config.yaml`: what can be checked without running anything.

use super::*;
use crate::catalogue::prometheus::{self, RESOURCE_LABELS, SCOPE_LABELS};
use std::collections::{BTreeSet, HashSet};

fn config() -> String {
    let path = testkit::repo_root().join("collector-config.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn families_are_unique_and_every_job_has_some() {
    let mut seen = HashSet::new();
    for m in INFRA_METRICS {
        assert!(seen.insert(m.family), "{} listed twice", m.family);
        assert!(JOBS.contains(&m.job), "{}: job {} not in JOBS", m.family, m.job.job);
        assert!(!UNUSED_SCRAPE_FAMILIES.contains(&m.family), "{} is also unused", m.family);
    }
    for job in JOBS {
        assert!(metrics_of(job.job).next().is_some(), "{} has no metric", job.job);
        assert!(job.job.starts_with("orgraph/"), "{}", job.job);
    }
    assert!(is_infrastructure_job("orgraph/host"));
    assert!(!is_infrastructure_job("orgraph/api"));
    assert_eq!(find("redis_keys_evicted_total").map(|m| m.job), Some(REDIS));
}

#[test]
fn labels_are_distinct_and_never_the_resource_or_scope_ones() {
    for m in INFRA_METRICS {
        let mut keys = HashSet::new();
        for label in m.labels {
            assert!(keys.insert(label.key), "{}: {} twice", m.family, label.key);
            let reserved = RESOURCE_LABELS.iter().chain(SCOPE_LABELS).any(|r| *r == label.key);
            assert!(!reserved, "{}: {} is added by the exporter", m.family, label.key);
            assert_eq!(prometheus::label_name(label.key), label.key, "{}", m.family);
        }
        assert!(m.description.ends_with('.'), "{}: description should be a sentence", m.family);
        assert!(!m.help.is_empty(), "{} has no # HELP", m.family);
    }
}

#[test]
fn families_follow_the_exporters_naming() {
    for m in INFRA_METRICS {
        match m.source {
            Source::Otel { name, unit, kind } => {
                assert_eq!(prometheus::metric_name(name, unit, kind), m.family, "{name}");
                let counter = kind == Kind::Counter;
                assert_eq!(m.metric_type == MetricType::Counter, counter, "{}", m.family);
                assert!(m.job != POSTGRES, "{}: Postgres' metrics come from the exporter", name);
            }
            Source::Exporter(name) => {
                // The collector appends `_total` to a counter, and only to a counter.
                let want = match m.metric_type {
                    MetricType::Counter => format!("{name}_total"),
                    _ => name.to_string(),
                };
                assert_eq!(m.family, want, "{name}");
                assert_eq!(m.job, POSTGRES, "{name}");
            }
            Source::Scrape(name) => {
                assert_eq!(m.family, name);
                assert_eq!(m.job, POSTGRES, "{name}");
            }
        }
        assert_eq!(m.scraper.is_some(), m.job == HOST, "{}: a scraper iff host_metrics", m.family);
    }
}

#[test]
fn the_postgres_keep_regex_keeps_exactly_the_catalogued_exporter_metrics() {
    let config = config();
    let regex = config
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("regex: \"pg_"))
        .map(|rest| format!("pg_{}", rest.trim_end_matches('"')))
        .expect("a `regex: \"pg_…\"` keep line in collector-config.yaml");
    let kept: BTreeSet<&str> = regex.split('|').collect();
    let catalogued: BTreeSet<&str> = INFRA_METRICS
        .iter()
        .filter_map(|m| match m.source {
            Source::Exporter(name) => Some(name),
            _ => None,
        })
        .collect();
    assert_eq!(kept, catalogued, "prometheus/postgres keep regex vs the catalogue");
}

#[test]
fn the_metrics_enabled_in_the_config_are_exactly_the_catalogued_otel_ones() {
    let config = config();
    let enabled: BTreeSet<&str> =
        config.lines().map(str::trim).filter_map(|l| l.strip_suffix(": {enabled: true}")).collect();
    let catalogued: BTreeSet<&str> = INFRA_METRICS
        .iter()
        .filter_map(|m| match m.source {
            Source::Otel { name, .. } => Some(name),
            _ => None,
        })
        .collect();
    assert_eq!(enabled, catalogued, "`{{enabled: true}}` in collector-config.yaml");
}

#[test]
fn budgets_cover_at_least_one_series_per_family() {
    for job in JOBS {
        let families = metrics_of(job.job).count()
            + if *job == POSTGRES { UNUSED_SCRAPE_FAMILIES.len() } else { 0 };
        // + target_info.
        assert!(job.series_budget > families, "{}: budget {}", job.job, job.series_budget);
    }
    assert_eq!(REDIS.series_budget, metrics_of(REDIS.job).count() + 1, "Redis' is exact");
}
