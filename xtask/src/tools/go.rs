//! `go install` into a chosen directory, the one way the Go tools get built: Go's own module and
//! build caches (`~/go/pkg/mod`, `~/.cache/go-build`) make a second build cheap.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::process::{self, Output, run};
use testkit::tools;

/// Bound on one Go build: the collector and Prometheus take minutes on two cores.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(90 * 60);

/// The `go` binary, or an error saying Go is needed.
pub fn go() -> anyhow::Result<std::path::PathBuf> {
    testkit::tools::find_on_path("go").ok_or_else(|| {
        anyhow::anyhow!("`go` not found on PATH: the native tools are built from Go modules; install Go (https://go.dev/dl/)")
    })
}

/// The `commands` of one tool at `version` (each a name and the path it must be at), each checked
/// by running it with `version_flag`. When one is missing or does not run, `build` (which says
/// what it builds, and `go install`s it) runs first, and then each must be there; how long the
/// build took is printed (CI's time goes there on a cold cache).
pub fn ensure<const N: usize>(
    version: &str,
    commands: [(&str, PathBuf); N],
    version_flag: &str,
    build: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<[PathBuf; N]> {
    let runs = |path: &Path| path.is_file() && process::runs(path, &[version_flag]);
    if commands.iter().all(|(_, path)| runs(path)) {
        for (name, path) in &commands {
            eprintln!("{name} {version}: ok ({})", path.display());
        }
    } else {
        let start = Instant::now();
        build()?;
        for (name, path) in &commands {
            tools::require(path, name)?;
            eprintln!("{name} {version}: built in {:.0?} ({})", start.elapsed(), path.display());
        }
    }
    Ok(commands.map(|(_, path)| path))
}

/// `GOBIN=<gobin> go install <packages…>`, output streamed with `[<label>]` in front.
pub fn install(label: &str, gobin: &Path, packages: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(gobin)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", gobin.display()))?;
    let mut command = Command::new(go()?);
    command.arg("install").args(packages).env("GOBIN", gobin);
    eprintln!("[{label}] GOBIN={} go install {}", gobin.display(), packages.join(" "));
    run(label, &mut command, Output::Prefixed(label), BUILD_TIMEOUT)
}
