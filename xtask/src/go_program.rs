//! The small Go programs of the tests (`xtask/compose-check`, `xtask/dockerfile-lint`): each is
//! built with `go build` once per version of its sources into the tool cache
//! (`<cache>/<name>-<hash>/<name>`, see `testkit::tools::cache_dir`), its modules from the Go
//! module proxy at the versions its go.mod and go.sum pin; Go's own build cache is shared with
//! `cargo xtask tools`. Needs `go` on PATH, like `cargo xtask tools`.

use anyhow::Context;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// How long a build may take (a first build downloads the program's modules).
const BUILD_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// The binary of the Go program in `xtask/<name>`, built with `go build` unless this version of
/// its sources (go.mod, go.sum and its `.go` files) already was.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let source = testkit::repo_root().join("xtask").join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&source)
        .with_context(|| format!("listing {}", source.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| {
        p.extension().is_some_and(|e| e == "go")
            || p.file_name().is_some_and(|n| n == "go.mod" || n == "go.sum")
    });
    files.sort();
    anyhow::ensure!(files.iter().any(|p| p.ends_with("go.mod")), "{}: no go.mod", source.display());
    let mut hash = Fnv::default();
    for path in &files {
        hash.write(path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        hash.write(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    }
    let dir = testkit::tools::cache_dir()?.join(format!("{name}-{:016x}", hash.0));
    let binary = dir.join(name);
    if binary.is_file() {
        return Ok(binary);
    }
    let go = testkit::tools::find_on_path("go")
        .with_context(|| format!("`go` not found on PATH: the tests build xtask/{name} with it"))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Built under a private name and renamed: concurrent builds never see half a binary.
    let partial = dir.join(format!("{name}.{}.partial", std::process::id()));
    let mut command = Command::new(go);
    command
        .args(["build", "-trimpath", "-buildvcs=false", "-o"])
        .arg(&partial)
        .arg(".")
        .current_dir(&source);
    testkit::process::output(&format!("go build (xtask/{name})"), &mut command, BUILD_TIMEOUT)?;
    std::fs::rename(&partial, &binary)
        .with_context(|| format!("moving {} into place", partial.display()))?;
    Ok(binary)
}

/// 64-bit FNV-1a: enough to tell versions of a program's sources apart.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
