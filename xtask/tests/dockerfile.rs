//! The Dockerfile passes BuildKit's own Dockerfile checks, the rules `docker build --check` runs
//! (InvalidDefaultArgInFrom, UndefinedVar, SecretsUsedInArgOrEnv, JSONArgsRecommended, ...): not
//! one warning. `xtask/dockerfile-lint` (a small Go program on
//! `github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb`, the library the Dockerfile
//! frontend runs, at the version its go.mod pins) runs them here, where there is no Docker
//! engine; base images are not fetched (see its doc for the two checks that therefore cannot see
//! the real image). The compose workflow (.github/workflows/compose.yml) runs the real
//! `docker build --check` where Docker runs.
//!
//! The program is built once per version of its sources into the tool cache (see
//! `xtask::go_program`); it needs `go` on PATH, like `cargo xtask tools`.

use std::process::Command;
use std::time::Duration;
use xtask::go_program;

/// How long one lint may take.
const LINT_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn the_dockerfile_passes_buildkits_checks() -> anyhow::Result<()> {
    let linter = go_program::binary("dockerfile-lint")?;
    let mut command = Command::new(linter);
    command.args(["-file", "Dockerfile"]).current_dir(testkit::repo_root());
    // Exit 1, with each warning on a line, on any warning: the error says them all.
    let out = testkit::process::output("dockerfile-lint Dockerfile", &mut command, LINT_TIMEOUT)?;
    anyhow::ensure!(out.trim().is_empty(), "dockerfile-lint exited 0 but printed:\n{out}");
    Ok(())
}

/// The checker is not vacuous: the defect it is here for (an ARG in FROM without a default, as
/// the Dockerfile had) and other rules are reported, with their lines.
#[test]
fn the_checker_reports_what_buildkit_warns_about() -> anyhow::Result<()> {
    let cases = [
        ("ARG BASE\nFROM ${BASE}:1 AS build\n", &[":2: InvalidDefaultArgInFrom:"][..]),
        (
            "FROM alpine:3\nENV API_TOKEN=x\nCMD echo hi\n",
            &[":2: SecretsUsedInArgOrEnv:", ":3: JSONArgsRecommended:"][..],
        ),
    ];
    for (dockerfile, expected) in cases {
        let message = lint_failure(dockerfile)?;
        for needle in expected {
            anyhow::ensure!(message.contains(needle), "no `{needle}` in:\n{message}");
        }
    }
    Ok(())
}

/// What dockerfile-lint says about `text`, which it must refuse.
fn lint_failure(text: &str) -> anyhow::Result<String> {
    let linter = go_program::binary("dockerfile-lint")?;
    let dir = std::env::temp_dir().join(format!("dockerfile-lint-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("Dockerfile");
    std::fs::write(&file, text)?;
    let mut command = Command::new(linter);
    command.arg("-file").arg(&file);
    let result = testkit::process::output("dockerfile-lint", &mut command, LINT_TIMEOUT);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(out) => anyhow::bail!("dockerfile-lint passed this Dockerfile:\n{text}\nsaying:\n{out}"),
        Err(e) => Ok(format!("{e:#}")),
    }
}
