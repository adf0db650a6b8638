//! The infrastructure translation proof: the series `otel::catalogue::infrastructure` promises
//! (and docs/METRICS.md lists) are the ones the real collector serves for Postgres, Redis and
//! the host.
//!
//! It starts real Postgres with the platform's schema and the monitoring role made by
//! `postgres/monitoring-role.sql` (a random password, in a file), postgres_exporter logging in as
//! that role, real Redis, and the collector with the repo's own `collector-config.yaml` reading
//! all three and this host every 2 s. Then it asserts, exactly: every catalogued family with its
//! `# TYPE`, `# HELP`, label keys, `job` and `instance`; no other family under an infrastructure
//! job (apart from `target_info` and the `prometheus` receiver's own `scrape_*`); every job
//! within its series budget (the counts are printed); the infrastructure section of
//! docs/METRICS.md naming exactly what is served; and the collector's scraper telemetry, which
//! the "Redis unreachable" alert reads, growing while Redis answers and standing still once it is
//! gone. It needs the collector and postgres_exporter: `cargo xtask tools`.

use otel::catalogue::docs::INFRASTRUCTURE_HEADING;
use otel::catalogue::infrastructure::{
    self, HOST, INFRA_METRICS, InfraMetric, POSTGRES, REDIS, UNUSED_SCRAPE_FAMILIES,
};
use otel::catalogue::prometheus::{SCOPE_LABELS, TARGET_INFO};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use testkit::exposition::{Exposition, Sample};
use testkit::{Collector, Postgres, PostgresExporter, Redis, ScratchDir};

const HOST_INSTANCE: &str = "test-host";
/// The receivers' interval here (15 s in the stack), so the proof takes seconds.
const SCRAPE_INTERVAL: &str = "2s";
/// For the first scrapes of every receiver (the first a second after start), on a slow machine.
const SERVED_TIMEOUT: Duration = Duration::from_secs(60);
/// For a few scrapes of the redis receiver.
const SCRAPES_TIMEOUT: Duration = Duration::from_secs(30);

/// What the collector reads, besides the host.
struct Platform {
    postgres: Postgres,
    exporter: PostgresExporter,
    redis: Redis,
    // Holds the monitoring role's password file.
    _secrets: ScratchDir,
}

impl Platform {
    fn start() -> anyhow::Result<Platform> {
        let postgres = Postgres::start()?;
        apply_schema(&postgres)?;
        let secrets = ScratchDir::new("infrastructure-proof")?;
        let password = testkit::tokens::random()?;
        let password_file = secrets.path().join("postgres-monitor-password");
        testkit::tokens::write_private(&password_file, &password)?;
        postgres.cluster().apply_monitoring_role(&postgres.url(), &password)?;
        let exporter = PostgresExporter::start(postgres.port(), &password_file)?;
        let redis = Redis::start()?;
        Ok(Platform { postgres, exporter, redis, _secrets: secrets })
    }
}

/// The platform's own tables in `orgraph` (the services' migrations, in order), so the per-table
/// series exist and count as they do in the stack.
fn apply_schema(postgres: &Postgres) -> anyhow::Result<()> {
    let dir = testkit::repo_root().join("services").join("domain").join("migrations");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir)?.map(|entry| entry.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.retain(|f| f.extension().is_some_and(|e| e == "sql"));
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no migrations in {}", dir.display());
    for file in files {
        postgres.psql(&postgres.url(), &std::fs::read_to_string(&file)?)?;
    }
    Ok(())
}

#[test]
fn the_collector_serves_the_catalogued_infrastructure_series() {
    let mut platform = Platform::start().expect("postgres, postgres_exporter and redis start");
    let postgres_instance = format!("127.0.0.1:{}", platform.postgres.port());
    let redis_endpoint = format!("127.0.0.1:{}", platform.redis.port());
    let collector = Collector::start_with(&[
        ("POSTGRES_EXPORTER_ENDPOINT", &platform.exporter.endpoint()),
        ("POSTGRES_INSTANCE", &postgres_instance),
        ("REDIS_ENDPOINT", &redis_endpoint),
        ("HOST_INSTANCE", HOST_INSTANCE),
        ("INFRA_SCRAPE_INTERVAL", SCRAPE_INTERVAL),
    ])
    .expect("collector starts");
    let instances = BTreeMap::from([
        (POSTGRES.job, postgres_instance),
        (REDIS.job, redis_endpoint),
        (HOST.job, HOST_INSTANCE.to_string()),
    ]);

    let scrape = wait_until_served(&collector).unwrap_or_else(|e| {
        panic!(
            "{e:#}\ncollector log:\n{}\npostgres_exporter log:\n{}",
            collector.log(),
            platform.exporter.log()
        )
    });
    for metric in INFRA_METRICS {
        assert_family(&scrape, metric, &instances[metric.job.job]);
    }
    assert_nothing_else(&scrape);
    assert_values(&scrape);
    assert_budgets(&scrape);
    assert_matches_checked_in_reference(&scrape);
    assert_redis_scraper_telemetry(&collector, &mut platform.redis);
}

fn job_of(sample: &Sample) -> Option<&str> {
    sample.labels.get("job").map(String::as_str)
}

fn parse(text: &str) -> anyhow::Result<Exposition> {
    Exposition::parse(text).map_err(anyhow::Error::msg)
}

/// The samples of `name` under `job`.
fn of_job<'a>(scrape: &'a Exposition, name: &'a str, job: &'a str) -> Vec<&'a Sample> {
    scrape.samples_of(name).filter(|s| job_of(s) == Some(job)).collect()
}

/// The value of the one sample of `name` under `job`.
fn only_value(scrape: &Exposition, name: &str, job: &str) -> f64 {
    let samples = of_job(scrape, name, job);
    assert_eq!(samples.len(), 1, "one sample of {name} under {job}: {samples:?}");
    samples[0].value
}

/// A scrape once every catalogued family is served under its job and the exporter is logged in.
fn wait_until_served(collector: &Collector) -> anyhow::Result<Exposition> {
    let what = format!(
        "every catalogued infrastructure family, and pg_up 1 (postgres_exporter logged in as the \
         monitoring role), on {}",
        collector.prometheus_url()
    );
    testkit::wait_for(&what, SERVED_TIMEOUT, || {
        let scrape = parse(&collector.scrape()?)?;
        let missing: Vec<&str> = INFRA_METRICS
            .iter()
            .filter(|m| of_job(&scrape, m.family, m.job.job).is_empty())
            .map(|m| m.family)
            .collect();
        anyhow::ensure!(missing.is_empty(), "not served yet: {missing:?}");
        let pg_up = of_job(&scrape, "pg_up", POSTGRES.job).iter().map(|s| s.value).sum::<f64>();
        anyhow::ensure!(pg_up == 1.0, "pg_up is {pg_up}");
        Ok(Some(scrape))
    })
}

/// `# TYPE`, `# HELP`, and every sample's labels: job, instance, scope, and the catalogued keys
/// (all of those always present, the `only_when` ones at most), with their allowed values.
fn assert_family(scrape: &Exposition, metric: &InfraMetric, instance: &str) {
    let family = metric.family;
    let type_of = scrape.types.get(family).map(String::as_str);
    assert_eq!(type_of, Some(metric.metric_type.as_str()), "# TYPE of {family}");
    assert_eq!(
        scrape.help.get(family).map(String::as_str),
        Some(metric.help),
        "# HELP of {family}"
    );
    let always: BTreeSet<&str> =
        metric.labels.iter().filter(|l| l.only_when.is_none()).map(|l| l.key).collect();
    let allowed: BTreeSet<&str> = metric.labels.iter().map(|l| l.key).collect();
    let samples: Vec<&Sample> = scrape.samples_of(family).collect();
    assert!(!samples.is_empty(), "{family} missing");
    for sample in samples {
        let labels = &sample.labels;
        assert_eq!(job_of(sample), Some(metric.job.job), "job of {family}{labels:?}");
        assert_eq!(
            labels.get("instance").map(String::as_str),
            Some(instance),
            "{family}{labels:?}"
        );
        for scope in SCOPE_LABELS {
            assert!(labels.contains_key(*scope), "{scope} missing on {family}{labels:?}");
        }
        let keys: BTreeSet<&str> = labels
            .keys()
            .map(String::as_str)
            .filter(|k| !["job", "instance"].contains(k) && !SCOPE_LABELS.contains(k))
            .collect();
        assert!(
            always.is_subset(&keys) && keys.is_subset(&allowed),
            "label keys of {family}{labels:?}: want {always:?}, at most {allowed:?}"
        );
        for label in metric.labels {
            if let Some(value) = labels.get(label.key) {
                assert!(label.allows(value), "{family}: {}=\"{value}\" not catalogued", label.key);
            }
        }
    }
}

/// Under the infrastructure jobs: only catalogued families of that job, one `target_info` each,
/// and the receiver's own `scrape_*` (one series each, Postgres only).
fn assert_nothing_else(scrape: &Exposition) {
    let mut unexpected = BTreeSet::new();
    for sample in &scrape.samples {
        let Some(job) = job_of(sample).filter(|j| infrastructure::is_infrastructure_job(j)) else {
            continue;
        };
        let name = sample.name.as_str();
        let listed = name == TARGET_INFO
            || infrastructure::find(name).is_some_and(|m| m.job.job == job)
            || (job == POSTGRES.job && UNUSED_SCRAPE_FAMILIES.contains(&name));
        if !listed {
            unexpected.insert(format!("{name} ({job})"));
        }
    }
    assert!(unexpected.is_empty(), "served but not catalogued: {unexpected:?}");
    for job in infrastructure::JOBS {
        assert_eq!(of_job(scrape, TARGET_INFO, job.job).len(), 1, "target_info of {}", job.job);
    }
    for name in UNUSED_SCRAPE_FAMILIES {
        assert_eq!(of_job(scrape, name, POSTGRES.job).len(), 1, "{name}");
    }
}

/// Values that show each receiver really read its target.
fn assert_values(scrape: &Exposition) {
    assert_eq!(only_value(scrape, "up", POSTGRES.job), 1.0, "the exporter was scraped");
    assert_eq!(only_value(scrape, "pg_up", POSTGRES.job), 1.0, "the exporter logged in");
    let tables: BTreeSet<&str> = of_job(scrape, "pg_stat_user_tables_size_bytes", POSTGRES.job)
        .iter()
        .filter_map(|s| s.labels.get("relname").map(String::as_str))
        .collect();
    assert!(tables.contains("employees"), "the platform's tables: {tables:?}");
    let databases: BTreeSet<&str> = of_job(scrape, "pg_database_size_bytes", POSTGRES.job)
        .iter()
        .filter_map(|s| s.labels.get("datname").map(String::as_str))
        .collect();
    assert!(databases.contains(testkit::pg::DATABASE), "databases: {databases:?}");
    assert!(only_value(scrape, "redis_uptime_seconds_total", REDIS.job) >= 0.0);
    assert!(only_value(scrape, "redis_clients_connected", REDIS.job) >= 1.0, "the receiver");
    assert!(only_value(scrape, "system_cpu_logical_count", HOST.job) >= 1.0);
    assert!(only_value(scrape, "system_memory_limit_bytes", HOST.job) > 0.0);
}

/// Every job within its budget; the counts are printed for the catalogue's comments.
fn assert_budgets(scrape: &Exposition) {
    for job in infrastructure::JOBS {
        let count = scrape.samples.iter().filter(|s| job_of(s) == Some(job.job)).count();
        println!("{}: {count} series (budget {})", job.job, job.series_budget);
        let mut by_family = BTreeMap::<&str, usize>::new();
        for sample in scrape.samples.iter().filter(|s| job_of(s) == Some(job.job)) {
            *by_family.entry(sample.name.as_str()).or_default() += 1;
        }
        println!("  {by_family:?}");
        assert!(count <= job.series_budget, "{} serves {count} series: {by_family:?}", job.job);
    }
}

/// The infrastructure table of docs/METRICS.md names exactly the families served (written down
/// apart from the model: a catalogue change without regenerating the file fails here too).
fn assert_matches_checked_in_reference(scrape: &Exposition) {
    let path = testkit::repo_root().join("docs").join("METRICS.md");
    let reference = std::fs::read_to_string(path).expect("docs/METRICS.md");
    let (_, section) =
        reference.split_once(INFRASTRUCTURE_HEADING).expect("infrastructure heading");
    let documented: BTreeSet<&str> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('|').nth(1))
        .map(|cell| cell.trim().trim_matches('`'))
        .collect();
    let served: BTreeSet<&str> = scrape
        .samples
        .iter()
        .filter(|s| job_of(s).is_some_and(infrastructure::is_infrastructure_job))
        .map(|s| s.name.as_str())
        .filter(|n| *n != TARGET_INFO && !UNUSED_SCRAPE_FAMILIES.contains(n))
        .collect();
    assert_eq!(served, documented, "served vs docs/METRICS.md's infrastructure table");
}

/// The redis scraper's points, `(scraped, errored)`, from the collector's own telemetry.
fn redis_scraper_points(collector: &Collector) -> anyhow::Result<(f64, f64)> {
    let telemetry = parse(&collector.scrape_telemetry()?)?;
    let want = BTreeMap::from([
        ("receiver".to_string(), "redis".to_string()),
        ("scraper".to_string(), "redis".to_string()),
    ]);
    let value = |name: &str| {
        let samples: Vec<_> = telemetry.samples_of(name).filter(|s| s.labels == want).collect();
        anyhow::ensure!(samples.len() == 1, "one {name}{want:?}: {samples:?}");
        Ok(samples[0].value)
    };
    Ok((
        value("otelcol_scraper_scraped_metric_points")?,
        value("otelcol_scraper_errored_metric_points")?,
    ))
}

/// How many redis scrapes failed so far, by the collector's log.
fn failed_redis_scrapes(collector: &Collector) -> usize {
    collector
        .log()
        .lines()
        .filter(|l| l.contains("Error scraping metrics") && l.contains(r#""scraper": "redis""#))
        .count()
}

/// What the "Redis unreachable from the collector" alert reads: the redis scraper's scraped
/// points grow while Redis answers and stand still once it is gone (errored points stay at 0:
/// a failed scrape counts as neither).
fn assert_redis_scraper_telemetry(collector: &Collector, redis: &mut Redis) {
    let metric = "otelcol_scraper_scraped_metric_points{receiver=\"redis\",scraper=\"redis\"}";
    let first = testkit::wait_for(&format!("{metric} above 0"), SCRAPES_TIMEOUT, || {
        let now = redis_scraper_points(collector)?;
        Ok((now.0 > 0.0).then_some(now))
    })
    .unwrap_or_else(|e| panic!("{e:#}\ncollector log:\n{}", collector.log()));
    let grown =
        testkit::wait_for(&format!("{metric} to grow past {}", first.0), SCRAPES_TIMEOUT, || {
            let now = redis_scraper_points(collector)?;
            Ok((now.0 > first.0).then_some(now))
        })
        .unwrap_or_else(|e| panic!("{e:#}\ncollector log:\n{}", collector.log()));
    assert_eq!(grown.1, 0.0, "errored points while Redis answers");

    let failed_before = failed_redis_scrapes(collector);
    redis.stop().expect("redis stops");
    let failures_after = |n: usize| {
        testkit::wait_for(
            &format!("failed redis scrape number {} in the collector log", n + 1),
            SCRAPES_TIMEOUT,
            || {
                let failed = failed_redis_scrapes(collector);
                Ok((failed > n).then_some(failed))
            },
        )
        .unwrap_or_else(|e| panic!("{e:#}\ncollector log:\n{}", collector.log()))
    };
    // Scrapes run one after another: once one failed, every earlier one has been counted.
    let failed = failures_after(failed_before);
    let stopped = redis_scraper_points(collector).expect("scraper points with Redis down");
    failures_after(failed);
    let still = redis_scraper_points(collector).expect("scraper points with Redis down");
    assert_eq!(still.0, stopped.0, "{metric} grew with Redis down");
    assert_eq!(still.1, 0.0, "errored points with Redis down: a failed scrape counts as neither");
    assert!(stopped.0 >= grown.0, "{metric} went down");
}
