//! Postgres and Redis come from the OS packages, not from the cache: this finds them where Debian
//! puts them, and says which packages to install when they are missing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The install command printed whenever a system tool is missing.
pub const INSTALL_HINT: &str = "apt-get install postgresql redis-server";

/// Where Debian's postgresql packages put their versioned binaries.
const POSTGRES_LIB: &str = "/usr/lib/postgresql";

/// The binaries a native Postgres needs, all in one directory.
const POSTGRES_BINARIES: [&str; 3] = ["pg_ctl", "initdb", "postgres"];

/// The directory holding `pg_ctl`, `initdb` and `postgres`: the newest
/// `/usr/lib/postgresql/<major>/bin`, else the directory of a `pg_ctl` on `PATH`.
pub fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    let complete = |dir: &Path| POSTGRES_BINARIES.iter().all(|b| is_executable(&dir.join(b)));
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir(POSTGRES_LIB)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, entry.path().join("bin")))
        })
        .filter(|(_, dir)| complete(dir))
        .collect();
    versioned.sort();
    if let Some((_, dir)) = versioned.pop() {
        return Ok(dir);
    }
    if let Some(pg_ctl) = find_on_path("pg_ctl") {
        let resolved = std::fs::canonicalize(&pg_ctl).unwrap_or(pg_ctl);
        if let Some(dir) = resolved.parent().filter(|d| complete(d)) {
            return Ok(dir.to_path_buf());
        }
    }
    anyhow::bail!(
        "PostgreSQL server binaries ({}) not found under {POSTGRES_LIB}/<version>/bin or on PATH: \
         {INSTALL_HINT}",
        POSTGRES_BINARIES.join(", ")
    )
}

/// The `redis-server` binary on `PATH`.
pub fn redis_server() -> anyhow::Result<PathBuf> {
    redis_server_in(&std::env::var_os("PATH").unwrap_or_default())
}

/// [`redis_server`] looked up in the directories of `path` (a `PATH`-style list).
pub fn redis_server_in(path: &std::ffi::OsStr) -> anyhow::Result<PathBuf> {
    find_in("redis-server", path)
        .ok_or_else(|| anyhow::anyhow!("redis-server not found on PATH: {INSTALL_HINT}"))
}

/// The first executable file called `name` in the directories of `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    find_in(name, &std::env::var_os("PATH")?)
}

fn find_in(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_on_path_and_not_nonsense() {
        assert!(find_on_path("sh").is_some_and(|p| p.is_absolute()));
        assert_eq!(find_on_path("no-such-tool-anywhere-42"), None);
    }
}
