//! `cargo xtask test`: the README's one test command. Runs every check CI runs, in order, each
//! announced with its duration, and stops at the first failing step, naming it. The promtool rule
//! tests and the workspace's tests (built first) run in the background beside the live proof, their
//! lines prefixed with the step's name: none of them uses the ports the live proof's stack does, and
//! together they take minutes the live proof spends mostly waiting for alerts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::process::{Output, human, run};

/// One step of the command: the name its lines announce, and its work.
struct Step {
    name: &'static str,
    action: Box<dyn FnOnce() -> anyhow::Result<()> + Send>,
    /// Runs in the background: the next steps start at once, and it is waited for at the end.
    background: bool,
}

impl Step {
    fn new(
        name: &'static str,
        action: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
    ) -> Step {
        Step { name, action: Box::new(action), background: false }
    }

    fn in_background(
        name: &'static str,
        action: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
    ) -> Step {
        Step { background: true, ..Step::new(name, action) }
    }
}

pub fn command() -> anyhow::Result<()> {
    let steps = steps();
    let total = steps.len();
    let started = Instant::now();
    let mut background = Vec::new();
    let mut failure = None;
    for (n, step) in steps.into_iter().enumerate() {
        let name = step.name;
        let step_started = Instant::now();
        if step.background {
            eprintln!(
                "\n==> [{}/{total}] {name} (in the background, lines prefixed [{name}])",
                n + 1
            );
            background.push((name, step_started, std::thread::spawn(step.action)));
            continue;
        }
        eprintln!("\n==> [{}/{total}] {name}", n + 1);
        let result = (step.action)();
        let took = human(step_started.elapsed());
        match result {
            Ok(()) => eprintln!("<== {name} passed in {took}"),
            Err(e) => {
                failure = Some(format!("step `{name}` failed after {took}: {e:#}"));
                break;
            }
        }
    }
    // Background steps always finish, so a failure of the live proof does not hide theirs.
    for (name, step_started, thread) in background {
        let result = thread.join().unwrap_or_else(|_| Err(anyhow::anyhow!("{name} panicked")));
        let took = human(step_started.elapsed());
        match result {
            Ok(()) => eprintln!("<== {name} (background) passed in {took}"),
            Err(e) => {
                let message = format!("step `{name}` failed after {took}: {e:#}");
                eprintln!("<== {message}");
                failure.get_or_insert(message);
            }
        }
    }
    if let Some(failure) = failure {
        anyhow::bail!(failure);
    }
    eprintln!("\nall {total} steps passed in {}", human(started.elapsed()));
    Ok(())
}

const fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn steps() -> Vec<Step> {
    vec![
        cargo_step("fmt", &["fmt", "--all", "--", "--check"], minutes(5)),
        cargo_step(
            "clippy",
            &["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"],
            minutes(60),
        ),
        Step::new("tools", || crate::tools::ensure().map(|_| ())),
        // Every way the collector runs: alone, as the HA tier's agent (natively and in compose)
        // and as a gateway.
        Step::new("collector config", || {
            let scratch = testkit::ScratchDir::new("collector-config")?;
            let gateways = scratch.path().join("static-gateways.yaml");
            std::fs::write(&gateways, xtask::collector_tier::STATIC_GATEWAYS)?;
            for (_, files) in xtask::collector_tier::configurations(&gateways) {
                let mut command = Command::new(testkit::tools::otelcol_path()?);
                command.arg("validate");
                for file in files {
                    command.arg("--config").arg(file);
                }
                in_repo("otelcol validate", &mut command, Output::Inherit, minutes(2))?;
            }
            Ok(())
        }),
        Step::new("prometheus config", || {
            let mut command = Command::new(testkit::tools::promtool_path()?);
            command.args(["check", "config", "prometheus/prometheus.yml"]);
            in_repo("promtool check config", &mut command, Output::Inherit, minutes(2))
        }),
        Step::new("prometheus rules", || {
            let mut command = Command::new(testkit::tools::promtool_path()?);
            command.args(["check", "rules"]).args(yaml_files_in_repo(RULES_DIR)?);
            in_repo("promtool check rules", &mut command, Output::Inherit, minutes(2))
        }),
        Step::new("alertmanager config", || {
            let mut command = Command::new(testkit::tools::amtool_path()?);
            command.args(["check-config", "alertmanager/alertmanager.yml"]);
            in_repo("amtool check-config", &mut command, Output::Inherit, minutes(2))
        }),
        // Built in the foreground, so the live proof's stack does not wait for the compiler.
        cargo_step(
            "build tests",
            &["test", "--workspace", "--all-features", "--no-run"],
            minutes(60),
        ),
        Step::in_background("prometheus rule tests", || {
            let mut command = Command::new(testkit::tools::promtool_path()?);
            command.args(["test", "rules"]).args(yaml_files_in_repo(RULE_TESTS_DIR)?);
            let output = Output::Prefixed("prometheus rule tests");
            in_repo("promtool test rules", &mut command, output, minutes(10))
        }),
        // --no-fail-fast: one failing test binary must not hide the results of the others.
        Step::in_background("tests", || {
            let args = ["test", "--workspace", "--all-features", "--no-fail-fast"];
            let mut command = Command::new(cargo());
            command.args(args);
            let what = format!("cargo {}", args.join(" "));
            in_repo(&what, &mut command, Output::Prefixed("tests"), minutes(60))
        }),
        // The HA topology's proof, beside the single-node one: all its ports are free ones, its
        // files under target/e2e-ha, its webhook sink its own. A child process (a copy of this
        // binary, which the tests' build may replace), so its lines carry their prefix.
        Step::in_background("ha proof", || {
            let dir = testkit::repo_root().join("target").join("e2e-ha-bin");
            let mut command = Command::new(crate::stack::own_copy(&dir)?);
            command.args(["e2e", "--profile", "ha"]);
            in_repo(
                "cargo xtask e2e --profile ha",
                &mut command,
                Output::Prefixed("ha proof"),
                minutes(40),
            )
        }),
        // Last: the whole stack under load and faults, every dashboard and rule query.
        Step::new("live proof (cargo xtask e2e)", || {
            crate::e2e::command(crate::e2e::Profile::Single)
        }),
    ]
}

fn cargo_step(name: &'static str, args: &'static [&'static str], timeout: Duration) -> Step {
    Step::new(name, move || {
        let mut command = Command::new(cargo());
        command.args(args);
        in_repo(&format!("cargo {}", args.join(" ")), &mut command, Output::Inherit, timeout)
    })
}

/// Runs `command` in the repo root, its output going to `output` (inherited: its progress shows).
fn in_repo(
    what: &str,
    command: &mut Command,
    output: Output<'_>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let line: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    eprintln!("    $ {}", line.join(" "));
    run(what, command.current_dir(testkit::repo_root()), output, timeout)
}

/// The cargo that runs us (`$CARGO`), else `cargo` from PATH.
fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// The Prometheus rule files (recording and alerting rules), relative to the repo root.
const RULES_DIR: &str = "prometheus/rules";

/// The promtool unit tests of those rules.
const RULE_TESTS_DIR: &str = "prometheus/tests";

/// The `*.yaml`/`*.yml` files directly in the repo directory `dir`, sorted, relative to the repo
/// root (the steps run there, so the commands they echo stay short); an error if there are none
/// (a step that checks nothing must not pass).
fn yaml_files_in_repo(dir: &str) -> anyhow::Result<Vec<PathBuf>> {
    let root = testkit::repo_root();
    Ok(xtask::yaml::files_in(&root.join(dir))?
        .into_iter()
        .map(|p| p.strip_prefix(&root).map(Path::to_path_buf).unwrap_or(p))
        .collect())
}
