//! `compose.yaml`, as Compose itself reads it. `xtask/compose-check` (a small Go program on the
//! compose-spec loader, `github.com/compose-spec/compose-go/v2`, the library `docker compose`
//! uses) loads the file from the repo root with `.env` for interpolation and prints the normalised
//! project as JSON; these tests hold that project against the repo:
//!
//! * every image is pinned, and every version comes from `.env`;
//! * the collector is the contrib image at the builder manifest's version, Prometheus the major
//!   version the tests run, with 30-day retention and the rules, its lifecycle and admin APIs off;
//! * every mounted file exists, is read-only and relabelled for SELinux (`z`), and the config
//!   files are the ones the native stack runs; the configs reloaded in place (Prometheus',
//!   Alertmanager's) come in as their directories, so a reload never reads a stale inode;
//! * the images built from the Dockerfile are never pulled (`pull_policy: build`), and the
//!   Dockerfile's ARG defaults equal `.env`;
//! * the services' environment is what their code reads, on the ports their defaults name;
//! * networking: Prometheus and Alertmanager have network namespaces of their own; Prometheus'
//!   compose targets (`prometheus/targets-compose`) are services it can reach, its native ones
//!   (`prometheus/targets`) loopback; every webhook of alertmanager.yml reaches `alert-log`, which
//!   shares Alertmanager's namespace;
//! * health checks, `depends_on` conditions, restart policies, memory limits, named volumes,
//!   loopback-only ports, and no credential in the repo; `grafana-init` writes Grafana's admin
//!   password only when there is none, and says how to change it when GRAFANA_ADMIN_PASSWORD
//!   differs; `secrets-init` writes Postgres' password and the API's token once, which Postgres,
//!   the API and the worker read from its volume; Grafana finds every provisioning directory it
//!   reads;
//! * postgres-exporter logs in as the role postgres/monitoring-role.sql makes, with the password
//!   postgres-monitor-init sets on it from the secrets volume (never on a command line); the
//!   hardened services run read-only, without capabilities, with `no-new-privileges`;
//! * Jaeger (the trace store) runs the repo's `jaeger/config.yaml`, hardened, its store on a named
//!   volume, its UI published on loopback; the API and the worker get the trace settings of `.env`;
//! * the collector: every target its receivers scrape or send to (Redis, postgres-exporter,
//!   Jaeger) is a service on one of its networks, listening there; it waits for them with `required: false`; compose sets
//!   only variables its config reads; the host's `/`, its one mount from outside the repo, is
//!   read-only at HOSTMETRICS_ROOT_PATH, neither relabelled nor propagated.
//!
//! The Go program is built once per version of its sources into the tool cache
//! (`<cache>/compose-check-<hash>/compose-check`, see `xtask::go_program`), from the Go
//! module proxy; it needs `go` on PATH, like `cargo xtask tools`.

use xtask::compose::{
    self, Mount, env_of, mounts, named_volume_at, networks_of, service, services, str_at,
    strings_at,
};

use anyhow::Context;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The services built from the Dockerfile: the platform's two, and the alert log.
const OWN_SERVICES: [&str; 3] = ["api", "worker", "alert-log"];

/// Services with a read-only root filesystem, no capability (but those they add, each checked
/// here) and `no-new-privileges`: our own images, and the third-party ones that need nothing
/// more.
const HARDENED: [&str; 6] =
    ["api", "worker", "alert-log", "postgres-exporter", "postgres-monitor-init", "jaeger"];

/// The capabilities a hardened service adds back, and why: postgres-monitor-init runs as root only
/// to read the two secrets it needs, which secrets-init handed to other users.
const ADDED_CAPABILITIES: [(&str, &str); 1] = [("postgres-monitor-init", "DAC_OVERRIDE")];

/// Services without a health check, and why: the contrib collector image is distroless (no shell,
/// no HTTP client) and its binary has no probe subcommand.
const NO_HEALTHCHECK: [&str; 1] = ["otel-collector"];

/// Ports `docker compose up` publishes (the README's "What you see where"): (service, container
/// port).
const PUBLISHED: [(&str, u16); 10] = [
    ("api", 8000),
    ("worker", 8001),
    ("otel-collector", 4317),
    ("otel-collector", 4318),
    ("otel-collector", 8889),
    ("otel-collector", 13133),
    ("prometheus", 9090),
    ("alertmanager", 9093),
    ("grafana", 3000),
    ("jaeger", 16686),
];

/// The one bind mount from outside the repo: (service, host path, container path). The host's
/// root, for the collector's host_metrics receiver (its `root_path`, HOSTMETRICS_ROOT_PATH).
/// Read-only; never relabelled (`z` on / is refused by the engine, and would relabel the whole
/// host); no `rslave`/`rshared` propagation, which the engine refuses where / is not a shared
/// mount (Docker Desktop, Windows, hosts without systemd) and the collector would not start.
const HOST_MOUNTS: [(&str, &str, &str); 1] = [("otel-collector", "/", "/hostfs")];

/// The provisioning directories Grafana reads on every start (`/etc/grafana/provisioning/<dir>`).
const GRAFANA_PROVISIONING: [&str; 4] = ["datasources", "dashboards", "plugins", "alerting"];

/// Where Prometheus' targets are, relative to prometheus/prometheus.yml: the native ones (the
/// repo's directory, loopback), and the directory compose mounts over it (service names).
const TARGETS_DIR: &str = "targets";
const COMPOSE_TARGETS_DIR: &str = "targets-compose";

// ---------------------------------------------------------------------------------------------
// The checks.

#[test]
fn every_image_is_pinned_and_every_version_comes_from_env() -> anyhow::Result<()> {
    let project = project()?;
    let env = env_file()?;
    let mut problems = Vec::new();
    for (name, service) in services(project)? {
        let image = str_at(service, &["image"]).unwrap_or_default();
        if let Err(why) = check_pinned(image) {
            problems.push(format!("{name}: image `{image}` {why}"));
        }
    }
    // In the file itself: an image line names a .env variable instead of spelling a version.
    let text = std::fs::read_to_string(root().join("compose.yaml"))?;
    for line in text.lines().map(str::trim).filter(|l| l.starts_with("image:")) {
        let used = variables_in(line);
        if used.is_empty() {
            problems.push(format!(
                "compose.yaml: `{line}` spells its version instead of taking it from .env"
            ));
        }
        for var in used.iter().filter(|v| !env.contains_key(*v)) {
            problems.push(format!("compose.yaml: `{line}` uses {var}, which .env does not set"));
        }
    }
    // Our own images: tagged with the workspace version, built from pinned bases.
    let workspace_version = workspace_version()?;
    for name in OWN_SERVICES {
        let service = service(project, name)?;
        let image = str_at(service, &["image"]).unwrap_or_default();
        if image != format!("orgraph/{name}:{workspace_version}") {
            problems.push(format!(
                "{name}: image `{image}`, expected orgraph/{name}:{workspace_version} (APP_VERSION \
                 in .env must equal the workspace version of Cargo.toml)"
            ));
        }
        let args = build_args(service)?;
        let rust = args.get("RUST_VERSION").map(String::as_str).unwrap_or_default();
        if !is_release(rust) {
            problems.push(format!("{name}: build arg RUST_VERSION=`{rust}` is not X.Y.Z"));
        }
        let runtime = args.get("RUNTIME_IMAGE").map(String::as_str).unwrap_or_default();
        if !has_digest(runtime) {
            problems.push(format!(
                "{name}: build arg RUNTIME_IMAGE=`{runtime}` is not pinned by a sha256 digest"
            ));
        }
        for arg in ["APP_VERSION", "SOURCE_URL", "VCS_REF"] {
            if !args.contains_key(arg) {
                problems.push(format!("{name}: build arg {arg} (an OCI label) is not passed"));
            }
        }
        if args.get("APP_VERSION") != Some(&workspace_version) {
            problems.push(format!("{name}: build arg APP_VERSION is not {workspace_version}"));
        }
    }
    report("images", problems)
}

#[test]
fn the_dockerfile_builds_small_non_root_images_from_pinned_bases() -> anyhow::Result<()> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).context("reading Dockerfile")?;
    let project = project()?;
    let mut problems = Vec::new();
    // Stage name -> what it is built FROM.
    let mut stages = BTreeMap::new();
    let global_args: BTreeSet<String> = text
        .lines()
        .take_while(|l| !l.trim_start().starts_with("FROM "))
        .filter_map(|l| l.trim().strip_prefix("ARG "))
        .map(|a| a.split('=').next().unwrap_or_default().trim().to_string())
        .collect();
    for line in text.lines().map(str::trim).filter(|l| l.starts_with("FROM ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let base = words.get(1).copied().unwrap_or_default();
        if !stages.contains_key(base) {
            // A base image: only from build arguments, which compose fills from .env.
            let vars = variables_in(base);
            if vars.is_empty() || vars.iter().any(|v| !global_args.contains(v)) {
                problems
                    .push(format!("Dockerfile: `{line}`: a base image must come from a build arg"));
            }
        }
        if let (Some(as_kw), Some(stage)) = (words.get(2), words.get(3))
            && as_kw.eq_ignore_ascii_case("as")
        {
            stages.insert((*stage).to_string(), base.to_string());
        }
    }
    for name in OWN_SERVICES {
        let service = service(project, name)?;
        let args = build_args(service)?;
        for var in &global_args {
            if !args.contains_key(var) {
                problems.push(format!("{name}: compose does not pass the Dockerfile's ARG {var}"));
            }
        }
        let target = str_at(service, &["build", "target"]).unwrap_or_default();
        if target != name || !stages.contains_key(name) {
            problems.push(format!(
                "{name}: build target `{target}` is not the Dockerfile stage {name}"
            ));
        }
        // Multi-stage: the image ships on the runtime base, not on the toolchain it was built with.
        let mut base = name.to_string();
        while let Some(parent) = stages.get(&base) {
            base = parent.clone();
        }
        if base != "${RUNTIME_IMAGE}" {
            problems.push(format!(
                "Dockerfile stage {name}: based on `{base}`, not ${{RUNTIME_IMAGE}}"
            ));
        }
        if !stage_text(&text, "build").contains(&format!("--bin {name}")) {
            problems.push(format!("Dockerfile stage build: does not build `--bin {name}`"));
        }
        let binary = format!("/usr/local/bin/{name}");
        let stage = stage_text(&text, name);
        for (what, needle) in [
            ("an ENTRYPOINT of the binary", format!("ENTRYPOINT [\"{binary}\"]")),
            (
                "a HEALTHCHECK running the binary's --health-check",
                format!("CMD [\"{binary}\", \"--health-check\"]"),
            ),
        ] {
            if !stage.contains(&needle) {
                problems.push(format!("Dockerfile stage {name}: no {what} (`{needle}`)"));
            }
        }
    }
    for label in ["org.opencontainers.image.version", "org.opencontainers.image.source"] {
        if !text.contains(&format!("{label}=")) {
            problems.push(format!("Dockerfile: no {label} label"));
        }
    }
    let users: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("USER ")).collect();
    if users.is_empty() || users.iter().any(|u| u.trim().starts_with('0') || u.contains("root")) {
        problems
            .push(format!("Dockerfile: the images must run as a non-root user (USER {users:?})"));
    }
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap_or_default();
    for needed in ["target", ".git"] {
        let excluded = ignore.lines().any(|l| l.trim() == "*")
            || ignore.lines().any(|l| l.trim().trim_matches('/').ends_with(needed));
        if !excluded {
            problems.push(format!(".dockerignore: `{needed}` is sent to the builder"));
        }
    }
    // `cargo build --locked` of the workspace needs every member in the build context.
    if ignore.lines().any(|l| l.trim() == "*") {
        let let_in: Vec<&str> = ignore
            .lines()
            .filter_map(|l| l.trim().strip_prefix('!'))
            .map(|l| l.trim_matches('/'))
            .collect();
        for member in workspace_members()? {
            let inside = |dir: &&str| member == *dir || member.starts_with(&format!("{dir}/"));
            if !let_in.iter().any(inside) {
                problems.push(format!(
                    ".dockerignore: the workspace member {member} is kept out of the build context \
                     (add `!{member}/`)"
                ));
            }
        }
    }
    report("Dockerfile", problems)
}

/// BuildKit warns (InvalidDefaultArgInFrom) about an ARG used in FROM without a valid default, so
/// the Dockerfile's ARGs have defaults; `.env` stays the one place the versions are set: every ARG
/// that `.env` also sets must default to exactly `.env`'s value, and every ARG a FROM uses must
/// have a default. (`cargo test -p xtask --test dockerfile` runs BuildKit's checks themselves.)
#[test]
fn the_dockerfiles_arg_defaults_are_the_values_of_env() -> anyhow::Result<()> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).context("reading Dockerfile")?;
    let env = env_file()?;
    let mut problems = Vec::new();
    let mut global = BTreeMap::new();
    let mut compared = 0;
    let mut before_first_from = true;
    for line in text.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            before_first_from = false;
            let base = line.split_whitespace().nth(1).unwrap_or_default();
            for var in variables_in(base) {
                match global.get(&var) {
                    Some(Some(_)) => {}
                    Some(None) => problems.push(format!(
                        "Dockerfile: `{line}` uses ARG {var}, which has no default \
                         (InvalidDefaultArgInFrom): give it .env's value"
                    )),
                    None => problems.push(format!(
                        "Dockerfile: `{line}` uses {var}, which is no ARG before the first FROM"
                    )),
                }
            }
        }
        let Some(declared) = line.strip_prefix("ARG ") else { continue };
        for word in declared.split_whitespace() {
            let (name, default) = match word.split_once('=') {
                Some((name, value)) => (name, Some(value.trim_matches('"').to_string())),
                None => (word, None),
            };
            if before_first_from {
                global.insert(name.to_string(), default.clone());
            }
            let Some(want) = env.get(name) else { continue };
            compared += 1;
            match default {
                Some(default) if &default == want => {}
                Some(default) => problems.push(format!(
                    "Dockerfile: ARG {name} defaults to `{default}`, .env sets {name}={want}: \
                     make them equal (.env is where versions change)"
                )),
                None => problems.push(format!(
                    "Dockerfile: ARG {name} has no default: give it .env's value `{want}`"
                )),
            }
        }
    }
    // The ones compose passes from .env are all there: the toolchain, the runtime base, the tag.
    if compared < 3 {
        problems.push(format!(
            "Dockerfile: only {compared} ARGs that .env sets (expected RUST_VERSION, \
             RUNTIME_IMAGE, APP_VERSION)"
        ));
    }
    report("Dockerfile ARG defaults", problems)
}

#[test]
fn the_collector_is_the_contrib_image_at_the_builder_manifests_version() -> anyhow::Result<()> {
    let manifest_path = root().join("collector").join("builder-config.yaml");
    let manifest: Value = serde_norway::from_str(&std::fs::read_to_string(&manifest_path)?)?;
    let pinned = str_at(&manifest, &["dist", "version"])
        .with_context(|| format!("no dist.version in {}", manifest_path.display()))?;
    let image = str_at(service(project()?, "otel-collector")?, &["image"]).unwrap_or_default();
    let (repository, tag) = image.rsplit_once(':').unwrap_or((image, ""));
    let mut problems = Vec::new();
    if repository != "otel/opentelemetry-collector-contrib" {
        problems.push(format!("otel-collector runs `{image}`, not the contrib image"));
    }
    if tag != pinned {
        problems.push(format!(
            "otel-collector image tag `{tag}` differs from the builder manifest's dist.version \
             {pinned} ({}): the tests prove the naming rules of {pinned}",
            manifest_path.display()
        ));
    }
    let env_version = testkit::tools::versions()?.otelcol;
    if env_version != pinned {
        problems.push(format!("OTELCOL_VERSION={env_version} in .env, manifest says {pinned}"));
    }
    report("collector version", problems)
}

#[test]
fn prometheus_is_the_tested_major_version_with_retention_and_rules_and_no_http_control()
-> anyhow::Result<()> {
    let project = project()?;
    let prometheus = service(project, "prometheus")?;
    let image = str_at(prometheus, &["image"]).unwrap_or_default();
    let tested = testkit::tools::versions()?.prometheus;
    let mut problems = Vec::new();
    let tag = image.strip_prefix("prom/prometheus:v").unwrap_or_default();
    let major = |v: &str| v.split('.').next().map(str::to_string);
    if !is_release(tag) || major(tag) != major(&tested) {
        problems.push(format!(
            "prometheus runs `{image}`; the tests run Prometheus {tested} (PROMETHEUS_VERSION in \
             .env): compose must run prom/prometheus:v<{}.x.y>",
            major(&tested).unwrap_or_default()
        ));
    }
    let command = strings_at(prometheus, &["command"]);
    for flag in [
        "--config.file=/etc/prometheus/prometheus.yml",
        "--storage.tsdb.path=/prometheus",
        "--storage.tsdb.retention.time=30d",
    ] {
        if !command.iter().any(|c| c == flag) {
            problems.push(format!("prometheus: `{flag}` missing from its command {command:?}"));
        }
    }
    match env_of(prometheus).get("PROMETHEUS_REPLICA").map(String::as_str) {
        Some("prometheus") => {}
        other => problems.push(format!(
            "prometheus: PROMETHEUS_REPLICA {other:?}, expected `prometheus` (the single-node \
             stack's `replica` external label, as natively)"
        )),
    }
    // Nothing in compose uses them: /-/quit, /-/reload, deleting series stay closed (SIGHUP
    // reloads).
    for flag in ["--web.enable-lifecycle", "--web.enable-admin-api"] {
        if command.iter().any(|c| c.starts_with(flag)) {
            problems.push(format!("prometheus: `{flag}` opens an HTTP door nothing here uses"));
        }
    }
    // prometheus/ is mounted whole and read-only, so rules/ comes along.
    let dir = root().join("prometheus");
    match mounts(prometheus)?.into_iter().find(|m| m.target == "/etc/prometheus") {
        Some(m) if m.kind == "bind" && m.source == dir && m.read_only => {}
        other => problems.push(format!(
            "prometheus: {} must be mounted read-only at /etc/prometheus, found {other:?}",
            dir.display()
        )),
    }
    if !named_volume_at(prometheus, "/prometheus")? {
        problems.push("prometheus: its TSDB (/prometheus) is not on a named volume".into());
    }
    // Every rule file prometheus.yml names is inside the mounted directory and exists.
    let config: Value =
        serde_norway::from_str(&std::fs::read_to_string(dir.join("prometheus.yml"))?)?;
    for pattern in strings_at(&config, &["rule_files"]) {
        if pattern.starts_with('/') || pattern.contains("..") {
            problems.push(format!("prometheus.yml: rule_files `{pattern}` is outside prometheus/"));
            continue;
        }
        if matching_files(&dir, &pattern)?.is_empty() {
            problems.push(format!("prometheus.yml: rule_files `{pattern}` matches no file"));
        }
    }
    report("prometheus", problems)
}

/// Every bind mount is of a repo file or directory that exists, read-only, and relabelled `z`:
/// on an SELinux-enforcing host (Fedora's engine) a container cannot read an unlabelled bind
/// mount; `z` is the label shared by all containers (`Z`, private to one, would lock any other
/// container that mounts the checkout out of it). The exceptions, the host's paths of
/// HOST_MOUNTS, are read-only and neither relabelled nor propagated.
#[test]
fn every_mounted_repo_file_exists_is_read_only_and_relabelled_for_selinux() -> anyhow::Result<()> {
    let root = root();
    let mut problems = Vec::new();
    for (name, service) in services(project()?)? {
        for m in mounts(service)?.into_iter().filter(|m| m.kind == "bind") {
            let host = HOST_MOUNTS.iter().any(|(s, source, target)| {
                *s == name && m.source == Path::new(source) && m.target == *target
            });
            if host {
                if !m.read_only || !m.selinux.is_empty() || !m.propagation.is_empty() {
                    problems.push(format!(
                        "{name}: the host's {} at {} must be read-only, without relabelling or \
                         propagation (read-only {}, selinux `{}`, propagation `{}`)",
                        m.source.display(),
                        m.target,
                        m.read_only,
                        m.selinux,
                        m.propagation
                    ));
                }
                continue;
            }
            if !m.source.starts_with(&root) {
                problems
                    .push(format!("{name}: mounts {} from outside the repo", m.source.display()));
            } else if !m.source.exists() {
                problems
                    .push(format!("{name}: mounts {}, which does not exist", m.source.display()));
            }
            if !m.read_only {
                problems.push(format!("{name}: {} is mounted read-write", m.source.display()));
            }
            if m.selinux != "z" {
                problems.push(format!(
                    "{name}: {} is mounted without `z` (`:ro,z`): unreadable on SELinux-enforcing \
                     hosts (selinux `{}`)",
                    m.source.display(),
                    m.selinux
                ));
            }
        }
    }
    report("mounts", problems)
}

/// The images built from the Dockerfile exist in no registry: compose must build them, never try
/// to pull them (`orgraph/api` on Docker Hub is someone else's, or nobody's), and rebuild them
/// on `up` so that a source change is never run from a stale image.
#[test]
fn every_image_built_here_is_built_never_pulled() -> anyhow::Result<()> {
    let mut problems = Vec::new();
    let mut built = BTreeSet::new();
    for (name, service) in services(project()?)? {
        if service.get("build").is_none() {
            continue;
        }
        built.insert(name.clone());
        let policy = str_at(service, &["pull_policy"]).unwrap_or_default();
        if policy != "build" {
            problems.push(format!(
                "{name}: has `build:` but pull_policy `{policy}`: compose may pull \
                 `{}` from a registry instead of building it (set `pull_policy: build`)",
                str_at(service, &["image"]).unwrap_or_default()
            ));
        }
    }
    let expected: BTreeSet<String> = OWN_SERVICES.iter().map(|s| s.to_string()).collect();
    if built != expected {
        problems
            .push(format!("services built from the Dockerfile: {built:?}, expected {expected:?}"));
    }
    report("pull policy", problems)
}

/// Prometheus and Alertmanager reload their config in place (`POST /-/reload`). A single-file
/// bind mount pins the inode the file had when the container started: an editor that saves by
/// writing a new file and renaming it over the old one (vim, most IDEs) leaves the container on
/// the old file, and the reload reads stale config. So each one's `--config.file` lies in a
/// mounted repo directory, and no single file of the repo is mounted into either.
#[test]
fn configs_reloaded_in_place_come_from_directory_mounts() -> anyhow::Result<()> {
    let project = project()?;
    let mut problems = Vec::new();
    for (name, repo_dir) in [("prometheus", "prometheus"), ("alertmanager", "alertmanager")] {
        let service = service(project, name)?;
        let command = strings_at(service, &["command"]);
        let Some(config) = command.iter().find_map(|c| c.strip_prefix("--config.file=")) else {
            problems.push(format!("{name}: no --config.file in {command:?}"));
            continue;
        };
        let binds: Vec<Mount> = mounts(service)?.into_iter().filter(|m| m.kind == "bind").collect();
        // The deepest mount holding the config file is where it comes from.
        let holder = binds
            .iter()
            .filter(|m| Path::new(config).starts_with(&m.target))
            .max_by_key(|m| m.target.len());
        match holder {
            Some(m) if m.source == root().join(repo_dir) && m.source.is_dir() => {
                let relative = Path::new(config).strip_prefix(&m.target)?;
                if !m.source.join(relative).is_file() {
                    problems.push(format!(
                        "{name}: --config.file={config} is {}, which does not exist",
                        m.source.join(relative).display()
                    ));
                }
            }
            other => problems.push(format!(
                "{name}: --config.file={config} must lie in the mount of the repo directory \
                 {repo_dir}/, found {other:?}"
            )),
        }
        for m in binds.iter().filter(|m| m.source.is_file()) {
            problems.push(format!(
                "{name}: {} is a single-file bind mount: after an edit saved by rename, \
                 /-/reload would read the old file",
                m.source.display()
            ));
        }
    }
    report("reloaded configs", problems)
}

#[test]
fn compose_mounts_the_very_config_files_the_native_stack_runs() -> anyhow::Result<()> {
    let project = project()?;
    let root = root();
    let mut problems = Vec::new();
    // (service, repo path, where compose mounts it).
    let expected = [
        ("otel-collector", "collector-config.yaml", "/etc/otelcol-contrib/config.yaml"),
        ("prometheus", "prometheus", "/etc/prometheus"),
        // The one compose-specific part: where the targets are (see prometheus.yml).
        ("prometheus", "prometheus/targets-compose", "/etc/prometheus/targets"),
        ("alertmanager", "alertmanager", "/etc/alertmanager"),
        ("grafana", "grafana/provisioning", "/etc/grafana/provisioning"),
        ("grafana", "grafana/dashboards", "/var/lib/grafana/dashboards"),
        ("jaeger", "jaeger/config.yaml", "/etc/jaeger/config.yaml"),
    ];
    for (name, path, target) in expected {
        let found = mounts(service(project, name)?)?.into_iter().find(|m| m.target == target);
        if found.as_ref().map(|m| &m.source) != Some(&root.join(path)) {
            problems.push(format!("{name}: expected {path} at {target}, found {found:?}"));
        }
    }
    // The config each server is started with is the mounted repo file.
    for (name, flag, path) in [
        ("otel-collector", "--config=/etc/otelcol-contrib/config.yaml", "collector-config.yaml"),
        ("jaeger", "--config=/etc/jaeger/config.yaml", "jaeger/config.yaml"),
        ("prometheus", "--config.file=/etc/prometheus/prometheus.yml", "prometheus/prometheus.yml"),
        (
            "alertmanager",
            "--config.file=/etc/alertmanager/alertmanager.yml",
            "alertmanager/alertmanager.yml",
        ),
    ] {
        if !strings_at(service(project, name)?, &["command"]).iter().any(|c| c == flag) {
            problems.push(format!("{name}: not started with `{flag}` (the mounted {path})"));
        }
    }
    // The native stack names the same files (`repo_root().join(...)`), and no second copy exists.
    let stack = rust_sources(&root.join("xtask").join("src").join("stack"))?;
    for file in ["collector-config.yaml", "prometheus.yml", "alertmanager.yml"] {
        if !stack.contains(&format!("\"{file}\"")) {
            problems.push(format!(
                "xtask/src/stack does not run `{file}`: the native stack and compose must share it"
            ));
        }
        let copies = files_named(&root, file)?;
        if copies.len() != 1 {
            problems.push(format!("{file}: expected exactly one in the repo, found {copies:?}"));
        }
    }
    if !stack.contains(".join(\"jaeger\").join(\"config.yaml\")") {
        problems.push("xtask/src/stack does not run jaeger/config.yaml".into());
    }
    report("shared config files", problems)
}

#[test]
fn grafana_finds_its_dashboards_and_datasources() -> anyhow::Result<()> {
    let project = project()?;
    let grafana = service(project, "grafana")?;
    let mut problems = Vec::new();
    let provisioning = root().join("grafana").join("provisioning");
    // The dashboard providers read the path compose mounts grafana/dashboards at.
    for file in yaml_files(&provisioning.join("dashboards"))? {
        let doc: Value = serde_norway::from_str(&std::fs::read_to_string(&file)?)?;
        for provider in doc.get("providers").and_then(Value::as_sequence).into_iter().flatten() {
            let path = str_at(provider, &["options", "path"]).unwrap_or_default();
            if !mounts(grafana)?.iter().any(|m| m.target == path && m.kind == "bind") {
                problems.push(format!("{}: provider path `{path}` is not mounted", file.display()));
            }
        }
    }
    // Every data source URL (with Grafana's variables expanded from its environment) names a
    // host Grafana can resolve, serving that port; the metrics are Prometheus' here.
    let grafana_networks = networks_of(grafana);
    let grafana_env = env_of(grafana);
    match grafana_env.get("PROMETHEUS_QUERY_URL").map(String::as_str) {
        Some("http://prometheus:9090") => {}
        other => problems.push(format!(
            "grafana: PROMETHEUS_QUERY_URL {other:?}, expected http://prometheus:9090 (the single \
             Prometheus of compose.yaml)"
        )),
    }
    for file in yaml_files(&provisioning.join("datasources"))? {
        let doc: Value = serde_norway::from_str(&std::fs::read_to_string(&file)?)?;
        for source in doc.get("datasources").and_then(Value::as_sequence).into_iter().flatten() {
            let raw = str_at(source, &["url"]).unwrap_or_default();
            let url = &compose::expand_grafana_variables(raw, &grafana_env)?;
            let Some((host, port)) = host_port(url) else {
                problems
                    .push(format!("{}: data source URL `{url}` has no host:port", file.display()));
                continue;
            };
            match serving(project, host, &grafana_networks)? {
                Some(server) if listens_on(project, &server, port)? => {}
                Some(server) => problems.push(format!("{url}: {server} does not listen on {port}")),
                None => problems.push(format!(
                    "{}: `{host}` of {url} is no service or alias on Grafana's networks {grafana_networks:?}",
                    file.display()
                )),
            }
        }
    }
    for (target, read_only) in
        [("/etc/grafana/provisioning", true), ("/var/lib/grafana/dashboards", true)]
    {
        if !mounts(grafana)?.iter().any(|m| m.target == target && m.read_only == read_only) {
            problems.push(format!("grafana: {target} is not mounted read-only"));
        }
    }
    if !named_volume_at(grafana, "/var/lib/grafana")? {
        problems.push("grafana: /var/lib/grafana is not on a named volume".into());
    }
    // Every provisioning directory Grafana reads exists (it logs an error for each missing one),
    // and holds only files it reads (it warns about any other file in alerting/), each with the
    // apiVersion that alerting/ requires.
    for dir in GRAFANA_PROVISIONING {
        let path = provisioning.join(dir);
        let files: Vec<PathBuf> = match std::fs::read_dir(&path) {
            Ok(entries) => entries.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?,
            Err(e) => {
                problems.push(format!("grafana/provisioning/{dir}: {e} (Grafana logs an error)"));
                continue;
            }
        };
        if files.is_empty() {
            problems.push(format!("grafana/provisioning/{dir}: empty (git keeps no empty dir)"));
        }
        for file in files {
            let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if !(name.ends_with(".yaml") || name.ends_with(".yml")) {
                problems.push(format!(
                    "grafana/provisioning/{dir}/{name}: not a provisioning file (Grafana skips \
                     it, with a warning in alerting/)"
                ));
                continue;
            }
            let doc: Value = serde_norway::from_str(&std::fs::read_to_string(&file)?)
                .with_context(|| format!("{} is not YAML", file.display()))?;
            if doc.get("apiVersion").and_then(Value::as_u64).is_none() {
                problems.push(format!("grafana/provisioning/{dir}/{name}: no apiVersion"));
            }
        }
    }
    report("grafana", problems)
}

#[test]
fn health_checks_and_depends_on_conditions_fit_together() -> anyhow::Result<()> {
    let project = project()?;
    let services = services(project)?;
    let mut problems = Vec::new();
    let has_check = |s: &Value| {
        let test = strings_at(s, &["healthcheck", "test"]);
        !test.is_empty()
            && test[0] != "NONE"
            && s.get("healthcheck").and_then(|h| h.get("disable")).and_then(Value::as_bool)
                != Some(true)
    };
    for (name, service) in &services {
        let one_shot = is_one_shot(service);
        if !one_shot && !has_check(service) && !NO_HEALTHCHECK.contains(&name.as_str()) {
            problems.push(format!("{name}: no health check"));
        }
        if NO_HEALTHCHECK.contains(&name.as_str()) && has_check(service) {
            problems.push(format!("{name}: has a health check now: drop it from NO_HEALTHCHECK"));
        }
        let Some(depends) = service.get("depends_on").and_then(Value::as_mapping) else { continue };
        for (dependency, spec) in depends {
            let dependency = dependency.as_str().unwrap_or_default();
            let condition = str_at(spec, &["condition"]).unwrap_or_default();
            let Some(target) = services.get(dependency) else {
                problems.push(format!("{name}: depends on unknown service {dependency}"));
                continue;
            };
            let wanted = if is_one_shot(target) {
                "service_completed_successfully"
            } else if has_check(target) {
                "service_healthy"
            } else {
                "service_started"
            };
            if condition != wanted {
                problems.push(format!(
                    "{name}: depends on {dependency} with `{condition}`, expected `{wanted}`"
                ));
            }
        }
    }
    // Our services check themselves with their own binary: no curl in the image.
    for name in OWN_SERVICES {
        let test = strings_at(service(project, name)?, &["healthcheck", "test"]);
        let expected =
            ["CMD".to_string(), format!("/usr/local/bin/{name}"), "--health-check".into()];
        if test != expected {
            problems.push(format!("{name}: health check {test:?}, expected {expected:?}"));
        }
    }
    // What each service needs before it starts.
    for (name, needs) in [
        ("api", &["postgres", "redis", "otel-collector"][..]),
        ("worker", &["postgres", "otel-collector"][..]),
        ("alert-log", &["alertmanager"][..]),
        ("grafana", &["prometheus", "alertmanager"][..]),
        ("postgres-monitor-init", &["secrets-init", "postgres"][..]),
        ("postgres-exporter", &["postgres-monitor-init"][..]),
        ("otel-collector", &["postgres-exporter", "redis", "jaeger"][..]),
    ] {
        for need in needs {
            if service(project, name)?.get("depends_on").and_then(|d| d.get(*need)).is_none() {
                problems.push(format!("{name}: does not depend on {need}"));
            }
        }
    }
    // The services' metrics never wait on the infrastructure's: whatever the collector waits for,
    // compose starts it anyway (with a warning) when that fails.
    let collector = service(project, "otel-collector")?;
    for (dependency, spec) in
        collector.get("depends_on").and_then(Value::as_mapping).into_iter().flatten()
    {
        if spec.get("required").and_then(Value::as_bool) != Some(false) {
            problems.push(format!(
                "otel-collector: depends on {} with `required: true`: if it fails, the collector \
                 never starts, and neither do the services that wait for it",
                dependency.as_str().unwrap_or_default()
            ));
        }
    }
    report("health checks", problems)
}

#[test]
fn services_restart_have_memory_limits_and_keep_data_on_named_volumes() -> anyhow::Result<()> {
    let project = project()?;
    let declared: BTreeSet<String> = project
        .get("volumes")
        .and_then(Value::as_mapping)
        .map(|m| m.keys().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    let mut problems = Vec::new();
    for (name, service) in services(project)? {
        let restart = str_at(service, &["restart"]).unwrap_or_default();
        let expected: &[&str] =
            if is_one_shot(service) { &["no"] } else { &["unless-stopped", "always"] };
        if !expected.contains(&restart) {
            problems.push(format!("{name}: restart `{restart}`, expected one of {expected:?}"));
        }
        let memory = str_at(service, &["deploy", "resources", "limits", "memory"])
            .or_else(|| str_at(service, &["mem_limit"]))
            .and_then(|m| m.parse::<u64>().ok())
            .unwrap_or(0);
        if memory == 0 {
            problems.push(format!("{name}: no memory limit"));
        }
        for m in mounts(service)?.into_iter().filter(|m| m.kind == "volume") {
            let source = m.source.to_string_lossy();
            if !declared.contains(source.as_ref()) {
                problems.push(format!(
                    "{name}: {} is on an anonymous or undeclared volume `{source}`",
                    m.target
                ));
            }
        }
    }
    for (name, target) in [
        ("postgres", "/var/lib/postgresql"),
        ("prometheus", "/prometheus"),
        ("alertmanager", "/alertmanager"),
        ("grafana", "/var/lib/grafana"),
        ("jaeger", &jaeger_store()?),
    ] {
        if !named_volume_at(service(project, name)?, target)? {
            problems.push(format!("{name}: its data ({target}) is not on a named volume"));
        }
    }
    let worker = service(project, "worker")?;
    let export_dir = env_of(worker).remove("EXPORT_DIR").unwrap_or_default();
    if export_dir.is_empty() || !named_volume_at(worker, &export_dir)? {
        problems.push(format!("worker: EXPORT_DIR `{export_dir}` is not on a named volume"));
    }
    report("restart, memory, volumes", problems)
}

#[test]
fn published_ports_are_the_designed_ones_on_loopback() -> anyhow::Result<()> {
    let project = project()?;
    let mut problems = Vec::new();
    let mut published = BTreeSet::new();
    for (name, service) in services(project)? {
        for port in service.get("ports").and_then(Value::as_sequence).into_iter().flatten() {
            let host_ip = str_at(port, &["host_ip"]).unwrap_or_default();
            let target = port.get("target").and_then(Value::as_u64).unwrap_or_default();
            if host_ip != "127.0.0.1" {
                let on = if host_ip.is_empty() { "every interface" } else { host_ip };
                problems.push(format!("{name}: port {target} is published on {on}, not 127.0.0.1"));
            }
            let outside = str_at(port, &["published"]).unwrap_or_default();
            if outside != target.to_string() {
                problems.push(format!("{name}: container port {target} is published as {outside}"));
            }
            published.insert((name.clone(), target));
        }
    }
    let expected: BTreeSet<(String, u64)> =
        PUBLISHED.iter().map(|(s, p)| ((*s).to_string(), u64::from(*p))).collect();
    if published != expected {
        problems.push(format!(
            "published ports differ from the README's: missing {:?}, unexpected {:?}",
            expected.difference(&published).collect::<Vec<_>>(),
            published.difference(&expected).collect::<Vec<_>>()
        ));
    }
    report("ports", problems)
}

#[test]
fn the_services_environment_is_what_their_code_reads() -> anyhow::Result<()> {
    let project = project()?;
    let root = root();
    let otel_names = env_names(&root.join("otel").join("src"))?;
    let kit_names = env_names(&root.join("services").join("servicekit").join("src"))?;
    let scrape_ms = scrape_interval_ms()?;
    let otlp_port = collector_default_port("COLLECTOR_OTLP_GRPC_ENDPOINT")?;
    let mut problems = Vec::new();
    for (name, addr_var) in [("api", "API_ADDR"), ("worker", "WORKER_HEALTH_ADDR")] {
        let service = service(project, name)?;
        let env = env_of(service);
        let own = env_names(&root.join("services").join(name).join("src"))?;
        for key in env.keys() {
            if !(own.contains(key) || otel_names.contains(key) || kit_names.contains(key)) {
                problems.push(format!(
                    "{name}: compose sets {key}, which neither services/{name}, \
                     services/servicekit nor otel reads"
                ));
            }
        }
        // The listen address: the port of the code's default, on every interface, published.
        let config = root.join("services").join(name).join("src").join("config.rs");
        let default_port = default_port_in(&config, addr_var)?;
        let addr = env.get(addr_var).cloned().unwrap_or_default();
        if addr != format!("0.0.0.0:{default_port}") {
            problems.push(format!(
                "{name}: {addr_var}=`{addr}`, expected 0.0.0.0:{default_port} (the port of the \
                 default in {})",
                config.display()
            ));
        }
        if !PUBLISHED.contains(&(name, default_port)) {
            problems.push(format!("{name}: port {default_port} is not in PUBLISHED"));
        }
        // Telemetry.
        let expect = |key: &str, want: String, problems: &mut Vec<String>| {
            let got = env.get(key).cloned().unwrap_or_default();
            if got != want {
                problems.push(format!("{name}: {key}=`{got}`, expected `{want}`"));
            }
        };
        expect("OTEL_SERVICE_NAME", name.to_string(), &mut problems);
        expect(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://otel-collector:{otlp_port}"),
            &mut problems,
        );
        expect("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into(), &mut problems);
        expect("OTEL_METRIC_EXPORT_INTERVAL", scrape_ms.to_string(), &mut problems);
        expect(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.namespace=orgraph,deployment.environment.name=compose".into(),
            &mut problems,
        );
        // Traces: the settings of .env (which the native stack and the benchmarks read too).
        for (key, value) in testkit::trace_env()? {
            expect(key, value, &mut problems);
        }
        let database = env.get("DATABASE_URL").cloned().unwrap_or_default();
        if host_port(&database).map(|(h, _)| h) != Some("postgres") {
            problems.push(format!(
                "{name}: DATABASE_URL `{database}` does not name the postgres service"
            ));
        }
    }
    let redis = env_of(service(project, "api")?).remove("REDIS_URL").unwrap_or_default();
    if host_port(&redis) != Some(("redis", 6379)) {
        problems.push(format!("api: REDIS_URL `{redis}` is not the redis service on 6379"));
    }
    // alert-log: only what it reads; on loopback, since it shares Alertmanager's namespace and
    // nothing else is to post to it.
    let own = env_names(&root.join("alertmanager").join("alert-log").join("src"))?;
    for key in env_of(service(project, "alert-log")?).keys().filter(|k| !own.contains(*k)) {
        problems.push(format!("alert-log: compose sets {key}, which alert-log does not read"));
    }
    let addr = alert_log_addr(project)?;
    if !addr.ip().is_loopback() {
        problems.push(format!(
            "alert-log: listens on {addr}, not on loopback: anything on Alertmanager's networks \
             could post alerts to it"
        ));
    }
    report("service environment", problems)
}

/// The collector in compose: every variable compose gives it is one collector-config.yaml reads;
/// host_metrics' root is where the host's root is mounted; and every target its receivers scrape
/// (the `${env:*_ENDPOINT}`s that are not its own listen addresses) is a service on one of its
/// networks, listening on that port.
#[test]
fn the_collectors_receivers_reach_their_targets() -> anyhow::Result<()> {
    let project = project()?;
    let collector = service(project, "otel-collector")?;
    let env = env_of(collector);
    let variables = collector_variables()?;
    let mut problems = Vec::new();
    for key in env.keys().filter(|k| !variables.contains(k)) {
        problems.push(format!(
            "otel-collector: compose sets {key}, which collector-config.yaml does not read"
        ));
    }
    let root_path = collector_value(&env, "HOSTMETRICS_ROOT_PATH")?;
    let host_root = mounts(collector)?
        .into_iter()
        .find(|m| m.kind == "bind" && m.source == Path::new("/"))
        .map(|m| m.target);
    if host_root.as_deref() != Some(root_path.as_str()) {
        problems.push(format!(
            "otel-collector: host_metrics reads the host at HOSTMETRICS_ROOT_PATH={root_path}, \
             the host's / is mounted at {host_root:?}"
        ));
    }
    let networks = networks_of(collector);
    let targets: Vec<&String> = variables
        .iter()
        .filter(|v| v.ends_with("_ENDPOINT") && !v.starts_with("COLLECTOR_"))
        .collect();
    if targets.is_empty() {
        problems.push("collector-config.yaml scrapes no `${env:*_ENDPOINT}` target".into());
    }
    for var in targets {
        let value = collector_value(&env, var)?;
        let Some((host, port)) =
            value.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse().ok()?)))
        else {
            problems.push(format!("otel-collector: {var}=`{value}` is not host:port"));
            continue;
        };
        match serving(project, host, &networks)? {
            Some(server) if server == host && listens_on(project, &server, port)? => {}
            Some(server) => {
                problems.push(format!("{var}={value}: {server} does not listen on {port}"))
            }
            None => problems.push(format!(
                "{var}={value}: `{host}` is no service on the collector's networks {networks:?}"
            )),
        }
    }
    report("collector's receivers", problems)
}

#[test]
fn no_credential_lives_in_the_repo() -> anyhow::Result<()> {
    let project = project()?;
    let mut problems = Vec::new();
    let secret_like = |key: &str| {
        let key = key.to_ascii_uppercase();
        // A `*_FILE` variable names the file that holds the secret, not the secret.
        !key.ends_with("_FILE")
            && ["PASSWORD", "SECRET", "TOKEN", "PASSWD", "API_KEY"].iter().any(|w| key.contains(w))
    };
    for (name, service) in services(project)? {
        for (key, value) in env_of(service) {
            // Interpolated from .env only: a value here is one written in the repo.
            if secret_like(&key) && !value.is_empty() {
                problems.push(format!("{name}: {key} has a value written in the repo"));
            }
            if value.contains("://") && userinfo_has_password(&value) {
                problems.push(format!("{name}: {key} carries a password"));
            }
        }
    }
    for key in env_file()?.keys().filter(|k| secret_like(k)) {
        problems.push(format!(".env sets {key}: secrets come from the environment"));
    }
    // Grafana's admin password: from a file the one-shot init service writes.
    let grafana = service(project, "grafana")?;
    let env = env_of(grafana);
    if env.contains_key("GF_SECURITY_ADMIN_PASSWORD") {
        problems.push("grafana: GF_SECURITY_ADMIN_PASSWORD is set in compose.yaml".into());
    }
    let file = env.get("GF_SECURITY_ADMIN_PASSWORD__FILE").cloned().unwrap_or_default();
    let init = service(project, "grafana-init")?;
    let shared = mounts(grafana)?
        .into_iter()
        .find(|m| m.kind == "volume" && file.starts_with(&format!("{}/", m.target)));
    match shared {
        Some(m) if mounts(init)?.iter().any(|i| i.kind == "volume" && i.source == m.source) => {}
        _ => problems.push(format!(
            "grafana: GF_SECURITY_ADMIN_PASSWORD__FILE=`{file}` is not on a volume grafana-init writes"
        )),
    }
    if str_at(grafana, &["depends_on", "grafana-init", "condition"])
        != Some("service_completed_successfully")
    {
        problems.push("grafana: does not wait for grafana-init to complete".into());
    }
    if !env_of(init).contains_key("GRAFANA_ADMIN_PASSWORD") {
        problems
            .push("grafana-init: does not take GRAFANA_ADMIN_PASSWORD from the environment".into());
    }
    problems.extend(generated_secrets_are_read_from_their_volume(project)?);
    // Postgres and Redis sit on an internal network: nothing may reach them from outside.
    for name in ["postgres", "redis"] {
        let service = service(project, name)?;
        if service.get("ports").and_then(Value::as_sequence).is_some_and(|p| !p.is_empty()) {
            problems.push(format!("{name}: publishes a port"));
        }
        for network in networks_of(service) {
            let internal = project
                .get("networks")
                .and_then(|n| n.get(&network))
                .and_then(|n| n.get("internal"))
                .and_then(Value::as_bool);
            if internal != Some(true) {
                problems.push(format!("{name}: network {network} is not internal"));
            }
        }
    }
    report("credentials", problems)
}

/// Postgres' password and the API's tokens: files on the volume `secrets-init` writes, read by
/// Postgres (`POSTGRES_PASSWORD_FILE`, no `trust`), the API, the worker and postgres-monitor-init
/// (`PGPASSFILE`, a URL without a password) and the API (`API_TOKENS_FILE`); the monitoring
/// role's password, read by postgres-monitor-init and postgres-exporter; Postgres starts only
/// after secrets-init.
fn generated_secrets_are_read_from_their_volume(project: &Value) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let init = service(project, "secrets-init")?;
    let written: Vec<Mount> = mounts(init)?.into_iter().filter(|m| m.kind == "volume").collect();
    let mut on_volume = |name: &str, key: &str| -> anyhow::Result<()> {
        let service = service(project, name)?;
        let file = env_of(service).remove(key).unwrap_or_default();
        let shared = mounts(service)?.into_iter().any(|m| {
            m.kind == "volume"
                && m.read_only
                && file.starts_with(&format!("{}/", m.target))
                && written.iter().any(|w| w.source == m.source)
        });
        if !shared {
            problems.push(format!(
                "{name}: {key}=`{file}` is not on a read-only mount of the volume secrets-init writes"
            ));
        }
        Ok(())
    };
    on_volume("postgres", "POSTGRES_PASSWORD_FILE")?;
    on_volume("api", "PGPASSFILE")?;
    on_volume("worker", "PGPASSFILE")?;
    on_volume("api", "API_TOKENS_FILE")?;
    on_volume("postgres-monitor-init", "PGPASSFILE")?;
    on_volume("postgres-monitor-init", "MONITOR_PASSWORD_FILE")?;
    on_volume("postgres-exporter", "DATA_SOURCE_PASS_FILE")?;
    let postgres = service(project, "postgres")?;
    if env_of(postgres).get("POSTGRES_HOST_AUTH_METHOD").is_some_and(|m| m == "trust") {
        problems.push("postgres: trust authentication".into());
    }
    if str_at(postgres, &["depends_on", "secrets-init", "condition"])
        != Some("service_completed_successfully")
    {
        problems.push("postgres: does not wait for secrets-init to complete".into());
    }
    Ok(problems)
}

/// grafana-init's script, run by `sh` outside its container: the secrets volume's directory is a
/// scratch directory, and `chown` to Grafana's uid is stubbed out (it needs root). The first run
/// writes the password (GRAFANA_ADMIN_PASSWORD's, else a generated one, printed); later runs
/// never rewrite it, since Grafana applies it only when it creates its database; and a
/// GRAFANA_ADMIN_PASSWORD that differs from it gets the command that does change the password.
#[test]
fn grafana_init_writes_the_admin_password_only_once() -> anyhow::Result<()> {
    let project = project()?;
    let init = service(project, "grafana-init")?;
    let entrypoint = strings_at(init, &["entrypoint"]);
    let command = strings_at(init, &["command"]);
    anyhow::ensure!(
        entrypoint == ["/bin/sh", "-c"] && command.len() == 1,
        "grafana-init: expected entrypoint [/bin/sh, -c] and one script, found {entrypoint:?} \
         {command:?}"
    );
    let secret = env_of(service(project, "grafana")?)
        .remove("GF_SECURITY_ADMIN_PASSWORD__FILE")
        .context("grafana: no GF_SECURITY_ADMIN_PASSWORD__FILE")?;
    let (volume, file_name) =
        secret.rsplit_once('/').context("the secret file has no directory")?;
    anyhow::ensure!(
        command[0].contains(&secret),
        "grafana-init's script does not write {secret}, the file Grafana reads"
    );
    let scratch =
        std::env::temp_dir().join(format!("compose-test-grafana-init-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(scratch.clone());
    let dir = scratch.to_string_lossy().into_owned();
    let script = format!("chown() {{ :; }}\n{}", command[0].replace(volume, &dir));
    let file = scratch.join(file_name);
    let run = |variable: &str| -> anyhow::Result<String> {
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(&script).env("GRAFANA_ADMIN_PASSWORD", variable);
        testkit::process::output("grafana-init's script", &mut sh, Duration::from_secs(30))
    };
    let stored = || std::fs::read_to_string(&file).with_context(|| format!("reading {file_name}"));
    let reset = "docker compose exec grafana grafana cli admin reset-admin-password <new>";
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: &str, log: &str| {
        if !ok {
            problems.push(format!("{what}; its log:\n{log}"));
        }
    };

    // The first run without the variable: a generated password, printed, readable only by
    // its owner.
    std::fs::create_dir_all(&scratch)?;
    let log = run("")?;
    let generated = stored()?;
    expect(
        generated.len() == 24 && generated.chars().all(|c| c.is_ascii_alphanumeric()),
        &format!("first run: generated `{generated}`, expected 24 letters and digits"),
        &log,
    );
    expect(log.contains(&generated), "first run: the generated password is not printed", &log);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file)?.permissions().mode() & 0o777;
    expect(mode == 0o400, &format!("the file's mode is {mode:o}, not 400"), &log);
    // Later runs keep it, with or without the variable.
    let log = run("")?;
    expect(stored()? == generated, "a second run rewrote the password", &log);
    let log = run(&generated)?;
    expect(stored()? == generated, "the same GRAFANA_ADMIN_PASSWORD rewrote it", &log);
    expect(!log.contains(reset), "the same GRAFANA_ADMIN_PASSWORD: told to reset", &log);
    let log = run("chosen-later")?;
    expect(stored()? == generated, "a GRAFANA_ADMIN_PASSWORD set later rewrote the file", &log);
    expect(
        log.contains(reset),
        &format!("a GRAFANA_ADMIN_PASSWORD set later: the log does not say `{reset}`"),
        &log,
    );
    expect(
        !log.contains("chosen-later") && !log.contains(&generated),
        "a GRAFANA_ADMIN_PASSWORD set later: the log shows a password",
        &log,
    );
    // The first run with the variable: that one.
    std::fs::remove_file(&file)?;
    let log = run("chosen-first")?;
    expect(stored()? == "chosen-first", "first run: GRAFANA_ADMIN_PASSWORD not stored", &log);
    expect(!log.contains("chosen-first"), "first run: the chosen password is printed", &log);
    report("grafana-init", problems)
}

/// secrets-init's script, run by `sh` outside its container (the volume a scratch directory,
/// `chown` stubbed out): the first run writes Postgres' password, the services' pgpass file with
/// it, the monitoring role's own password, the API token and its hash in the API's tokens-file
/// format (checked against `testkit::tokens`, an independent SHA-256), prints the token and never
/// a password, and leaves every file 0400; a second run changes nothing and prints how to see the
/// token instead of the token. A volume made before the monitoring role existed gets its password
/// on the next run, and keeps everything else.
#[test]
fn secrets_init_makes_the_database_password_and_the_api_token_once() -> anyhow::Result<()> {
    let project = project()?;
    let init = service(project, "secrets-init")?;
    let command = strings_at(init, &["command"]);
    anyhow::ensure!(
        strings_at(init, &["entrypoint"]) == ["/bin/sh", "-c"] && command.len() == 1,
        "secrets-init: expected entrypoint [/bin/sh, -c] and one script"
    );
    let volume = "/run/orgraph-secrets";
    anyhow::ensure!(command[0].contains(volume), "secrets-init's script does not write {volume}");
    let scratch =
        std::env::temp_dir().join(format!("compose-test-secrets-init-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(scratch.clone());
    std::fs::create_dir_all(&scratch)?;
    let script =
        format!("chown() {{ :; }}\n{}", command[0].replace(volume, &scratch.to_string_lossy()));
    let run = || -> anyhow::Result<String> {
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(&script);
        testkit::process::output("secrets-init's script", &mut sh, Duration::from_secs(30))
    };
    let read = |name: &str| {
        std::fs::read_to_string(scratch.join(name)).with_context(|| format!("reading {name}"))
    };
    let files =
        ["postgres-password", "postgres-monitor-password", "pgpass", "api-token", "api-tokens"];
    let mut problems = Vec::new();

    let log = run()?;
    let password = read("postgres-password")?;
    let monitor_password = read("postgres-monitor-password")?;
    for (what, password) in [("Postgres'", &password), ("the monitoring role's", &monitor_password)]
    {
        if password.len() != 32 || !password.chars().all(|c| c.is_ascii_alphanumeric()) {
            problems.push(format!("{what} password `{password}` is not 32 letters and digits"));
        }
        if log.contains(password.as_str()) {
            problems.push(format!("{what} password is printed:\n{log}"));
        }
    }
    if monitor_password == password {
        problems.push("the monitoring role's password is Postgres' password".into());
    }
    if read("pgpass")? != format!("*:*:*:postgres:{password}\n") {
        problems.push(format!("pgpass does not hold the password: {:?}", read("pgpass")?));
    }
    let token = read("api-token")?.trim().to_string();
    if token.len() != 64 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
        problems.push(format!("the token `{token}` is not 64 hexadecimal digits"));
    }
    let line = testkit::tokens::line("compose-admin", "admin", &token);
    if !read("api-tokens")?.lines().any(|l| l == line) {
        problems.push(format!("api-tokens lacks `{line}`:\n{}", read("api-tokens")?));
    }
    if !log.contains(&token) {
        problems.push(format!("the first run does not print the token:\n{log}"));
    }
    use std::os::unix::fs::PermissionsExt;
    for name in files {
        let mode = std::fs::metadata(scratch.join(name))?.permissions().mode() & 0o777;
        if mode != 0o400 {
            problems.push(format!("{name}: mode {mode:o}, not 400"));
        }
    }
    let first: Vec<String> = files.iter().map(|f| read(f)).collect::<anyhow::Result<_>>()?;
    let log = run()?;
    let second: Vec<String> = files.iter().map(|f| read(f)).collect::<anyhow::Result<_>>()?;
    if first != second {
        problems.push("a second run changed the secrets".into());
    }
    if log.contains(&token) || !log.contains("docker compose run") {
        problems.push(format!("a second run must say how to see the token, not show it:\n{log}"));
    }
    // A volume from before the monitoring role: only its password is added.
    std::fs::remove_file(scratch.join("postgres-monitor-password"))?;
    run()?;
    let third: Vec<String> = files.iter().map(|f| read(f)).collect::<anyhow::Result<_>>()?;
    let added = read("postgres-monitor-password")?;
    if added.len() != 32 || added == monitor_password {
        problems.push(format!("a volume without the monitoring role's password got `{added}`"));
    }
    if third.iter().zip(&second).filter(|(a, b)| a != b).count() != 1 {
        problems.push("adding the monitoring role's password changed other secrets".into());
    }
    report("secrets-init", problems)
}

/// The hardened services: read-only root filesystem, every capability dropped (but those of
/// ADDED_CAPABILITIES), `no-new-privileges`.
#[test]
fn hardened_services_run_read_only_without_capabilities() -> anyhow::Result<()> {
    let project = project()?;
    let mut problems = Vec::new();
    for name in HARDENED {
        let service = service(project, name)?;
        if service.get("read_only").and_then(Value::as_bool) != Some(true) {
            problems.push(format!("{name}: the root filesystem is not read-only"));
        }
        if strings_at(service, &["cap_drop"]) != ["ALL"] {
            problems.push(format!("{name}: cap_drop is not [ALL]"));
        }
        let added = strings_at(service, &["cap_add"]);
        let allowed: Vec<&str> =
            ADDED_CAPABILITIES.iter().filter(|(s, _)| *s == name).map(|(_, c)| *c).collect();
        if added.iter().any(|c| !allowed.contains(&c.as_str())) {
            problems.push(format!("{name}: adds capabilities {added:?}, allowed {allowed:?}"));
        }
        if !strings_at(service, &["security_opt"]).iter().any(|o| o == "no-new-privileges:true") {
            problems.push(format!("{name}: no `no-new-privileges:true`"));
        }
    }
    report("hardening", problems)
}

/// The collector reads Postgres through postgres_exporter, which logs in as the role
/// postgres/monitoring-role.sql makes, with the password postgres-monitor-init sets on it.
/// postgres-monitor-init's script runs by `sh` outside its container, with a stand-in `psql` on
/// PATH that records its arguments and environment: the password comes from the very file the
/// exporter reads, in the environment (`\getenv`), never on the command line; the SQL run is the
/// repo's file, mounted; an empty or missing password file stops it before psql.
#[test]
fn postgres_exporter_logs_in_as_the_role_postgres_monitor_init_makes() -> anyhow::Result<()> {
    let project = project()?;
    let init = service(project, "postgres-monitor-init")?;
    let exporter = service(project, "postgres-exporter")?;
    let init_env = env_of(init);
    let exporter_env = env_of(exporter);
    let mut problems = Vec::new();

    // One password file on both sides, owned by the exporter's user.
    let password_file = exporter_env.get("DATA_SOURCE_PASS_FILE").cloned().unwrap_or_default();
    if init_env.get("MONITOR_PASSWORD_FILE") != Some(&password_file) {
        problems.push(format!(
            "postgres-monitor-init sets the role's password from {:?}, the exporter logs in with \
             {password_file}",
            init_env.get("MONITOR_PASSWORD_FILE")
        ));
    }
    let uid = str_at(exporter, &["user"]).unwrap_or_default();
    let uid = uid.split(':').next().unwrap_or_default();
    let file_name = password_file.rsplit('/').next().unwrap_or_default();
    let secrets_script = strings_at(service(project, "secrets-init")?, &["command"]).join("\n");
    let handed = secrets_script.lines().any(|l| {
        l.trim().starts_with(&format!("chown {uid}:")) && l.contains(&format!("/{file_name}\""))
    });
    if uid.is_empty() || !handed {
        problems.push(format!(
            "postgres-exporter runs as `{uid}`, but secrets-init does not chown {file_name} to it"
        ));
    }
    // The role the exporter logs in as is the one the SQL file makes, in the database Postgres
    // creates, on the postgres service.
    let sql_path = root().join("postgres").join("monitoring-role.sql");
    let sql = std::fs::read_to_string(&sql_path)?;
    let user = exporter_env.get("DATA_SOURCE_USER").cloned().unwrap_or_default();
    if user.is_empty() || !sql.contains(&format!("CREATE ROLE {user}")) {
        problems.push(format!(
            "postgres-exporter logs in as `{user}`, which {} does not create",
            sql_path.display()
        ));
    }
    if !sql.contains(":'monitor_password'") {
        problems.push(format!(
            "{} does not take the psql variable monitor_password",
            sql_path.display()
        ));
    }
    let database = env_of(service(project, "postgres")?).remove("POSTGRES_DB").unwrap_or_default();
    let uri = exporter_env.get("DATA_SOURCE_URI").cloned().unwrap_or_default();
    if uri.split('?').next() != Some(&format!("postgres:5432/{database}")) {
        problems.push(format!(
            "postgres-exporter: DATA_SOURCE_URI `{uri}` is not postgres:5432/{database}"
        ));
    }
    if init_env.get("PGHOST").map(String::as_str) != Some("postgres")
        || init_env.get("PGDATABASE") != Some(&database)
    {
        problems
            .push(format!("postgres-monitor-init: PGHOST/PGDATABASE are not postgres/{database}"));
    }
    let postgres_networks = networks_of(service(project, "postgres")?);
    for (name, service) in [("postgres-monitor-init", init), ("postgres-exporter", exporter)] {
        if networks_of(service).is_disjoint(&postgres_networks) {
            problems.push(format!("{name}: on no network of Postgres' {postgres_networks:?}"));
        }
    }
    let mounted = mounts(init)?
        .into_iter()
        .find(|m| m.kind == "bind" && m.source == sql_path && m.read_only)
        .map(|m| m.target);
    let Some(mounted) = mounted else {
        problems.push(format!(
            "postgres-monitor-init: {} is not mounted read-only",
            sql_path.display()
        ));
        return report("monitoring role", problems);
    };

    // Its script, with a stand-in psql.
    let command = strings_at(init, &["command"]);
    anyhow::ensure!(
        strings_at(init, &["entrypoint"]) == ["/bin/sh", "-c"] && command.len() == 1,
        "postgres-monitor-init: expected entrypoint [/bin/sh, -c] and one script"
    );
    let scratch =
        std::env::temp_dir().join(format!("compose-test-monitor-init-{}", std::process::id()));
    let _cleanup = RemoveOnDrop(scratch.clone());
    std::fs::create_dir_all(&scratch)?;
    let record = scratch.join("psql-call");
    let psql = scratch.join("psql");
    std::fs::write(
        &psql,
        format!(
            "#!/bin/sh\n{{ for a in \"$@\"; do printf 'arg %s\\n' \"$a\"; done; \
             printf 'env %s\\n' \"$MONITOR_PASSWORD\"; }} > '{}'\n",
            record.display()
        ),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&psql, std::fs::Permissions::from_mode(0o755))?;
    let path = format!("{}:{}", scratch.display(), std::env::var("PATH").unwrap_or_default());
    let run = |file: &Path| -> anyhow::Result<bool> {
        let _ = std::fs::remove_file(&record);
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(&command[0]).env("PATH", &path).env("MONITOR_PASSWORD_FILE", file);
        sh.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        Ok(sh.status()?.success())
    };
    let secret = "Zq8monitorPassword0123456789abcd";
    let file = scratch.join("postgres-monitor-password");
    std::fs::write(&file, secret)?;
    if !run(&file)? {
        problems.push("postgres-monitor-init's script fails with a password file".into());
    }
    let call = std::fs::read_to_string(&record).unwrap_or_default();
    let args: Vec<&str> = call.lines().filter_map(|l| l.strip_prefix("arg ")).collect();
    if !call.lines().any(|l| l == format!("env {secret}")) {
        problems.push(format!("psql does not get the password in MONITOR_PASSWORD:\n{call}"));
    }
    if args.iter().any(|a| a.contains(secret)) {
        problems.push(format!("the password is on psql's command line: {args:?}"));
    }
    for want in [
        "--set=ON_ERROR_STOP=on".to_string(),
        "--command=\\getenv monitor_password MONITOR_PASSWORD".to_string(),
        format!("--file={mounted}"),
    ] {
        if !args.contains(&want.as_str()) {
            problems.push(format!("psql is not run with `{want}`: {args:?}"));
        }
    }
    let empty = scratch.join("empty");
    std::fs::write(&empty, "")?;
    for (what, file) in [("an empty", empty), ("a missing", scratch.join("missing"))] {
        if run(&file)? || record.exists() {
            problems.push(format!("{what} password file: the script runs psql or succeeds"));
        }
    }
    report("monitoring role", problems)
}

/// Removes a directory (and what is in it) on drop.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn prometheus_and_alertmanager_have_network_namespaces_of_their_own() -> anyhow::Result<()> {
    let project = project()?;
    let services = services(project)?;
    let mut problems = Vec::new();
    // Sharing the collector's namespace stranded them whenever the collector was recreated.
    for name in ["prometheus", "alertmanager"] {
        let service = service(project, name)?;
        if let Some(mode) = str_at(service, &["network_mode"]) {
            problems.push(format!("{name}: network_mode `{mode}`: it must have its own networks"));
        }
        if networks_of(service).is_empty() {
            problems.push(format!("{name}: on no network"));
        }
    }
    for (name, service) in &services {
        if str_at(service, &["network_mode"]) == Some("service:otel-collector") {
            problems.push(format!("{name}: shares the collector's network namespace"));
        }
        // Whoever joins another service's namespace must follow it when it is recreated, or it
        // is left in a namespace that no longer exists.
        if let Some(other) =
            str_at(service, &["network_mode"]).and_then(|m| m.strip_prefix("service:"))
            && service
                .get("depends_on")
                .and_then(|d| d.get(other))
                .and_then(|d| d.get("restart"))
                .and_then(Value::as_bool)
                != Some(true)
        {
            problems.push(format!(
                "{name}: joins {other}'s network namespace but does not depend on it with \
                 `restart: true`"
            ));
        }
    }
    // alert-log is reached over Alertmanager's loopback, as alertmanager.yml's URLs say.
    match str_at(service(project, "alert-log")?, &["network_mode"]) {
        Some("service:alertmanager") => {}
        other => problems.push(format!(
            "alert-log: network_mode {other:?}, expected `service:alertmanager` (alertmanager.yml \
             posts to 127.0.0.1)"
        )),
    }
    // Grafana reaches both by service name on a network they share.
    let grafana = networks_of(service(project, "grafana")?);
    for name in ["prometheus", "alertmanager"] {
        if networks_of(service(project, name)?).is_disjoint(&grafana) {
            problems.push(format!("{name}: on no network of Grafana's {grafana:?}"));
        }
    }
    report("network namespaces", problems)
}

#[test]
fn prometheus_targets_are_compose_services_in_compose_and_loopback_natively() -> anyhow::Result<()>
{
    let project = project()?;
    let dir = root().join("prometheus");
    let config: Value =
        serde_norway::from_str(&std::fs::read_to_string(dir.join("prometheus.yml"))?)?;
    let mut problems = Vec::new();
    // Every scrape job and every Alertmanager: targets from files under targets/, none inline.
    let mut users: Vec<(String, &Value)> = Vec::new();
    for job in config.get("scrape_configs").and_then(Value::as_sequence).into_iter().flatten() {
        let name = str_at(job, &["job_name"]).unwrap_or("(unnamed)");
        users.push((format!("scrape job {name}"), job));
    }
    let alertmanagers = config.get("alerting").and_then(|a| a.get("alertmanagers"));
    for (i, am) in alertmanagers.and_then(Value::as_sequence).into_iter().flatten().enumerate() {
        users.push((format!("alerting.alertmanagers[{i}]"), am));
    }
    if !users.iter().any(|(what, _)| what.starts_with("alerting")) {
        problems.push("prometheus.yml: no alerting.alertmanagers".into());
    }
    let mut files = BTreeSet::new();
    for (what, user) in &users {
        for key in ["static_configs", "dns_sd_configs"] {
            if user.get(key).is_some() {
                problems.push(format!(
                    "prometheus.yml: {what} has {key}: compose and the native stack need \
                     different targets, so they come from files (file_sd_configs)"
                ));
            }
        }
        let sd = user.get("file_sd_configs").and_then(Value::as_sequence);
        let named: Vec<String> =
            sd.into_iter().flatten().flat_map(|c| strings_at(c, &["files"])).collect();
        if named.is_empty() {
            problems.push(format!("prometheus.yml: {what} has no file_sd_configs files"));
        }
        for file in named {
            match file.strip_prefix(&format!("{TARGETS_DIR}/")) {
                Some(name) if !name.contains(['/', '*']) && !file.contains("..") => {
                    files.insert(name.to_string());
                }
                _ => problems.push(format!(
                    "prometheus.yml: {what} reads `{file}`: expected `{TARGETS_DIR}/<name>.yaml`, \
                     relative (resolved against the config's directory, which compose mounts)"
                )),
            }
        }
    }
    // Compose puts its own directory where the native one is.
    let prometheus = service(project, "prometheus")?;
    match mounts(prometheus)?
        .into_iter()
        .find(|m| m.target == format!("/etc/prometheus/{TARGETS_DIR}"))
    {
        Some(m) if m.kind == "bind" && m.source == dir.join(COMPOSE_TARGETS_DIR) && m.read_only => {
        }
        other => problems.push(format!(
            "prometheus: prometheus/{COMPOSE_TARGETS_DIR} must be mounted read-only at \
             /etc/prometheus/{TARGETS_DIR}, found {other:?}"
        )),
    }
    // Both directories hold exactly the files prometheus.yml reads.
    for sub in [TARGETS_DIR, COMPOSE_TARGETS_DIR] {
        let present: BTreeSet<String> = std::fs::read_dir(dir.join(sub))
            .with_context(|| format!("listing prometheus/{sub}"))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        for missing in files.difference(&present) {
            problems.push(format!("prometheus/{sub}/{missing}: missing (prometheus.yml reads it)"));
        }
        for extra in present.difference(&files) {
            problems.push(format!("prometheus/{sub}/{extra}: prometheus.yml reads no such file"));
        }
    }
    let prometheus_networks = networks_of(prometheus);
    for file in &files {
        let native = target_groups(&dir.join(TARGETS_DIR).join(file));
        let compose = target_groups(&dir.join(COMPOSE_TARGETS_DIR).join(file));
        let (native, compose) = match (native, compose) {
            (Ok(n), Ok(c)) => (n, c),
            (n, c) => {
                for e in [n.err(), c.err()].into_iter().flatten() {
                    problems.push(format!("{e:#}"));
                }
                continue;
            }
        };
        // Natively everything listens on 127.0.0.1.
        for (target, _) in &native {
            if !matches!(target.0.as_str(), "127.0.0.1" | "localhost" | "[::1]") {
                problems.push(format!(
                    "prometheus/{TARGETS_DIR}/{file}: target {}:{} is not loopback (the native \
                     stack listens on 127.0.0.1)",
                    target.0, target.1
                ));
            }
        }
        // In compose: a service on one of Prometheus' networks, listening there.
        for (target, _) in &compose {
            let (host, port) = (target.0.as_str(), target.1);
            match serving(project, host, &prometheus_networks)? {
                Some(server) if server == host => {
                    if !listens_on(project, &server, port)? {
                        problems.push(format!(
                            "prometheus/{COMPOSE_TARGETS_DIR}/{file}: {server} does not listen on \
                             {port}"
                        ));
                    }
                }
                _ => problems.push(format!(
                    "prometheus/{COMPOSE_TARGETS_DIR}/{file}: `{host}` is no compose service on \
                     Prometheus' networks {prometheus_networks:?}"
                )),
            }
        }
        // The same ports and labels both ways: only the hosts differ.
        let shape = |groups: &Targets| {
            groups.iter().map(|((_, port), labels)| (*port, labels.clone())).collect::<Vec<_>>()
        };
        if shape(&native) != shape(&compose) {
            problems.push(format!(
                "prometheus/{{{TARGETS_DIR},{COMPOSE_TARGETS_DIR}}}/{file}: the ports or labels \
                 differ ({:?} natively, {:?} in compose)",
                shape(&native),
                shape(&compose)
            ));
        }
    }
    report("prometheus targets", problems)
}

#[test]
fn every_webhook_of_alertmanager_reaches_alert_log() -> anyhow::Result<()> {
    let project = project()?;
    let path = root().join("alertmanager").join("alertmanager.yml");
    let config: Value = serde_norway::from_str(&std::fs::read_to_string(&path)?)?;
    let alertmanager_networks = networks_of(service(project, "alertmanager")?);
    let alert_log = alert_log_addr(project)?;
    let in_alertmanager_namespace =
        str_at(service(project, "alert-log")?, &["network_mode"]) == Some("service:alertmanager");
    let mut problems = Vec::new();
    let mut urls = Vec::new();
    for receiver in config.get("receivers").and_then(Value::as_sequence).into_iter().flatten() {
        let name = str_at(receiver, &["name"]).unwrap_or("(unnamed)").to_string();
        let webhooks = receiver.get("webhook_configs").and_then(Value::as_sequence);
        for webhook in webhooks.into_iter().flatten() {
            // A `url_file` is a secret outside the repo: nothing to check here.
            if let Some(url) = str_at(webhook, &["url"]) {
                urls.push((name.clone(), url.to_string()));
            }
        }
    }
    for (receiver, url) in &urls {
        let Some((host, port)) = host_port(url) else {
            problems.push(format!("receiver {receiver}: webhook URL `{url}` has no host:port"));
            continue;
        };
        if matches!(host, "127.0.0.1" | "localhost") {
            // Alertmanager's own loopback: alert-log, in its namespace.
            if !in_alertmanager_namespace {
                problems.push(format!(
                    "receiver {receiver}: {url} is Alertmanager's loopback, but alert-log does not \
                     share Alertmanager's network namespace"
                ));
            }
            let url_path = url.split_once("://").and_then(|(_, r)| r.find('/').map(|i| &r[i..]));
            if port != alert_log.port() {
                problems.push(format!(
                    "receiver {receiver}: {url} is Alertmanager's loopback port {port}, but \
                     alert-log (which shares its namespace) listens on {alert_log}"
                ));
            }
            match url_path {
                Some(p) if alert_log::RECEIVERS.contains(&p) => {}
                other => problems.push(format!(
                    "receiver {receiver}: {url}: alert-log takes no path {other:?} (it serves {:?})",
                    alert_log::RECEIVERS
                )),
            }
        } else {
            match serving(project, host, &alertmanager_networks)? {
                Some(server) if listens_on(project, &server, port)? => {}
                Some(server) => problems.push(format!("{url}: {server} does not listen on {port}")),
                None => problems.push(format!(
                    "receiver {receiver}: `{host}` of {url} is no service on Alertmanager's \
                     networks {alertmanager_networks:?}"
                )),
            }
        }
    }
    // And alert-log serves each path Alertmanager can post to, at the address compose gives it.
    if alert_log.port() != alert_log_default().port() {
        problems.push(format!(
            "alert-log: compose moves it to {alert_log}; its default (and the live proof's sink) \
             is {}",
            alert_log::DEFAULT_ADDR
        ));
    }
    report("alertmanager webhooks", problems)
}

// ---------------------------------------------------------------------------------------------
// The project and its parts.

/// The loaded project, once per test binary.
fn project() -> anyhow::Result<&'static Value> {
    static PROJECT: OnceLock<Result<Value, String>> = OnceLock::new();
    PROJECT
        .get_or_init(|| compose::load(&["compose.yaml"]).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn root() -> PathBuf {
    testkit::repo_root()
}

fn build_args(service: &Value) -> anyhow::Result<BTreeMap<String, String>> {
    let args = service
        .get("build")
        .and_then(|b| b.get("args"))
        .and_then(Value::as_mapping)
        .context("no build args")?;
    Ok(args
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str().unwrap_or("").to_string())))
        .collect())
}

/// A service that runs once and exits (`restart: "no"`, and others wait for its completion).
fn is_one_shot(service: &Value) -> bool {
    str_at(service, &["restart"]) == Some("no")
}

/// The service (by name) that answers for `host` on `networks`: a service of that name on one of
/// them, or one whose network namespace is that of a service carrying `host` as an alias there.
fn serving(
    project: &Value,
    host: &str,
    networks: &BTreeSet<String>,
) -> anyhow::Result<Option<String>> {
    let services = services(project)?;
    if let Some(s) = services.get(host)
        && !networks_of(s).is_disjoint(networks)
    {
        return Ok(Some(host.to_string()));
    }
    for (name, service) in &services {
        for network in networks_of(service).intersection(networks) {
            let aliases = strings_at(service, &["networks", network, "aliases"]);
            if aliases.iter().any(|a| a == host) {
                // The alias leads into `name`'s namespace; the service named `host` must live there.
                let joined = services.get(host).and_then(|s| str_at(s, &["network_mode"]));
                return Ok(match joined {
                    Some(mode) if mode == format!("service:{name}") => Some(host.to_string()),
                    _ => Some(name.clone()),
                });
            }
        }
    }
    Ok(None)
}

/// Whether `name` listens on container port `port` on an address other services can reach (not
/// loopback only): by its published ports, its `*_ADDR` listen addresses, or, for the collector,
/// the listen addresses of collector-config.yaml.
fn listens_on(project: &Value, name: &str, port: u16) -> anyhow::Result<bool> {
    Ok(listeners(project, name)?.iter().any(|(host, p)| {
        *p == port && !matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]")
    }))
}

/// Where `name` listens inside its network namespace: `(host, port)`, host `0.0.0.0` for every
/// interface.
fn listeners(project: &Value, name: &str) -> anyhow::Result<Vec<(String, u16)>> {
    let service = service(project, name)?;
    let mut out = Vec::new();
    // A published port: the server in the container listens on every interface.
    for port in service.get("ports").and_then(Value::as_sequence).into_iter().flatten() {
        if let Some(target) = port.get("target").and_then(Value::as_u64) {
            out.push(("0.0.0.0".to_string(), u16::try_from(target)?));
        }
    }
    // A listen address in its environment (`API_ADDR=0.0.0.0:8000`).
    let env = env_of(service);
    for (key, value) in &env {
        if key.ends_with("_ADDR")
            && let Some((host, port)) = value.rsplit_once(':')
            && let Ok(port) = port.parse()
        {
            out.push((host.to_string(), port));
        }
    }
    if name == "alert-log" && !env.contains_key(alert_log::ADDR_VAR) {
        let addr = alert_log_default();
        out.push((addr.ip().to_string(), addr.port()));
    }
    // An exporter's `--web.listen-address=[host]:port` (Prometheus' flag, postgres_exporter's).
    let command = strings_at(service, &["command"]);
    for flag in command.iter().filter_map(|c| c.strip_prefix("--web.listen-address=")) {
        if let Some((host, port)) = flag.rsplit_once(':') {
            let host = if host.is_empty() { "0.0.0.0" } else { host };
            out.push((host.to_string(), port.parse()?));
        }
    }
    // Redis: `--port`, else its default, on every interface (the image turns protected mode off).
    if str_at(service, &["image"]).is_some_and(|i| i.starts_with("redis:")) {
        let port = command.iter().position(|c| c == "--port").and_then(|i| command.get(i + 1));
        out.push(("0.0.0.0".to_string(), port.map_or(Ok(6379), |p| p.parse())?));
    }
    // Jaeger: its config's listen addresses (`${env:JAEGER_*_ENDPOINT:-default}`).
    if name == "jaeger" {
        for var in config_variables(JAEGER_CONFIG)?.iter().filter(|v| v.ends_with("_ENDPOINT")) {
            let value =
                env.get(var).cloned().map_or_else(|| config_default(JAEGER_CONFIG, var), Ok)?;
            if let Some((host, port)) = value.rsplit_once(':') {
                out.push((host.to_string(), port.parse()?));
            }
        }
    }
    // The collector: its config's listen addresses (`${env:COLLECTOR_*:-default}`, unless compose
    // sets the variable). Its other `*_ENDPOINT`s are what it scrapes, not where it listens.
    if name == "otel-collector" {
        for var in collector_variables()?.iter().filter(|v| v.starts_with("COLLECTOR_")) {
            if var.ends_with("_ENDPOINT")
                && let Some((host, port)) = collector_value(&env, var)?.rsplit_once(':')
            {
                out.push((host.to_string(), port.parse()?));
            }
        }
        let host = collector_value(&env, "COLLECTOR_TELEMETRY_HOST")?;
        out.push((host, collector_value(&env, "COLLECTOR_TELEMETRY_PORT")?.parse()?));
    }
    Ok(out)
}

/// Jaeger's config, relative to the repo root.
const JAEGER_CONFIG: &str = "jaeger/config.yaml";

/// Where Jaeger keeps its Badger store in compose: the parent of the config's default
/// `JAEGER_BADGER_DIR` (compose sets none), the directory its volume must be mounted at.
fn jaeger_store() -> anyhow::Result<String> {
    let dir = config_default(JAEGER_CONFIG, "JAEGER_BADGER_DIR")?;
    Ok(Path::new(&dir).parent().map(|p| p.display().to_string()).unwrap_or(dir))
}

/// The variables collector-config.yaml reads (`${env:NAME:-default}`), in order, once each.
fn collector_variables() -> anyhow::Result<Vec<String>> {
    config_variables("collector-config.yaml")
}

/// The variables a config file of the repo reads (`${env:NAME:-default}`), in order, once each.
fn config_variables(file: &str) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(root().join(file))?;
    let mut out: Vec<String> = Vec::new();
    for var in text.split("${env:").skip(1).filter_map(|rest| rest.split([':', '}']).next()) {
        if !out.iter().any(|v| v == var) {
            out.push(var.to_string());
        }
    }
    Ok(out)
}

/// A variable of collector-config.yaml as the collector in compose sees it: compose's value if
/// it sets one, else the config's default.
fn collector_value(env: &BTreeMap<String, String>, var: &str) -> anyhow::Result<String> {
    env.get(var).cloned().map_or_else(|| collector_default(var), Ok)
}

/// alert-log's listen address in compose: its `ALERT_LOG_ADDR`, else the binary's default.
fn alert_log_addr(project: &Value) -> anyhow::Result<SocketAddr> {
    let env = env_of(service(project, "alert-log")?);
    alert_log::listen_addr(env.get(alert_log::ADDR_VAR).map(String::as_str))
        .map_err(|e| anyhow::anyhow!("alert-log: {e}"))
}

/// The binary's default listen address.
fn alert_log_default() -> SocketAddr {
    alert_log::listen_addr(None).unwrap_or_else(|e| panic!("alert-log's default address: {e}"))
}

/// The targets of a `file_sd_configs` file: each one's `(host, port)` with its group's labels.
type Targets = Vec<((String, u16), BTreeMap<String, String>)>;

/// The [`Targets`] of a `file_sd_configs` file.
fn target_groups(path: &Path) -> anyhow::Result<Targets> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc: Value =
        serde_norway::from_str(&text).with_context(|| format!("{} is not YAML", path.display()))?;
    let groups = doc
        .as_sequence()
        .with_context(|| format!("{}: not a list of target groups", path.display()))?;
    let mut out = Vec::new();
    for group in groups {
        let labels: BTreeMap<String, String> = group
            .get("labels")
            .and_then(Value::as_mapping)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let targets = strings_at(group, &["targets"]);
        anyhow::ensure!(!targets.is_empty(), "{}: a group without targets", path.display());
        for target in targets {
            let (host, port) = target
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .with_context(|| {
                    format!("{}: target `{target}` is not host:port", path.display())
                })?;
            out.push(((host, port), labels.clone()));
        }
    }
    anyhow::ensure!(!out.is_empty(), "{}: no targets", path.display());
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The repo.

fn env_file() -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(root().join(".env")).context("reading .env")?;
    testkit::tools::parse_env_file(&text)
}

/// `version` of `[workspace.package]` in Cargo.toml.
fn workspace_version() -> anyhow::Result<String> {
    let text = std::fs::read_to_string(root().join("Cargo.toml"))?;
    let section = text.split("[workspace.package]").nth(1).context("no [workspace.package]")?;
    section
        .lines()
        .take_while(|l| !l.trim_start().starts_with('['))
        .find_map(|l| l.trim().strip_prefix("version").map(str::trim))
        .and_then(|l| l.strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .context("no version in [workspace.package]")
}

/// The names of the environment variables code under `dir` can read: every string literal that
/// looks like one (`"API_ADDR"`). A superset (a literal need not be read), which is what the check
/// needs: a name compose sets that appears nowhere is certainly read by nobody.
fn env_names(dir: &Path) -> anyhow::Result<BTreeSet<String>> {
    // Quotes that do not open or close a string literal (escaped in a string, a char literal)
    // would pair the rest of the text the wrong way round.
    let text = rust_sources(dir)?.replace("\\\\", "").replace("\\\"", "").replace("'\"'", "");
    Ok(text
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.len() >= 3
                && s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_string)
        .collect())
}

/// The port of the default address of `var` in a config reader, e.g. `8000` from
/// `s.addr("API_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?`.
fn default_port_in(config: &Path, var: &str) -> anyhow::Result<u16> {
    let text = std::fs::read_to_string(config)?;
    let start = text
        .find(&format!("addr(\"{var}\""))
        .with_context(|| format!("{} reads no address `{var}`", config.display()))?;
    let call = &text[start..];
    let call = &call[..call.find(")?").unwrap_or(call.len())];
    call.rsplit(|c: char| !c.is_ascii_digit())
        .find(|s| !s.is_empty())
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no default port for {var} in {}", config.display()))
}

/// `global.scrape_interval` of prometheus.yml in milliseconds (`15s` -> 15000).
fn scrape_interval_ms() -> anyhow::Result<u64> {
    let path = root().join("prometheus").join("prometheus.yml");
    let doc: Value = serde_norway::from_str(&std::fs::read_to_string(&path)?)?;
    let interval = str_at(&doc, &["global", "scrape_interval"]).context("no scrape_interval")?;
    let seconds = interval.strip_suffix('s').and_then(|s| s.parse::<u64>().ok());
    seconds
        .map(|s| s * 1000)
        .with_context(|| format!("scrape_interval `{interval}` is not whole seconds"))
}

/// The default port of a `${env:NAME:-host:port}` in collector-config.yaml.
fn collector_default_port(var: &str) -> anyhow::Result<u16> {
    let value = collector_default(var)?;
    value
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("no port in `{value}`"))
}

/// The default of a `${env:NAME:-default}` in collector-config.yaml.
fn collector_default(var: &str) -> anyhow::Result<String> {
    config_default("collector-config.yaml", var)
}

/// The default of a `${env:NAME:-default}` in a config file of the repo.
fn config_default(file: &str, var: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(root().join(file))?;
    let prefix = format!("${{env:{var}:-");
    let start = text.find(&prefix).with_context(|| format!("no {prefix}…}} in {file}"))?;
    let rest = &text[start + prefix.len()..];
    Ok(rest[..rest.find('}').unwrap_or(rest.len())].to_string())
}

/// The members of the workspace (`members` of Cargo.toml's `[workspace]`).
fn workspace_members() -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(root().join("Cargo.toml"))?;
    let list = text.split("members = [").nth(1).context("no workspace members in Cargo.toml")?;
    let list = &list[..list.find(']').context("unterminated members list")?];
    Ok(list
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect())
}

/// The text of every `.rs` file under `dir`, concatenated.
fn rust_sources(dir: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    for path in walk(dir)? {
        if path.extension().is_some_and(|e| e == "rs") {
            text.push_str(&std::fs::read_to_string(&path)?);
            text.push('\n');
        }
    }
    Ok(text)
}

fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = walk(dir)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no YAML files under {}", dir.display());
    Ok(files)
}

/// Files of the repo (not under target/ or .git/) called `name`.
fn files_named(root: &Path, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    Ok(walk(root)?.into_iter().filter(|p| p.file_name().is_some_and(|n| n == name)).collect())
}

/// Every file under `dir`, skipping build output and VCS data.
fn walk(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            if entry.file_type()?.is_dir() {
                if !matches!(name.to_str(), Some("target" | ".git" | "node_modules")) {
                    pending.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// Files of `dir` matching a `rules/*.yaml`-style pattern (a `*` in the last component only).
fn matching_files(dir: &Path, pattern: &str) -> anyhow::Result<Vec<PathBuf>> {
    let (parent, file) = pattern.rsplit_once('/').unwrap_or(("", pattern));
    let (prefix, suffix) = file.split_once('*').unwrap_or((file, ""));
    let exact = !file.contains('*');
    let dir = dir.join(parent);
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let hit = if exact {
            name == file
        } else {
            name.len() >= prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        };
        if hit {
            out.push(dir.join(name));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Small parsers.

/// Whether an image reference names a fixed version: a digest, or a tag other than `latest`
/// that contains a digit (a release, not a channel like `stable`).
fn check_pinned(image: &str) -> Result<(), &'static str> {
    if image.is_empty() {
        return Err("is missing");
    }
    if has_digest(image) {
        return Ok(());
    }
    if image.contains('@') {
        return Err("has a malformed digest");
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => Err("has no tag (that means `latest`)"),
        Some((_, "latest")) => Err("is `latest`"),
        Some((_, tag)) if !tag.contains(|c: char| c.is_ascii_digit()) => {
            Err("has a tag without a version number")
        }
        Some((_, tag)) if tag.starts_with('-') || tag.contains("--") => {
            Err("has an empty version (a variable .env does not set?)")
        }
        Some(_) => Ok(()),
    }
}

fn has_digest(image: &str) -> bool {
    image.split_once("@sha256:").is_some_and(|(name, hex)| {
        !name.is_empty() && hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// `X.Y.Z` with numbers.
fn is_release(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// The `${NAME}` / `${NAME:-…}` variables a line uses.
fn variables_in(line: &str) -> Vec<String> {
    line.split("${")
        .skip(1)
        .filter_map(|rest| {
            let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
            Some(rest[..end].to_string()).filter(|n| !n.is_empty())
        })
        .collect()
}

/// Host and port of `scheme://[user@]host:port[/…]`.
fn host_port(url: &str) -> Option<(&str, u16)> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = host_port.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

fn userinfo_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    authority.rsplit_once('@').is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The lines of a Dockerfile stage, from its `FROM … AS <name>` to the next `FROM`.
fn stage_text(dockerfile: &str, name: &str) -> String {
    let mut inside = false;
    let mut out = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("FROM ") {
            inside = trimmed.split_whitespace().nth(3) == Some(name);
        }
        if inside {
            out.push_str(trimmed);
            out.push('\n');
        }
    }
    // Continuation lines joined, so that a HEALTHCHECK's CMD is found on its own.
    out.replace("\\\n", " ")
}

/// `Ok` if there are no problems, else one error listing them all.
fn report(what: &str, problems: Vec<String>) -> anyhow::Result<()> {
    anyhow::ensure!(
        problems.is_empty(),
        "compose.yaml ({what}): {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
    Ok(())
}

#[test]
fn the_small_parsers_work() {
    assert!(check_pinned("postgres:18.6-alpine").is_ok());
    assert!(check_pinned("gcr.io/distroless/cc-debian12:nonroot@sha256:").is_err());
    assert!(
        check_pinned(&format!("gcr.io/distroless/cc-debian12@sha256:{}", "a".repeat(64))).is_ok()
    );
    assert!(check_pinned("localhost:5000/img").is_err());
    assert!(check_pinned("redis:latest").is_err());
    assert!(check_pinned("grafana/grafana:main").is_err());
    assert!(check_pinned("postgres:-alpine").is_err());
    assert_eq!(variables_in("image: a:${X}-${Y:-1}"), ["X", "Y"]);
    assert_eq!(host_port("postgres://postgres@postgres:5432/orgraph"), Some(("postgres", 5432)));
    assert_eq!(host_port("http://prometheus:9090"), Some(("prometheus", 9090)));
    assert!(userinfo_has_password("postgres://u:p@h:1/d"));
    assert!(!userinfo_has_password("postgres://u@h:1/d"));
    assert!(is_release("3.16.0") && !is_release("3.16") && !is_release("v3.16.0"));
}
