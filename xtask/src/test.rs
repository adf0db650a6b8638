//! `cargo xtask test`: the README's one test command. Runs every check CI runs, in order, each
//! announced with its duration, and stops at the first failing step, naming it.

use crate::run::{Output, human, run};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A step: a name and what it does.
struct Step {
    name: &'static str,
    action: Box<dyn FnOnce() -> anyhow::Result<()>>,
}

/// The `test` subcommand.
pub fn command() -> anyhow::Result<()> {
    let steps = steps();
    let total = steps.len();
    let started = Instant::now();
    for (n, step) in steps.into_iter().enumerate() {
        eprintln!("\n==> [{}/{total}] {}", n + 1, step.name);
        let step_started = Instant::now();
        let result = (step.action)();
        let took = human(step_started.elapsed());
        match result {
            Ok(()) => eprintln!("<== {} passed in {took}", step.name),
            Err(e) => anyhow::bail!("step `{}` failed after {took}: {e:#}", step.name),
        }
    }
    eprintln!("\nall {total} steps passed in {}", human(started.elapsed()));
    Ok(())
}

/// `m` minutes.
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
        Step { name: "tools", action: Box::new(|| crate::tools::ensure().map(|_| ())) },
        Step {
            name: "collector config",
            action: Box::new(|| {
                let otelcol = testkit::tools::otelcol_path()?;
                let mut command = Command::new(otelcol);
                command.args(["validate", "--config", "collector-config.yaml"]);
                in_repo("otelcol validate", &mut command, minutes(2))
            }),
        },
        Step {
            name: "prometheus config",
            action: Box::new(|| {
                let promtool = testkit::tools::promtool_path()?;
                let mut command = Command::new(promtool);
                command.args(["check", "config", "prometheus/prometheus.yml"]);
                in_repo("promtool check config", &mut command, minutes(2))
            }),
        },
        // --no-fail-fast: one failing test binary must not hide the results of the others.
        cargo_step(
            "tests",
            &["test", "--workspace", "--all-features", "--no-fail-fast"],
            minutes(60),
        ),
    ]
}

fn cargo_step(name: &'static str, args: &'static [&'static str], timeout: Duration) -> Step {
    Step {
        name,
        action: Box::new(move || {
            let mut command = Command::new(cargo());
            command.args(args);
            in_repo(&format!("cargo {}", args.join(" ")), &mut command, timeout)
        }),
    }
}

/// Runs `command` in the repo root with inherited output, so its progress shows.
fn in_repo(what: &str, command: &mut Command, timeout: Duration) -> anyhow::Result<()> {
    let line: Vec<String> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    eprintln!("    $ {}", line.join(" "));
    run(what, command.current_dir(testkit::repo_root()), Output::Inherit, timeout)
}

/// The cargo that runs us (`$CARGO`), else `cargo` from PATH.
fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}
