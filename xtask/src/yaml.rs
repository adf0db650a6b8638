//! Reading the repository's YAML files (configs, rules, test cases), for the `cargo xtask test`
//! steps and xtask's tests alike.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// The YAML document in the file at `path`.
pub fn read(path: &Path) -> anyhow::Result<serde_norway::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_norway::from_str(&text).with_context(|| format!("{} is not YAML", path.display()))
}

/// The `*.yaml`/`*.yml` files directly in `dir`, sorted; an error if there are none (a step that
/// checks nothing must not pass).
pub fn files_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    files.retain(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no *.yaml file in {}", dir.display());
    Ok(files)
}
