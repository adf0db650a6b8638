//! `cargo xtask docs`: regenerates `docs/METRICS.md`, the checked-in reference of every metric
//! (OTel name -> Prometheus series, type, unit, labels), from the catalogue in `otel`.

use anyhow::Context;

pub fn command() -> anyhow::Result<()> {
    let path = testkit::repo_root().join("docs").join("METRICS.md");
    let markdown = otel::catalogue::markdown();
    let before = std::fs::read_to_string(&path).ok();
    if before.as_deref() == Some(markdown.as_str()) {
        eprintln!("{}: up to date", path.display());
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, &markdown).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "{}: written ({} lines); review and commit it",
        path.display(),
        markdown.lines().count()
    );
    Ok(())
}
