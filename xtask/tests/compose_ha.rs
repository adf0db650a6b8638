//! The HA variant of the compose stack, `compose.ha.yaml` merged over `compose.yaml` (as
//! `docker compose -f compose.yaml -f compose.ha.yaml` merges them), loaded by Compose's own
//! loader (`xtask::compose`, through `xtask/compose-check`) and held against the repo: the images
//! are pinned in `.env`; every mounted repo file exists; the agent collector runs exactly
//! collector-config.yaml, collector/agent.yaml and collector/gateways-dns.yaml, and the gateways
//! collector/gateway.yaml, found by the name the DNS resolver asks; the API and the worker run
//! replicas on published port ranges; Prometheus finds the gateways and the replicas by DNS under
//! the job names the rules use (and promtool accepts that layout); two Prometheus replicas with
//! distinct `replica` labels and local compaction off, each with a Thanos sidecar on its data
//! volume; Query deduplicating on `replica` over both sidecars and the Store Gateway; the
//! Compactor's retention; the Alertmanager cluster; Grafana's metrics on Thanos Query. The
//! single-node compose.yaml itself is `tests/compose.rs`'s.

use anyhow::Context;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use xtask::compose::{self, env_of, mounts, networks_of, service, services, str_at, strings_at};

/// The override file.
const HA_FILE: &str = "compose.ha.yaml";

/// The Prometheus replicas and the `replica` label each must carry.
const PROMETHEUS_REPLICAS: [&str; 2] = ["prometheus", "prometheus-b"];

/// The Alertmanager cluster's members.
const ALERTMANAGERS: [&str; 2] = ["alertmanager", "alertmanager-b"];

/// Where Prometheus' config directory is in its containers, and the two directories compose.ha.yaml
/// mounts into it (relative to the repo's prometheus/): the targets and the extra scrape jobs.
const PROMETHEUS_DIR: &str = "/etc/prometheus";
const HA_TARGETS: (&str, &str) = ("targets-compose-ha", "targets");
const HA_SCRAPE: (&str, &str) = ("scrape-compose-ha", "scrape");

/// Services without a health check, and why: the contrib collector image (the agent and the
/// gateways) is distroless, with nothing inside that could probe its health endpoint.
const NO_HEALTHCHECK: [&str; 2] = ["otel-collector", "gateway"];

/// The Thanos components' HTTP and gRPC ports (their defaults, which compose.ha.yaml spells out).
const THANOS_HTTP: u16 = 10902;
const THANOS_GRPC: u16 = 10901;

// ---------------------------------------------------------------------------------------------
// The checks.

#[test]
fn the_ha_file_pins_every_image_in_env_and_leaves_compose_yaml_small() -> anyhow::Result<()> {
    let project = project()?;
    let env = env_file()?;
    let mut problems = Vec::new();
    let text = std::fs::read_to_string(root().join(HA_FILE))?;
    let image_lines: Vec<&str> =
        text.lines().map(str::trim).filter(|l| l.starts_with("image:")).collect();
    if image_lines.is_empty() {
        problems.push(format!("{HA_FILE}: no image line (expected Thanos')"));
    }
    for line in image_lines {
        let used = variables_in(line);
        if used.is_empty() {
            problems.push(format!("{HA_FILE}: `{line}` spells its version instead of .env"));
        }
        for var in used.iter().filter(|v| !env.contains_key(*v)) {
            problems.push(format!("{HA_FILE}: `{line}` uses {var}, which .env does not set"));
        }
    }
    let thanos = env.get("THANOS_VERSION").context(".env sets no THANOS_VERSION")?;
    for (name, service) in services(project)? {
        let image = str_at(service, &["image"]).unwrap_or_default();
        let tag = image.rsplit('/').next().and_then(|l| l.split_once(':')).map(|(_, t)| t);
        if !tag.is_some_and(|t| t.contains(|c: char| c.is_ascii_digit()) && t != "latest") {
            problems.push(format!("{name}: image `{image}` is not pinned to a version"));
        }
        if image.starts_with("quay.io/thanos/thanos:")
            && image != format!("quay.io/thanos/thanos:v{thanos}")
        {
            problems.push(format!("{name}: `{image}` is not THANOS_VERSION ({thanos}) of .env"));
        }
    }
    // `docker compose up` alone stays the single-node stack: none of the HA services.
    let single = compose::load(&["compose.yaml"])?;
    let single_services: BTreeSet<String> = services(&single)?.into_keys().collect();
    let added: Vec<String> =
        services(project)?.into_keys().filter(|n| !single_services.contains(n)).collect();
    for needed in ["gateway", "prometheus-b", "alertmanager-b", "thanos-query"] {
        if !added.iter().any(|a| a == needed) {
            problems
                .push(format!("{needed}: not a service compose.ha.yaml adds (added: {added:?})"));
        }
    }
    report("HA images", problems)
}

#[test]
fn every_mounted_repo_file_exists_and_is_read_only_with_z() -> anyhow::Result<()> {
    let root = root();
    let mut problems = Vec::new();
    for (name, service) in services(project()?)? {
        for m in mounts(service)?.into_iter().filter(|m| m.kind == "bind") {
            // The host's root for host_metrics: tests/compose.rs checks it.
            if m.source == Path::new("/") {
                continue;
            }
            if !m.source.starts_with(&root) || !m.source.exists() {
                problems
                    .push(format!("{name}: mounts {}, which is no repo file", m.source.display()));
            }
            if !m.read_only || m.selinux != "z" {
                problems.push(format!(
                    "{name}: {} must be mounted `:ro,z` (read-only {}, selinux `{}`)",
                    m.source.display(),
                    m.read_only,
                    m.selinux
                ));
            }
        }
    }
    report("HA mounts", problems)
}

#[test]
fn the_agent_runs_collector_config_then_agent_then_gateways_dns() -> anyhow::Result<()> {
    let project = project()?;
    let agent = service(project, "otel-collector")?;
    let configs = mounted_configs(agent, "--config=")?;
    let expected = ["collector-config.yaml", "collector/agent.yaml", "collector/gateways-dns.yaml"];
    let expected: Vec<PathBuf> = expected.iter().map(|f| root().join(f)).collect();
    let mut problems = Vec::new();
    if configs != expected {
        problems
            .push(format!("otel-collector runs the configs {configs:?}, expected {expected:?}"));
    }
    // The services still send to the agent, on a network they share.
    for name in ["api", "worker"] {
        let s = service(project, name)?;
        let endpoint = env_of(s).get("OTEL_EXPORTER_OTLP_ENDPOINT").cloned().unwrap_or_default();
        if host_port(&endpoint).map(|(h, _)| h) != Some("otel-collector") {
            problems.push(format!("{name}: sends OTLP to `{endpoint}`, not the agent"));
        }
        if networks_of(s).is_disjoint(&networks_of(agent)) {
            problems.push(format!("{name}: shares no network with the agent"));
        }
    }
    // It serves no series any more: its prometheus exporter's port is not published.
    let published = published_targets(agent);
    if published.contains(&8889) {
        problems.push("otel-collector: publishes 8889, but the agent serves no series".into());
    }
    report("agent", problems)
}

#[test]
fn the_gateways_run_gateway_yaml_where_the_agents_resolver_and_prometheus_look()
-> anyhow::Result<()> {
    let project = project()?;
    let gateway = service(project, "gateway")?;
    let mut problems = Vec::new();
    let configs = mounted_configs(gateway, "--config=")?;
    if configs != [root().join("collector/gateway.yaml")] {
        problems.push(format!("gateway runs {configs:?}, expected collector/gateway.yaml alone"));
    }
    if replicas(gateway) < 2 {
        problems.push(format!("gateway: {} replica(s), expected 2 or more", replicas(gateway)));
    }
    // The agent's resolver asks for the service's name, on the gateways' OTLP port.
    let dns = xtask::yaml::read(&root().join("collector/gateways-dns.yaml"))?;
    let otlp_port = config_default_port("collector/gateway.yaml", "COLLECTOR_OTLP_GRPC_ENDPOINT")?;
    for exporter in ["load_balancing/metrics", "load_balancing/traces"] {
        let resolver = ["exporters", exporter, "resolver", "dns"];
        let at = |key: &str| {
            let mut path = resolver.to_vec();
            path.push(key);
            path.iter().try_fold(&dns, |v, k| v.get(*k)).cloned()
        };
        if at("hostname").as_ref().and_then(Value::as_str) != Some("gateway") {
            problems.push(format!("gateways-dns.yaml: {exporter} does not resolve `gateway`"));
        }
        if at("port").as_ref().and_then(Value::as_str) != Some(otlp_port.to_string().as_str()) {
            problems.push(format!("gateways-dns.yaml: {exporter}'s port is not {otlp_port}"));
        }
    }
    if networks_of(gateway).is_disjoint(&networks_of(service(project, "otel-collector")?)) {
        problems.push("gateway: shares no network with the agent".into());
    }
    // Prometheus scrapes every gateway's exporter and telemetry by DNS.
    let exporter = config_default_port("collector/gateway.yaml", "COLLECTOR_PROMETHEUS_ENDPOINT")?;
    let telemetry: u16 =
        config_default("collector/gateway.yaml", "COLLECTOR_TELEMETRY_PORT")?.parse()?;
    let jobs = dns_jobs()?;
    for (job, port) in [("otel-collector-exporter", exporter), ("otel-collector", telemetry)] {
        if !jobs.iter().any(|j| j.job == job && j.names == ["gateway"] && j.port == port) {
            problems.push(format!(
                "prometheus/{}: no DNS job `{job}` on gateway:{port} (found {jobs:?})",
                HA_SCRAPE.0
            ));
        }
    }
    for name in PROMETHEUS_REPLICAS {
        if networks_of(service(project, name)?).is_disjoint(&networks_of(gateway)) {
            problems.push(format!("{name}: shares no network with the gateways"));
        }
    }
    report("gateways", problems)
}

#[test]
fn api_and_worker_run_replicas_on_port_ranges_probed_by_dns() -> anyhow::Result<()> {
    let project = project()?;
    let jobs = dns_jobs()?;
    let mut problems = Vec::new();
    for (name, probe) in [("api", "probe/api"), ("worker", "probe/worker")] {
        let s = service(project, name)?;
        let n = replicas(s);
        if n < 2 {
            problems.push(format!("{name}: {n} replica(s), expected 2 or more"));
        }
        for port in s.get("ports").and_then(Value::as_sequence).into_iter().flatten() {
            let published = str_at(port, &["published"]).unwrap_or_default();
            let width = match published.split_once('-') {
                Some((a, b)) => b.parse::<u32>()? + 1 - a.parse::<u32>()?,
                None => 1,
            };
            if width < n {
                problems.push(format!(
                    "{name}: publishes `{published}` for {n} replicas: each needs a port"
                ));
            }
        }
        // The probe job sees every replica: by DNS on the service's name, at its listen port.
        let listen = env_of(s)
            .iter()
            .find(|(k, _)| k.ends_with("_ADDR"))
            .and_then(|(_, v)| v.rsplit_once(':')?.1.parse::<u16>().ok());
        if !jobs.iter().any(|j| j.job == probe && j.names == [name] && Some(j.port) == listen) {
            problems.push(format!("no DNS job `{probe}` on {name}:{listen:?} (found {jobs:?})"));
        }
        if networks_of(s).is_disjoint(&networks_of(service(project, "prometheus")?)) {
            problems.push(format!("{name}: shares no network with Prometheus"));
        }
    }
    report("replicas", problems)
}

/// Every DNS job of prometheus/scrape-compose-ha stands in for a prometheus.yml job: it sets
/// `job` to that job's name and is otherwise that job (so the two cannot drift), and the stood-in
/// job's HA target file names none of the hosts the DNS job finds (nothing is scraped twice).
#[test]
fn the_dns_jobs_stand_in_for_prometheus_yml_jobs() -> anyhow::Result<()> {
    let dir = root().join("prometheus");
    let config = xtask::yaml::read(&dir.join("prometheus.yml"))?;
    let base: BTreeMap<String, &Value> = config
        .get("scrape_configs")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|j| Some((str_at(j, &["job_name"])?.to_string(), j)))
        .collect();
    let mut problems = Vec::new();
    let scrape_glob = strings_at(&config, &["scrape_config_files"]);
    if scrape_glob != [format!("{}/*.yaml", HA_SCRAPE.1)] {
        problems.push(format!(
            "prometheus.yml: scrape_config_files {scrape_glob:?}, expected [\"{}/*.yaml\"]",
            HA_SCRAPE.1
        ));
    }
    // Natively and in compose.yaml the directory holds no job.
    if xtask::yaml::files_in(&dir.join(HA_SCRAPE.1)).is_ok() {
        problems.push(format!(
            "prometheus/{}/ holds scrape jobs: the single-node stack would run them",
            HA_SCRAPE.1
        ));
    }
    let jobs = dns_jobs()?;
    if jobs.is_empty() {
        problems.push(format!("prometheus/{}: no DNS job", HA_SCRAPE.0));
    }
    for job in &jobs {
        let Some(original) = base.get(&job.job) else {
            problems.push(format!(
                "{}: sets job `{}`, which prometheus.yml has not",
                job.name, job.job
            ));
            continue;
        };
        let strip = |v: &Value| -> Value {
            let mut v = v.clone();
            if let Some(m) = v.as_mapping_mut() {
                for key in ["job_name", "file_sd_configs", "dns_sd_configs", "relabel_configs"] {
                    m.remove(key);
                }
            }
            v
        };
        if strip(&job.config) != strip(original) {
            problems.push(format!(
                "{}: differs from prometheus.yml's job {} beyond its discovery ({:?} vs {:?})",
                job.name,
                job.job,
                strip(&job.config),
                strip(original)
            ));
        }
        for file in original
            .get("file_sd_configs")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .flat_map(|c| strings_at(c, &["files"]))
        {
            let Some(file) = file.strip_prefix(&format!("{}/", HA_TARGETS.1)) else { continue };
            for (host, port) in targets(&dir.join(HA_TARGETS.0).join(file))? {
                if job.names.contains(&host) && port == job.port {
                    problems.push(format!(
                        "prometheus/{}/{file}: {host}:{port} is also found by {}: scraped twice",
                        HA_TARGETS.0, job.name
                    ));
                }
            }
        }
    }
    report("DNS jobs", problems)
}

/// The HA target files: the same names as the native ones, each target a service on
/// Prometheus' networks.
#[test]
fn the_ha_targets_are_services_prometheus_reaches() -> anyhow::Result<()> {
    let project = project()?;
    let dir = root().join("prometheus");
    let names = |sub: &str| -> anyhow::Result<BTreeSet<String>> {
        std::fs::read_dir(dir.join(sub))
            .with_context(|| format!("listing prometheus/{sub}"))?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect()
    };
    let mut problems = Vec::new();
    let (native, ha) = (names("targets")?, names(HA_TARGETS.0)?);
    if native != ha {
        problems.push(format!(
            "prometheus/{} holds {ha:?}, prometheus/targets {native:?}",
            HA_TARGETS.0
        ));
    }
    let prometheus_networks = networks_of(service(project, "prometheus")?);
    let all = services(project)?;
    for file in &ha {
        for (host, port) in targets(&dir.join(HA_TARGETS.0).join(file))? {
            match all.get(&host) {
                Some(s) if !networks_of(s).is_disjoint(&prometheus_networks) => {
                    if !listen_ports(project, &host)?.contains(&port) {
                        problems.push(format!(
                            "prometheus/{}/{file}: {host} does not listen on {port}",
                            HA_TARGETS.0
                        ));
                    }
                }
                _ => problems.push(format!(
                    "prometheus/{}/{file}: `{host}` is no service on Prometheus' networks",
                    HA_TARGETS.0
                )),
            }
        }
    }
    // Both Alertmanagers receive the alerts (alerting.alertmanagers reads alertmanager.yaml).
    let alertmanagers: BTreeSet<String> =
        targets(&dir.join(HA_TARGETS.0).join("alertmanager.yaml"))?
            .into_iter()
            .map(|(h, _)| h)
            .collect();
    let expected: BTreeSet<String> = ALERTMANAGERS.iter().map(|s| s.to_string()).collect();
    if alertmanagers != expected {
        problems.push(format!("alerts go to {alertmanagers:?}, expected {expected:?}"));
    }
    report("HA targets", problems)
}

/// promtool accepts prometheus.yml as compose.ha.yaml lays it out (the HA targets and scrape jobs
/// in place of the native ones).
#[test]
fn promtool_accepts_the_ha_layout() -> anyhow::Result<()> {
    let promtool = testkit::tools::require(&testkit::tools::promtool_path()?, "promtool")?;
    let scratch = testkit::ScratchDir::new("prometheus-ha")?;
    let source = root().join("prometheus");
    let layout = scratch.path().join("prometheus");
    std::fs::create_dir_all(layout.join("rules"))?;
    std::fs::copy(source.join("prometheus.yml"), layout.join("prometheus.yml"))?;
    for (from, to) in [("rules", "rules"), HA_TARGETS, HA_SCRAPE] {
        std::fs::create_dir_all(layout.join(to))?;
        for entry in std::fs::read_dir(source.join(from))? {
            let path = entry?.path();
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, layout.join(to).join(name))?;
            }
        }
    }
    let mut command = Command::new(promtool);
    command.args(["check", "config"]).arg(layout.join("prometheus.yml"));
    let out =
        testkit::process::output("promtool check config", &mut command, Duration::from_secs(60))?;
    anyhow::ensure!(out.contains("SUCCESS"), "promtool said: {out}");
    Ok(())
}

#[test]
fn two_prometheus_replicas_with_distinct_labels_and_local_compaction_off() -> anyhow::Result<()> {
    let project = project()?;
    let mut problems = Vec::new();
    let mut labels = BTreeSet::new();
    let mut volumes = BTreeSet::new();
    for name in PROMETHEUS_REPLICAS {
        let s = service(project, name)?;
        let command = strings_at(s, &["command"]);
        let flag = |f: &str| flag_value(&command, f);
        let label = env_of(s).get("PROMETHEUS_REPLICA").cloned().unwrap_or_default();
        if label.is_empty() || !labels.insert(label.clone()) {
            problems.push(format!("{name}: PROMETHEUS_REPLICA `{label}` is empty or not unique"));
        }
        let (min, max) = (
            flag("--storage.tsdb.min-block-duration="),
            flag("--storage.tsdb.max-block-duration="),
        );
        if min.is_none() || min != max {
            problems.push(format!(
                "{name}: min-block-duration {min:?} and max-block-duration {max:?} must be set and \
                 equal (the sidecar needs local compaction off)"
            ));
        }
        if flag("--storage.tsdb.retention.time=").is_none() {
            problems.push(format!("{name}: no local retention"));
        }
        if flag("--config.file=") != Some(format!("{PROMETHEUS_DIR}/prometheus.yml")) {
            problems.push(format!("{name}: does not run {PROMETHEUS_DIR}/prometheus.yml"));
        }
        let ms = mounts(s)?;
        for (source, target) in [
            (root().join("prometheus"), PROMETHEUS_DIR.to_string()),
            (
                root().join("prometheus").join(HA_TARGETS.0),
                format!("{PROMETHEUS_DIR}/{}", HA_TARGETS.1),
            ),
            (
                root().join("prometheus").join(HA_SCRAPE.0),
                format!("{PROMETHEUS_DIR}/{}", HA_SCRAPE.1),
            ),
        ] {
            if !ms.iter().any(|m| m.source == source && m.target == target) {
                problems.push(format!("{name}: {} is not mounted at {target}", source.display()));
            }
        }
        match data_volume(s, flag("--storage.tsdb.path=").as_deref())? {
            Some(volume) if volumes.insert(volume.clone()) => {}
            other => {
                problems.push(format!("{name}: its TSDB is on {other:?}, not a volume of its own"))
            }
        }
        if networks_of(s).is_disjoint(&networks_of(service(project, "thanos-query")?)) {
            problems.push(format!("{name}: shares no network with the Thanos components"));
        }
    }
    report("Prometheus replicas", problems)
}

#[test]
fn each_sidecar_shares_its_replicas_data_volume_and_the_bucket() -> anyhow::Result<()> {
    let project = project()?;
    let all = services(project)?;
    let mut problems = Vec::new();
    for name in PROMETHEUS_REPLICAS {
        let prometheus = service(project, name)?;
        let command = strings_at(prometheus, &["command"]);
        let tsdb = flag_value(&command, "--storage.tsdb.path=");
        let volume = data_volume(prometheus, tsdb.as_deref())?;
        let sidecars: Vec<(&String, &&Value)> = all
            .iter()
            .filter(|(_, s)| {
                let c = strings_at(s, &["command"]);
                c.first().map(String::as_str) == Some("sidecar")
                    && flag_value(&c, "--prometheus.url=")
                        .as_deref()
                        .and_then(host_port)
                        .map(|(h, _)| h.to_string())
                        == Some(name.to_string())
            })
            .collect();
        let [(sidecar, s)] = sidecars.as_slice() else {
            problems.push(format!("{name}: {} sidecars point at it, expected one", sidecars.len()));
            continue;
        };
        let c = strings_at(s, &["command"]);
        let theirs = data_volume(s, flag_value(&c, "--tsdb.path=").as_deref())?;
        if theirs.is_none() || theirs != volume {
            problems.push(format!(
                "{sidecar}: its --tsdb.path is on {theirs:?}, {name}'s on {volume:?}"
            ));
        }
        // It writes its upload state there: the user of the Prometheus image (nobody).
        if str_at(s, &["user"]) != Some("65534:65534") {
            problems.push(format!(
                "{sidecar}: runs as {:?}, not Prometheus' nobody (65534)",
                str_at(s, &["user"])
            ));
        }
        if networks_of(s).is_disjoint(&networks_of(prometheus)) {
            problems.push(format!("{sidecar}: shares no network with {name}"));
        }
    }
    // Every component that reads the bucket: thanos/bucket.yaml, the shared volume at /data, run in /data.
    let bucket = xtask::yaml::read(&root().join("thanos/bucket.yaml"))?;
    let directory = str_at(&bucket, &["config", "directory"]).unwrap_or_default().to_string();
    if str_at(&bucket, &["type"]) != Some("FILESYSTEM") || directory.starts_with('/') {
        problems.push(format!("thanos/bucket.yaml: expected a FILESYSTEM bucket at a relative directory, found `{directory}`"));
    }
    let mut bucket_volumes = BTreeSet::new();
    for (name, s) in &all {
        let c = strings_at(s, &["command"]);
        let Some(config) = flag_value(&c, "--objstore.config-file=") else { continue };
        match mounted_file(s, &config)? {
            Some(p) if p == root().join("thanos/bucket.yaml") => {}
            other => problems.push(format!("{name}: --objstore.config-file={config} is {other:?}")),
        }
        if str_at(s, &["working_dir"]) != Some("/data") {
            problems.push(format!(
                "{name}: does not run in /data (thanos/bucket.yaml's ./{directory} is relative)"
            ));
        }
        match data_volume(s, Some("/data"))? {
            Some(v) => {
                bucket_volumes.insert(v);
            }
            None => problems.push(format!("{name}: no bucket volume at /data")),
        }
    }
    if bucket_volumes.len() != 1 {
        problems.push(format!("the bucket must be one volume, found {bucket_volumes:?}"));
    }
    // thanos-init hands the bucket to the components' user before any starts.
    let init = service(project, "thanos-init")?;
    let script = strings_at(init, &["command"]).join("\n");
    if !script.contains(&format!("/data/{}", directory.trim_start_matches("./")))
        || !script.contains("chown 65534:65534")
    {
        problems
            .push(format!("thanos-init: does not create /data/{directory} for 65534: {script}"));
    }
    if bucket_volumes
        .iter()
        .any(|v| data_volume(init, Some("/data")).ok().flatten().as_ref() != Some(v))
    {
        problems.push("thanos-init: does not prepare the bucket volume".into());
    }
    report("sidecars and bucket", problems)
}

#[test]
fn query_deduplicates_on_replica_over_both_sidecars_and_the_store() -> anyhow::Result<()> {
    let project = project()?;
    let query = service(project, "thanos-query")?;
    let command = strings_at(query, &["command"]);
    let mut problems = Vec::new();
    if command.first().map(String::as_str) != Some("query") {
        problems.push(format!("thanos-query: not `query`: {command:?}"));
    }
    // Every external label (the replica's, and those the same on every replica) is dropped
    // from query results, so a series looks as it does on one Prometheus.
    let config = xtask::yaml::read(&root().join("prometheus/prometheus.yml"))?;
    for label in xtask::ha::external_labels()? {
        if !command.iter().any(|c| *c == format!("--query.replica-label={label}")) {
            problems.push(format!("thanos-query: no --query.replica-label={label}"));
        }
    }
    if str_at(&config, &["global", "external_labels", "replica"]) != Some("${PROMETHEUS_REPLICA}") {
        problems
            .push("prometheus.yml: external label `replica` is not ${PROMETHEUS_REPLICA}".into());
    }
    let endpoints: BTreeSet<String> =
        command.iter().filter_map(|c| c.strip_prefix("--endpoint=")).map(str::to_string).collect();
    let mut expected = BTreeSet::new();
    for (name, s) in services(project)? {
        let c = strings_at(s, &["command"]);
        if matches!(c.first().map(String::as_str), Some("sidecar" | "store")) {
            let grpc = flag_value(&c, "--grpc-address=").unwrap_or_default();
            let port = grpc.rsplit_once(':').map(|(_, p)| p.to_string()).unwrap_or_default();
            expected.insert(format!("{name}:{port}"));
            if networks_of(s).is_disjoint(&networks_of(query)) {
                problems.push(format!("{name}: shares no network with thanos-query"));
            }
        }
    }
    if expected.len() != 3 || endpoints != expected {
        problems.push(format!(
            "thanos-query reaches {endpoints:?}, expected both sidecars and the store {expected:?}"
        ));
    }
    if !command.iter().any(|c| c == &format!("--http-address=0.0.0.0:{THANOS_HTTP}")) {
        problems.push(format!("thanos-query: does not serve HTTP on 0.0.0.0:{THANOS_HTTP}"));
    }
    if !published_targets(query).contains(&THANOS_HTTP) {
        problems.push(format!("thanos-query: {THANOS_HTTP} is not published"));
    }
    report("Thanos Query", problems)
}

#[test]
fn one_compactor_downsamples_and_applies_the_retention() -> anyhow::Result<()> {
    let project = project()?;
    let compactors: Vec<String> = services(project)?
        .into_iter()
        .filter(|(_, s)| strings_at(s, &["command"]).first().map(String::as_str) == Some("compact"))
        .map(|(n, _)| n)
        .collect();
    let [name] = compactors.as_slice() else {
        anyhow::bail!("expected exactly one compactor, found {compactors:?}");
    };
    let s = service(project, name)?;
    let command = strings_at(s, &["command"]);
    let mut problems = Vec::new();
    if replicas(s) != 1 {
        problems.push(format!("{name}: {} replicas: the bucket takes one compactor", replicas(s)));
    }
    // The retention the native proof's compactor runs with too.
    for flag in std::iter::once("--wait").chain(xtask::ha::COMPACTOR_RETENTION) {
        if !command.iter().any(|c| c == flag) {
            problems.push(format!("{name}: no `{flag}` in {command:?}"));
        }
    }
    if command.iter().any(|c| c.starts_with("--downsampling.disable")) {
        problems.push(format!("{name}: downsampling is off"));
    }
    // Raw data lives as long in the bucket as on the replicas.
    let local = flag_value(
        &strings_at(service(project, "prometheus")?, &["command"]),
        "--storage.tsdb.retention.time=",
    );
    if local.as_deref() != Some("30d") {
        problems.push(format!("prometheus: local retention {local:?}, the bucket's raw 30d"));
    }
    report("compactor", problems)
}

#[test]
fn the_alertmanagers_form_one_cluster_each_with_its_alert_log() -> anyhow::Result<()> {
    let project = project()?;
    let all = services(project)?;
    let mut problems = Vec::new();
    for (i, name) in ALERTMANAGERS.iter().enumerate() {
        let other = ALERTMANAGERS[1 - i];
        let s = service(project, name)?;
        let command = strings_at(s, &["command"]);
        let listen = flag_value(&command, "--cluster.listen-address=").unwrap_or_default();
        let port = listen.rsplit_once(':').map(|(_, p)| p.to_string()).unwrap_or_default();
        if !listen.starts_with("0.0.0.0:") {
            problems.push(format!(
                "{name}: cluster listen address `{listen}`, expected 0.0.0.0:<port>"
            ));
        }
        let peers: Vec<&str> =
            command.iter().filter_map(|c| c.strip_prefix("--cluster.peer=")).collect();
        if peers != [format!("{other}:{port}")] {
            problems.push(format!("{name}: peers {peers:?}, expected [{other}:{port}]"));
        }
        if networks_of(s).is_disjoint(&networks_of(service(project, other)?)) {
            problems.push(format!("{name}: shares no network with {other}"));
        }
        if data_volume(s, flag_value(&command, "--storage.path=").as_deref())?.is_none() {
            problems.push(format!("{name}: its storage is on no volume"));
        }
        // alertmanager.yml posts to 127.0.0.1: each member has an alert-log in its namespace,
        // which follows it when it is recreated.
        let mode = format!("service:{name}");
        let logs: Vec<&String> = all
            .iter()
            .filter(|(_, s)| str_at(s, &["network_mode"]) == Some(mode.as_str()))
            .map(|(n, _)| n)
            .collect();
        let [log] = logs.as_slice() else {
            problems.push(format!(
                "{name}: {} services in its namespace, expected its alert-log",
                logs.len()
            ));
            continue;
        };
        let log_service = service(project, log)?;
        if !str_at(log_service, &["image"]).unwrap_or_default().starts_with("orgraph/alert-log:") {
            problems.push(format!("{log}: in {name}'s namespace, but not alert-log"));
        }
        let restart = log_service
            .get("depends_on")
            .and_then(|d| d.get(*name))
            .and_then(|d| d.get("restart"))
            .and_then(Value::as_bool);
        if restart != Some(true) {
            problems.push(format!("{log}: does not depend on {name} with `restart: true`"));
        }
    }
    report("Alertmanager cluster", problems)
}

#[test]
fn grafana_reads_the_metrics_through_thanos_query() -> anyhow::Result<()> {
    let project = project()?;
    let grafana = service(project, "grafana")?;
    let env = env_of(grafana);
    let doc = xtask::yaml::read(&root().join("grafana/provisioning/datasources/datasources.yaml"))?;
    let source = doc
        .get("datasources")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .find(|d| str_at(d, &["uid"]) == Some("prometheus"))
        .context("no data source with uid `prometheus`")?;
    let url =
        compose::expand_grafana_variables(str_at(source, &["url"]).unwrap_or_default(), &env)?;
    let mut problems = Vec::new();
    match host_port(&url) {
        Some((host, port)) if host == "thanos-query" => {
            if !listen_ports(project, host)?.contains(&port) {
                problems.push(format!("{url}: thanos-query does not listen on {port}"));
            }
        }
        _ => {
            problems.push(format!("grafana's `prometheus` data source is {url}, not Thanos Query"))
        }
    }
    if networks_of(grafana).is_disjoint(&networks_of(service(project, "thanos-query")?)) {
        problems.push("grafana: shares no network with thanos-query".into());
    }
    report("Grafana", problems)
}

#[test]
fn health_checks_and_depends_on_fit_together() -> anyhow::Result<()> {
    let project = project()?;
    let all = services(project)?;
    let has_check = |s: &Value| !strings_at(s, &["healthcheck", "test"]).is_empty();
    let mut problems = Vec::new();
    for (name, s) in &all {
        let one_shot = str_at(s, &["restart"]) == Some("no");
        if !one_shot && !has_check(s) && !NO_HEALTHCHECK.contains(&name.as_str()) {
            problems.push(format!("{name}: no health check"));
        }
        for (dep, how) in s.get("depends_on").and_then(Value::as_mapping).into_iter().flatten() {
            let dep = dep.as_str().unwrap_or_default();
            let Some(target) = all.get(dep) else {
                problems.push(format!("{name}: depends on `{dep}`, no service"));
                continue;
            };
            match str_at(how, &["condition"]) {
                Some("service_healthy") if !has_check(target) => {
                    problems.push(format!("{name}: waits for {dep} to be healthy; it has no check"))
                }
                Some("service_completed_successfully")
                    if str_at(target, &["restart"]) != Some("no") =>
                {
                    problems.push(format!("{name}: waits for {dep} to complete; it is no one-shot"))
                }
                _ => {}
            }
        }
    }
    // Every Thanos server listens where its health check (HTTP) and Query (gRPC) look.
    for (name, s) in &all {
        let c = strings_at(s, &["command"]);
        if str_at(s, &["image"]).is_some_and(|i| i.starts_with("quay.io/thanos/"))
            && str_at(s, &["restart"]) != Some("no")
        {
            let http = flag_value(&c, "--http-address=");
            if http != Some(format!("0.0.0.0:{THANOS_HTTP}")) {
                problems.push(format!(
                    "{name}: --http-address {http:?}, its health check asks :{THANOS_HTTP}"
                ));
            }
            if let Some(grpc) = flag_value(&c, "--grpc-address=")
                && grpc != format!("0.0.0.0:{THANOS_GRPC}")
            {
                problems
                    .push(format!("{name}: --grpc-address {grpc}, expected 0.0.0.0:{THANOS_GRPC}"));
            }
        }
    }
    report("HA health checks", problems)
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// compose.yaml with compose.ha.yaml merged over it, once per test binary.
fn project() -> anyhow::Result<&'static Value> {
    static PROJECT: OnceLock<Result<Value, String>> = OnceLock::new();
    PROJECT
        .get_or_init(|| compose::load(&["compose.yaml", HA_FILE]).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn root() -> PathBuf {
    testkit::repo_root()
}

fn env_file() -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(root().join(".env")).context("reading .env")?;
    testkit::tools::parse_env_file(&text)
}

/// `deploy.replicas`, 1 when unset.
fn replicas(service: &Value) -> u32 {
    service
        .get("deploy")
        .and_then(|d| d.get("replicas"))
        .and_then(Value::as_u64)
        .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// The value of `--flag=value` in a command.
fn flag_value(command: &[String], flag: &str) -> Option<String> {
    command.iter().find_map(|c| c.strip_prefix(flag)).map(str::to_string)
}

/// The repo files a service's command names with `flag` (`--config=`), in order, through its
/// mounts.
fn mounted_configs(service: &Value, flag: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in strings_at(service, &["command"]).iter().filter_map(|c| c.strip_prefix(flag)) {
        out.push(
            mounted_file(service, path)?
                .with_context(|| format!("{path} is mounted from no repo file"))?,
        );
    }
    Ok(out)
}

/// The host file behind a container path, through the deepest bind mount holding it.
fn mounted_file(service: &Value, path: &str) -> anyhow::Result<Option<PathBuf>> {
    let binds = mounts(service)?;
    let holder = binds
        .iter()
        .filter(|m| m.kind == "bind" && Path::new(path).starts_with(&m.target))
        .max_by_key(|m| m.target.len());
    let Some(m) = holder else { return Ok(None) };
    let relative = Path::new(path).strip_prefix(&m.target)?;
    Ok(Some(if relative.as_os_str().is_empty() {
        m.source.clone()
    } else {
        m.source.join(relative)
    }))
}

/// The named volume mounted at `target` (or holding it).
fn data_volume(service: &Value, target: Option<&str>) -> anyhow::Result<Option<String>> {
    let Some(target) = target else { return Ok(None) };
    Ok(mounts(service)?
        .into_iter()
        .filter(|m| m.kind == "volume" && Path::new(target).starts_with(&m.target))
        .max_by_key(|m| m.target.len())
        .map(|m| m.source.display().to_string()))
}

/// The container ports a service publishes.
fn published_targets(service: &Value) -> BTreeSet<u16> {
    service
        .get("ports")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("target")?.as_u64()?.try_into().ok())
        .collect()
}

/// The ports a service listens on for others: published ones, `*_ADDR` variables, the
/// `--web.listen-address=`/`--http-address=` flags (the default 9090 of Prometheus, 9093 of
/// Alertmanager when unset), a collector's listen addresses in its configs.
fn listen_ports(project: &Value, name: &str) -> anyhow::Result<BTreeSet<u16>> {
    let s = service(project, name)?;
    let mut out = published_targets(s);
    let command = strings_at(s, &["command"]);
    for value in
        env_of(s).iter().filter(|(k, _)| k.ends_with("_ADDR")).map(|(_, v)| v.clone()).chain(
            command.iter().filter_map(|c| {
                c.strip_prefix("--web.listen-address=")
                    .or_else(|| c.strip_prefix("--http-address="))
                    .map(str::to_string)
            }),
        )
    {
        if let Some(port) = value.rsplit_once(':').and_then(|(_, p)| p.parse().ok()) {
            out.insert(port);
        }
    }
    let image = str_at(s, &["image"]).unwrap_or_default();
    // A collector: the listen addresses of its configs (`${env:COLLECTOR_*:-default}`, unless
    // compose sets the variable).
    if image.starts_with("otel/opentelemetry-collector-contrib:") {
        let env = env_of(s);
        for config in mounted_configs(s, "--config=")? {
            let text = std::fs::read_to_string(&config)?;
            for rest in text.split("${env:COLLECTOR_").skip(1) {
                let (var, default) = rest.split_once(":-").unwrap_or((rest, ""));
                let default = default.split('}').next().unwrap_or_default();
                let value = env.get(&format!("COLLECTOR_{var}")).map_or(default, String::as_str);
                if var.ends_with("_ENDPOINT") || var == "TELEMETRY_PORT" {
                    let port = value.rsplit_once(':').map_or(value, |(_, p)| p);
                    if let Ok(port) = port.parse() {
                        out.insert(port);
                    }
                }
            }
        }
    }
    if image.starts_with("prom/prometheus:")
        && flag_value(&command, "--web.listen-address=").is_none()
    {
        out.insert(9090);
    }
    if image.starts_with("prom/alertmanager:")
        && flag_value(&command, "--web.listen-address=").is_none()
    {
        out.insert(9093);
    }
    Ok(out)
}

/// A DNS scrape job of prometheus/scrape-compose-ha.
#[derive(Debug)]
struct DnsJob {
    /// Its `job_name`.
    name: String,
    /// The `job` label its relabelling sets.
    job: String,
    /// The names it resolves (type A) and the port it scrapes them on.
    names: Vec<String>,
    port: u16,
    config: Value,
}

/// Every DNS job of prometheus/scrape-compose-ha.
fn dns_jobs() -> anyhow::Result<Vec<DnsJob>> {
    let mut out = Vec::new();
    for file in xtask::yaml::files_in(&root().join("prometheus").join(HA_SCRAPE.0))? {
        let doc = xtask::yaml::read(&file)?;
        for job in doc.get("scrape_configs").and_then(Value::as_sequence).into_iter().flatten() {
            let Some(sd) = job.get("dns_sd_configs").and_then(Value::as_sequence) else { continue };
            let name = str_at(job, &["job_name"]).unwrap_or_default().to_string();
            let [sd] = sd.as_slice() else {
                anyhow::bail!("{name}: expected one dns_sd_configs entry")
            };
            anyhow::ensure!(
                str_at(sd, &["type"]) == Some("A"),
                "{name}: DNS SD of type A expected"
            );
            let relabel = job.get("relabel_configs").and_then(Value::as_sequence);
            let sets_job =
                relabel.into_iter().flatten().find(|r| str_at(r, &["target_label"]) == Some("job"));
            let job_label = sets_job
                .filter(|r| r.get("source_labels").is_none() && r.get("action").is_none())
                .and_then(|r| str_at(r, &["replacement"]))
                .with_context(|| {
                    format!("{name}: no relabelling that sets `job` to a fixed name")
                })?;
            out.push(DnsJob {
                name: name.clone(),
                job: job_label.to_string(),
                names: strings_at(sd, &["names"]),
                port: sd.get("port").and_then(Value::as_u64).context("no port")?.try_into()?,
                config: job.clone(),
            });
        }
    }
    Ok(out)
}

/// The `host:port` targets of a `file_sd_configs` file (none for `[]`).
fn targets(path: &Path) -> anyhow::Result<Vec<(String, u16)>> {
    let doc = xtask::yaml::read(path)?;
    let groups = doc.as_sequence().with_context(|| format!("{}: not a list", path.display()))?;
    let mut out = Vec::new();
    for group in groups {
        for target in strings_at(group, &["targets"]) {
            let (host, port) = target
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse().ok()?)))
                .with_context(|| format!("{}: `{target}` is not host:port", path.display()))?;
            out.push((host, port));
        }
    }
    Ok(out)
}

/// The default of `${env:VAR:-default}` in a config file of the repo.
fn config_default(file: &str, var: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(root().join(file))?;
    let needle = format!("${{env:{var}:-");
    let rest = text.split(&needle).nth(1).with_context(|| format!("{file} reads no {var}"))?;
    Ok(rest.split('}').next().unwrap_or_default().to_string())
}

/// The port of a `host:port` default in a config file of the repo.
fn config_default_port(file: &str, var: &str) -> anyhow::Result<u16> {
    let value = config_default(file, var)?;
    value
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .with_context(|| format!("{var}: `{value}` has no port"))
}

/// The `${NAME}` variables of a line.
fn variables_in(line: &str) -> Vec<String> {
    line.split("${")
        .skip(1)
        .filter_map(|rest| rest.split(['}', ':', '-']).next())
        .map(str::to_string)
        .collect()
}

/// `(host, port)` of `scheme://host:port/...`.
fn host_port(url: &str) -> Option<(&str, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

fn report(what: &str, problems: Vec<String>) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    anyhow::bail!("{what}: {} problem(s):\n  {}", problems.len(), problems.join("\n  "))
}
