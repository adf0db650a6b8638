//! The per-request cost of the HTTP metrics layer and of the API's authentication: runs criterion's
//! `http_layer` benchmark of `otel` (`otel/benches/http_layer.rs`) and `auth` of the API
//! (`services/api/benches/auth.rs`) and reads each function's mean back from criterion's
//! `<home>/<group>/<function>/new/estimates.json`. Criterion's home is set explicitly
//! (`CRITERION_HOME=<target>/criterion`, honouring `$CARGO_TARGET_DIR`), so where it writes is
//! never guessed; a result older than this run is refused.

use super::{Figures, Plan};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};
use testkit::process::{Output, run as run_command};

/// The benchmark group of `otel/benches/http_layer.rs`.
const GROUP: &str = "http_layer";

/// `(figure suffix, criterion function)`, as the bench names them.
const FUNCTIONS: [(&str, &str); 4] = [
    ("none", "no_layer"),
    ("otel_sdk", "otel_layer_sdk"),
    ("otel_noop", "otel_layer_noop"),
    ("peer", "peer_instrumentation_tower"),
];

/// Compiling the bench (release, first time: every dependency) and running four functions.
const TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// Runs the benchmark and adds `http_layer_ns_per_request_*`, `http_layer_overhead_ns` (ours
/// with the SDK minus no layer) and `http_layer_peer_overhead_ns` (the peer minus no layer).
pub fn run(plan: Plan, figures: &mut Figures) -> anyhow::Result<()> {
    let functions: Vec<&str> = FUNCTIONS.iter().map(|(_, f)| *f).collect();
    let ns = criterion_means(plan, "otel", GROUP, &functions)?;
    for ((suffix, _), mean) in FUNCTIONS.iter().zip(&ns) {
        figures.add(&format!("http_layer_ns_per_request_{suffix}"), format!("{mean:.1}"));
    }
    figures.add("http_layer_overhead_ns", format!("{:.1}", ns[1] - ns[0]));
    figures.add("http_layer_peer_overhead_ns", format!("{:.1}", ns[3] - ns[0]));
    Ok(())
}

/// The API's authentication benchmark (`services/api/benches/auth.rs`): adds
/// `auth_ns_per_request_none` (the bare route), `auth_ns_per_request_checked` (behind the
/// authentication middleware and the per-token rate limit), `auth_overhead_ns` (their difference)
/// and `auth_verify_ns` (the token check alone).
pub fn auth(plan: Plan, figures: &mut Figures) -> anyhow::Result<()> {
    let ns =
        criterion_means(plan, "api", "auth", &["no_auth", "auth_and_rate_limit", "verify_token"])?;
    figures.add("auth_ns_per_request_none", format!("{:.1}", ns[0]));
    figures.add("auth_ns_per_request_checked", format!("{:.1}", ns[1]));
    figures.add("auth_overhead_ns", format!("{:.1}", ns[1] - ns[0]));
    figures.add("auth_verify_ns", format!("{:.1}", ns[2]));
    Ok(())
}

/// Runs criterion's benchmark `bench` of `package` (one group, `bench` too) and returns each of
/// `functions`' mean, in nanoseconds, written by this run.
fn criterion_means(
    plan: Plan,
    package: &str,
    bench: &str,
    functions: &[&str],
) -> anyhow::Result<Vec<f64>> {
    let home = super::target_dir().join("criterion");
    let cargo = std::env::var_os("CARGO").filter(|c| !c.is_empty()).unwrap_or("cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["bench", "-p", package, "--bench", bench, "--"])
        .args(plan.criterion_args())
        .env("CRITERION_HOME", &home)
        .current_dir(testkit::repo_root());
    let what =
        format!("cargo bench -p {package} --bench {bench} -- {}", plan.criterion_args().join(" "));
    eprintln!("[bench] {bench}: {what}");
    let started = SystemTime::now();
    run_command(&what, &mut command, Output::Prefixed(bench), TIMEOUT)?;
    functions.iter().map(|f| read_mean(&estimates_path(&home, bench, f), started)).collect()
}

fn estimates_path(home: &Path, group: &str, function: &str) -> PathBuf {
    home.join(group).join(function).join("new").join("estimates.json")
}

/// `mean.point_estimate` (ns) of an `estimates.json` written after `not_before`.
fn read_mean(path: &Path, not_before: SystemTime) -> anyhow::Result<f64> {
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("criterion wrote no {}", path.display()))?;
    anyhow::ensure!(
        modified >= not_before,
        "{} is older than this run: the benchmark did not measure it",
        path.display()
    );
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_mean(&text).with_context(|| format!("in {}", path.display()))
}

fn parse_mean(text: &str) -> anyhow::Result<f64> {
    let json: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    json["mean"]["point_estimate"]
        .as_f64()
        .filter(|v| v.is_finite() && *v > 0.0)
        .context("no positive mean.point_estimate")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_is_read_from_criterion_estimates() {
        let text = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,
            "lower_bound":1200.0,"upper_bound":1300.0},"point_estimate":1250.5,
            "standard_error":3.0},"median":{"point_estimate":1240.0}}"#;
        assert_eq!(parse_mean(text).ok(), Some(1250.5));
        assert!(parse_mean(r#"{"median":{"point_estimate":1.0}}"#).is_err());
        assert!(parse_mean("nope").is_err());
    }

    #[test]
    fn estimates_live_under_group_and_function() {
        let path = estimates_path(Path::new("/t/criterion"), GROUP, "otel_layer_sdk");
        assert_eq!(path, Path::new("/t/criterion/http_layer/otel_layer_sdk/new/estimates.json"));
    }
}
