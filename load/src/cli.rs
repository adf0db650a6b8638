//! The `load` subcommand: flags → [`Options`], a runtime for [`run`], the summary on stdout, the
//! JSON file, and the exit status (non-zero on any 5xx unless `--allow-5xx`, on any transport
//! error, and on a bad request the API did not refuse).

use super::mix::{DEFAULT_MIX, Mix};
use super::{DEFAULT_URL, Options, Stop, run};
use anyhow::Context;
use std::path::PathBuf;
use std::time::Duration;

/// Drive a mix of requests against the API and report counts and latencies.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The API's base URL (loopback only unless --allow-remote).
    #[arg(long, default_value = DEFAULT_URL)]
    url: String,
    /// Run this long, e.g. 500ms, 30s, 2m, 1h, or seconds (default 30s unless --requests).
    #[arg(long, value_parser = parse_duration, conflicts_with = "requests")]
    duration: Option<Duration>,
    /// Send this many requests (instead of a duration).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    requests: Option<u64>,
    /// Requests per second, paced open-loop; absent: as fast as --concurrency allows.
    #[arg(long)]
    rate: Option<f64>,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 16)]
    concurrency: u32,
    /// Relative weights of the request kinds (kinds left out get 0).
    #[arg(long, default_value = DEFAULT_MIX, value_parser = Mix::parse)]
    mix: Mix,
    /// Seed the graph with this many employees first (replaces the graph); 0: don't.
    #[arg(long, default_value_t = 0)]
    seed_graph: u32,
    /// Random seed of the mix (and the seeded graph); default: from the clock.
    #[arg(long)]
    seed: Option<u64>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Do not fail on 5xx answers (fault tests expect 503s).
    #[arg(long)]
    allow_5xx: bool,
    /// Allow a --url that is not a loopback address.
    #[arg(long)]
    allow_remote: bool,
    /// The API bearer token to send (better: API_TOKEN in the environment, which `ps` does not
    /// show); default: API_TOKEN, else the native stack's (target/stack/api-token).
    #[arg(long)]
    token: Option<String>,
}

/// Runs `cargo xtask load` with its parsed `args`: prints the report (and writes it as JSON if
/// asked); an error if the run saw a transport error or a 5xx (unless `--allow-5xx`). The token
/// is `--token`, else `API_TOKEN`, else what `default_token` finds (the native stack's).
pub fn command(args: Args, default_token: impl FnOnce() -> Option<String>) -> anyhow::Result<()> {
    let seed = args.seed.unwrap_or_else(clock_seed);
    let token = args
        .token
        .or_else(|| std::env::var("API_TOKEN").ok().filter(|t| !t.trim().is_empty()))
        .or_else(default_token);
    let options = Options {
        url: args.url,
        allow_remote: args.allow_remote,
        token,
        stop: match (args.requests, args.duration) {
            (Some(n), _) => Stop::Requests(n),
            (None, Some(d)) => Stop::After(d),
            (None, None) => Stop::After(Duration::from_secs(30)),
        },
        rate: args.rate,
        concurrency: args.concurrency,
        mix: args.mix,
        seed_graph: args.seed_graph,
        seed,
        progress: !args.quiet,
        stop_when: None,
    };
    if !args.quiet {
        let until = match options.stop {
            Stop::After(d) => format!("for {d:?}"),
            Stop::Requests(n) => format!("{n} requests"),
        };
        let pace = match options.rate {
            Some(rate) => format!("at {rate}/s"),
            None => "as fast as possible".to_string(),
        };
        eprintln!(
            "[load] {} {until} {pace}, concurrency {}, mix {}, seed {seed}",
            options.url, options.concurrency, options.mix
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(run(options))?;
    print!("{}", report.render());
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing the report to {}", path.display()))?;
        eprintln!("[load] report written to {}", path.display());
    }
    let problems = report.problems(args.allow_5xx);
    anyhow::ensure!(problems.is_empty(), "the load run failed:\n  {}", problems.join("\n  "));
    Ok(())
}

/// A seed that differs from run to run.
fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A duration as humantime reads it, in one word (`500ms`, `30s`, `1.5s`, `2m`, `1h`, `1h30m`),
/// or a bare number of seconds (`7`, `1.5`); above zero. humantime also reads spans apart (`2m
/// 30s`, `3 days`): this flag never took a space, and takes none.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.contains(char::is_whitespace) {
        return Err(format!("`{text}` is not one duration (no spaces: e.g. 500ms, 30s, 2m, 1h)"));
    }
    // humantime wants a unit: a bare number is seconds.
    let bare = !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.');
    let with_unit = if bare { format!("{text}s") } else { text.to_string() };
    let duration = humantime::parse_duration(&with_unit)
        .map_err(|e| format!("`{text}` is not a duration (e.g. 500ms, 30s, 2m, 1h): {e}"))?;
    if duration.is_zero() {
        return Err(format!("`{text}` must be above zero"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1min"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 60s "), Ok(Duration::from_secs(60)));
        for bad in ["", "s", "0s", "-1s", "3 days", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_and_their_defaults() {
        let cli = Cli::try_parse_from(["load"]).unwrap();
        assert_eq!(cli.args.url, DEFAULT_URL);
        assert_eq!(cli.args.concurrency, 16);
        assert_eq!(cli.args.mix, Mix::default());
        assert!(cli.args.duration.is_none() && cli.args.requests.is_none());
        let cli = Cli::try_parse_from([
            "load",
            "--requests",
            "2000",
            "--rate",
            "200",
            "--mix",
            "reads=1",
            "--quiet",
        ])
        .unwrap();
        assert_eq!(cli.args.requests, Some(2000));
        assert_eq!(cli.args.rate, Some(200.0));
        assert!(Cli::try_parse_from(["load", "--requests", "5", "--duration", "5s"]).is_err());
        assert!(Cli::try_parse_from(["load", "--mix", "writes=1"]).is_err());
        assert!(Cli::try_parse_from(["load", "--requests", "0"]).is_err());
    }
}
