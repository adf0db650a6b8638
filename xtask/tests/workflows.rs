//! The GitHub Actions workflows (`.github/workflows/`): actionlint (at `ACTIONLINT_VERSION` of
//! `.env`, built by `cargo xtask tools`; with shellcheck on PATH it also checks every `run:`
//! script) finds nothing, and the compose workflow still proves what the README says it does:
//! it lints itself, builds the images, brings the stack up waiting for every health check, runs
//! the README's load, checks Prometheus' count and rules, and always takes the stack down with
//! its volumes; every action it uses is pinned by commit.

use anyhow::Context;
use serde_norway::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The workflow that runs `docker compose up` on a hosted runner.
const COMPOSE_WORKFLOW: &str = ".github/workflows/compose.yml";

/// The README's load command (its "What you see where" section), which the workflow runs.
const README_LOAD: &str = "cargo xtask load --seed-graph 2000 --duration 60s";

#[test]
fn actionlint_finds_nothing_in_the_workflows() -> anyhow::Result<()> {
    let actionlint = testkit::tools::require(&testkit::tools::actionlint_path()?, "actionlint")?;
    let workflows = workflow_files()?;
    let mut command = Command::new(actionlint);
    command.arg("-no-color").args(&workflows).current_dir(testkit::repo_root());
    // Exit 1 with one report per problem: the error carries them.
    testkit::process::output("actionlint", &mut command, Duration::from_secs(120))?;
    Ok(())
}

#[test]
fn the_compose_workflow_proves_compose_up_and_cleans_up() -> anyhow::Result<()> {
    let root = testkit::repo_root();
    let text = std::fs::read_to_string(root.join(COMPOSE_WORKFLOW))
        .with_context(|| format!("reading {COMPOSE_WORKFLOW}"))?;
    let workflow: Value = serde_norway::from_str(&text)?;
    let jobs = workflow.get("jobs").and_then(Value::as_mapping).context("no jobs")?;
    let mut problems = Vec::new();

    // Every step's `run:` script and `if:` condition, job by job, in order.
    let steps = |job: &Value| -> Vec<(String, String, String)> {
        let steps = job.get("steps").and_then(Value::as_sequence).cloned().unwrap_or_default();
        steps
            .iter()
            .map(|s| {
                let field = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or_default();
                (field("name").to_string(), field("run").to_string(), field("if").to_string())
            })
            .collect()
    };
    // One job lints the workflows with the pinned actionlint.
    let lints = jobs.values().flat_map(steps).any(|(_, run, _)| {
        run.contains("ACTIONLINT_VERSION") && run.contains(".env") && run.contains("actionlint")
    });
    if !lints {
        problems.push("no step runs actionlint at ACTIONLINT_VERSION of .env".to_string());
    }
    // The compose job, in this order: build, up (waiting for health), the load, the checks; and
    // always, even after a failure, down with the volumes.
    let compose =
        jobs.values().map(steps).find(|s| s.iter().any(|(_, r, _)| r.contains("up --wait")));
    let Some(compose) = compose else {
        anyhow::bail!("{COMPOSE_WORKFLOW}: no job runs `docker compose up --wait`");
    };
    let at = |needle: &str| compose.iter().position(|(_, run, _)| run.contains(needle));
    let order = [
        "docker build --check",
        "docker compose build",
        "docker compose up --wait",
        README_LOAD,
        "/api/v1/query",
        "/api/v1/rules",
        "docker compose down --volumes",
    ];
    let positions: Vec<Option<usize>> = order.iter().map(|n| at(n)).collect();
    for (needle, position) in order.iter().zip(&positions) {
        if position.is_none() {
            problems.push(format!("the compose job has no step running `{needle}`"));
        }
    }
    let found: Vec<usize> = positions.iter().flatten().copied().collect();
    if !found.is_sorted() {
        problems
            .push(format!("the compose job's steps are out of order: {order:?} at {positions:?}"));
    }
    if let Some(down) = at("docker compose down --volumes")
        && compose[down].2 != "always()"
    {
        problems
            .push("the `docker compose down --volumes` step does not run `if: always()`".into());
    }
    let readme = std::fs::read_to_string(root.join("README.md"))?;
    if !readme.contains(README_LOAD) {
        problems.push(format!("README.md no longer says `{README_LOAD}`: update README_LOAD"));
    }
    // Actions are pinned by commit, like every image of the stack: a tag can be moved.
    for line in text.lines().map(str::trim) {
        let Some(used) = line.strip_prefix("- uses:").or_else(|| line.strip_prefix("uses:")) else {
            continue;
        };
        let used = used.split('#').next().unwrap_or_default().trim();
        let pinned = used.rsplit_once('@').is_some_and(|(_, r)| {
            r.len() == 40 && r.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        });
        if !pinned {
            problems.push(format!("`{used}` is not pinned by a commit SHA (add `# vX.Y.Z`)"));
        }
    }
    anyhow::ensure!(
        problems.is_empty(),
        "{COMPOSE_WORKFLOW}: {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
    Ok(())
}

/// The workflow files, sorted; an error if there are none.
fn workflow_files() -> anyhow::Result<Vec<PathBuf>> {
    let dir = testkit::repo_root().join(".github").join("workflows");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"));
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no workflow in {}", dir.display());
    Ok(files)
}
