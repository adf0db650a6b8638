//! Running child commands the way every xtask step needs: with a deadline, with a heartbeat while
//! they are quiet for long (Go builds print nothing for minutes), and with an error that names the
//! step when they fail or overrun.

use anyhow::Context;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where a command's output goes.
#[derive(Debug, Clone, Copy)]
pub enum Output<'a> {
    /// Straight to our stdout and stderr.
    Inherit,
    /// Line by line to our stderr, each line prefixed with `[<prefix>] ` (keeps stdout clean).
    Prefixed(&'a str),
    /// Discarded.
    Quiet,
}

/// How often a long command says it is still running.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// How often the child is checked.
const POLL: Duration = Duration::from_millis(200);

/// Runs `command` to completion; `what` names it in messages. Kills it after `timeout`.
pub fn run(
    what: &str,
    command: &mut Command,
    output: Output<'_>,
    timeout: Duration,
) -> anyhow::Result<()> {
    match output {
        Output::Inherit => command.stdout(Stdio::inherit()).stderr(Stdio::inherit()),
        Output::Prefixed(_) => command.stdout(Stdio::piped()).stderr(Stdio::piped()),
        Output::Quiet => command.stdout(Stdio::null()).stderr(Stdio::null()),
    };
    let mut child = command
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {what}: {command:?}"))?;
    let mut forwarders = Vec::new();
    if let Output::Prefixed(prefix) = output {
        if let Some(out) = child.stdout.take() {
            forwarders.push(forward(out, prefix.to_string()));
        }
        if let Some(err) = child.stderr.take() {
            forwarders.push(forward(err, prefix.to_string()));
        }
    }
    let start = Instant::now();
    let mut next_heartbeat = start + HEARTBEAT;
    let status = loop {
        if let Some(status) = child.try_wait().with_context(|| format!("waiting for {what}"))? {
            break status;
        }
        let now = Instant::now();
        if now >= start + timeout {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("gave up after {} waiting for {what} (killed it)", human(timeout));
        }
        if now >= next_heartbeat && !matches!(output, Output::Quiet) {
            eprintln!("[{what}] still running ({} so far)", human(now - start));
            next_heartbeat = now + HEARTBEAT;
        }
        std::thread::sleep(POLL);
    };
    for forwarder in forwarders {
        let _ = forwarder.join();
    }
    anyhow::ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

/// Whether `program args…` runs and exits 0 within 30 s (e.g. a `--version` probe).
pub fn runs(program: &std::path::Path, args: &[&str]) -> bool {
    let mut command = Command::new(program);
    command.args(args);
    let what = format!("{} {}", program.display(), args.join(" "));
    run(&what, &mut command, Output::Quiet, Duration::from_secs(30)).is_ok()
}

/// The stdout of `program args…` if it exits 0 within 30 s (stderr is discarded).
pub fn capture(program: &std::path::Path, args: &[&str]) -> anyhow::Result<String> {
    let what = format!("{} {}", program.display(), args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let mut stdout = child.stdout.take().context("no stdout pipe")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().with_context(|| format!("waiting for {what}"))? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("gave up after 30s waiting for {what} (killed it)");
        }
        std::thread::sleep(POLL);
    };
    let text = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader of {what} panicked"))?
        .with_context(|| format!("reading the output of {what}"))?;
    anyhow::ensure!(status.success(), "{what} failed ({status})");
    Ok(text)
}

fn forward(stream: impl Read + Send + 'static, prefix: String) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(line) => eprintln!("[{prefix}] {line}"),
                Err(_) => break,
            }
        }
    })
}

/// `4.2s`, `3m05s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_and_overrun_name_the_command() {
        let err = run("false", &mut Command::new("false"), Output::Quiet, Duration::from_secs(5))
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("false failed (exit status: 1)"));
        let mut sleep = Command::new("sleep");
        sleep.arg("30");
        let started = Instant::now();
        let err = run("sleep", &mut sleep, Output::Quiet, Duration::from_millis(300))
            .err()
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("gave up after 0.3s waiting for sleep (killed it)"));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn prefixed_output_is_forwarded_and_success_is_ok() {
        let mut sh = Command::new("sh");
        sh.args(["-c", "echo hello; echo world >&2"]);
        assert!(run("sh", &mut sh, Output::Prefixed("sh"), Duration::from_secs(5)).is_ok());
        assert!(runs(std::path::Path::new("true"), &[]));
        let echoed = capture(std::path::Path::new("echo"), &["captured"]).ok();
        assert_eq!(echoed.as_deref(), Some("captured\n"));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(4200)), "4.2s");
        assert_eq!(human(Duration::from_secs(185)), "3m05s");
    }
}
