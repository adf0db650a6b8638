//! schemathesis at `SCHEMATHESIS_VERSION` (with Hypothesis at `HYPOTHESIS_VERSION`), the
//! OpenAPI-driven fuzzer of the API's fuzz test (services/api/tests/fuzz.rs). They are Python
//! packages, so they come from PyPI with pip into a venv in the tool cache
//! (`testkit::tools::python_dir`), made with the `python3` on PATH; a venv holding other versions
//! gets the pinned ones installed over them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use testkit::process::{self, Output, run};
use testkit::tools;

/// Bound on creating the venv and installing the packages (minutes on a slow mirror).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// The schemathesis command, installed first if the venv lacks the pinned versions.
pub fn ensure(version: &str) -> anyhow::Result<PathBuf> {
    let path = tools::schemathesis_path()?;
    if tools::python_packages_installed().is_ok() {
        eprintln!("schemathesis {version}: ok ({})", path.display());
        return Ok(path);
    }
    let venv = tools::python_dir()?;
    let packages = tools::python_packages()?;
    eprintln!("schemathesis {version}: pip install {} into {}", packages.join(" "), venv.display());
    install(&venv, &packages).map_err(|e| {
        e.context(format!("by hand: {}", tools::pip_install_commands(&venv, &packages)))
    })?;
    tools::python_packages_installed()?;
    Ok(path)
}

fn install(venv: &Path, packages: &[String]) -> anyhow::Result<()> {
    let pip = venv.join("bin").join("pip");
    if !process::runs(&pip, &["--version"]) {
        let python = tools::find_on_path("python3").ok_or_else(|| {
            anyhow::anyhow!("`python3` not found on PATH: schemathesis is installed with pip")
        })?;
        let mut command = Command::new(python);
        command.args(["-m", "venv"]).arg(venv);
        run("python3 -m venv", &mut command, Output::Prefixed("venv"), INSTALL_TIMEOUT)?;
    }
    let mut command = Command::new(&pip);
    command.args(["install", "--disable-pip-version-check", "--quiet"]).args(packages);
    run("pip install", &mut command, Output::Prefixed("pip"), INSTALL_TIMEOUT)
}
