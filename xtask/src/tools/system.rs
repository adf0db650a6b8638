//! Postgres and Redis from the OS packages. On CI (root, `CI` set) a missing one is installed with
//! apt-get; anywhere else the exact command is printed and the run fails, because installing
//! system packages is the machine owner's call.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use testkit::process::{Output, run};
use testkit::tools;

/// The Debian packages that provide them.
const PACKAGES: [&str; 2] = ["postgresql", "redis-server"];

/// Where the OS packages put Postgres and Redis.
#[derive(Debug)]
pub struct SystemTools {
    /// `pg_ctl` (with `initdb` and `postgres` in the same directory).
    pub pg_ctl: PathBuf,
    pub redis_server: PathBuf,
}

/// Finds the system tools, installing them first on CI.
pub fn ensure() -> anyhow::Result<SystemTools> {
    match find() {
        Ok(found) => return Ok(found),
        Err(missing) if on_ci_as_root() => {
            eprintln!("system tools: {missing:#}; installing {} (CI, root)", PACKAGES.join(" "));
            apt_install()?;
        }
        Err(missing) => anyhow::bail!(
            "{missing:#}\ninstall them with:\n  sudo apt-get install -y {}",
            PACKAGES.join(" ")
        ),
    }
    find()
}

fn find() -> anyhow::Result<SystemTools> {
    let pg = tools::postgres_bin_dir();
    let redis = tools::redis_server();
    match (pg, redis) {
        (Ok(dir), Ok(redis_server)) => {
            let pg_ctl = dir.join("pg_ctl");
            eprintln!("postgres: ok ({})", dir.display());
            eprintln!("redis-server: ok ({})", redis_server.display());
            Ok(SystemTools { pg_ctl, redis_server })
        }
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(a), Err(b)) => Err(anyhow::anyhow!("{a:#}; {b:#}")),
    }
}

fn on_ci_as_root() -> bool {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    ci && root
}

fn apt_install() -> anyhow::Result<()> {
    let timeout = Duration::from_secs(20 * 60);
    let apt = |args: &[&str]| {
        let mut command = Command::new("apt-get");
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run("apt-get update", &mut apt(&["update", "-q"]), Output::Prefixed("apt"), timeout)?;
    let mut install = apt(&["install", "-y", "-q", "--no-install-recommends"]);
    install.args(PACKAGES);
    run("apt-get install", &mut install, Output::Prefixed("apt"), timeout)
}
