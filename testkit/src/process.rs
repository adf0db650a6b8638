//! Child processes for tests and tools. Long-running ones ([`Daemon`]): output goes to a log file
//! (so a failure can show it), and the process is killed and reaped when its owner is dropped, even
//! when a test panics. Short ones ([`output`]): run to completion under a deadline, their output
//! captured for the error message. Signals go through the `kill` command and the effective user id
//! comes from `/proc`, because this workspace forbids `unsafe` (no libc calls).

use anyhow::Context;
use std::fs::OpenOptions;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often a child is checked while waiting for it.
const POLL: Duration = Duration::from_millis(50);

/// A spawned server process whose stdout and stderr are appended to a log file.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Child,
    log_path: PathBuf,
    stopped: bool,
}

impl Daemon {
    /// Spawns `command` (stdin closed, stdout and stderr appended to `log_path`). `name` is used in
    /// messages.
    pub fn spawn(name: &str, mut command: Command, log_path: &Path) -> anyhow::Result<Daemon> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("opening the {name} log {}", log_path.display()))?;
        let err_log = log.try_clone().context("duplicating the log file handle")?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .with_context(|| format!("starting {name}: {command:?}"))?;
        Ok(Daemon {
            name: name.to_string(),
            child,
            log_path: log_path.to_path_buf(),
            stopped: false,
        })
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the output goes.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the process wrote so far (or why it cannot be read).
    pub fn log(&self) -> String {
        match std::fs::read(&self.log_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("<cannot read {}: {e}>", self.log_path.display()),
        }
    }

    /// `Some(status)` once the process has exited, `None` while it runs.
    pub fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        self.child.try_wait().with_context(|| format!("checking whether {} runs", self.name))
    }

    /// Sends `signal` (a name such as `TERM`, `INT`, `QUIT`), waits up to `grace` for the process
    /// to exit, then kills it (SIGKILL) if it has not, and reaps it. Returns how it ended (`None` if
    /// it had already been stopped). Idempotent, like [`Daemon::stop`].
    pub fn terminate(
        &mut self,
        signal_name: &str,
        grace: Duration,
    ) -> anyhow::Result<Option<ExitStatus>> {
        if self.stopped {
            return Ok(None);
        }
        if self.exited()?.is_none() {
            // An exit between the check and the signal is fine: the wait below sees it.
            match signal(self.pid(), signal_name) {
                Err(e) if self.exited()?.is_none() => return Err(e),
                _ => {}
            }
        }
        let deadline = Instant::now() + grace;
        while self.exited()?.is_none() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        if self.exited()?.is_none() {
            eprintln!(
                "testkit: {} (pid {}) still runs {:?} after SIG{signal_name}; killing it",
                self.name,
                self.pid(),
                grace
            );
        }
        self.stop();
        Ok(self.child.try_wait().ok().flatten())
    }

    /// Kills the process (SIGKILL) and reaps it. Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `signal_name` (`TERM`, `INT`, `QUIT`, `KILL`, …) to `pid` with the `kill` command.
pub fn signal(pid: u32, signal_name: &str) -> anyhow::Result<()> {
    let mut kill = Command::new("kill");
    kill.arg(format!("-{signal_name}")).arg(pid.to_string());
    output(&format!("kill -{signal_name} {pid}"), &mut kill, Duration::from_secs(10)).map(drop)
}

/// Runs `command` to completion (stdin closed) and returns its stdout. `what` names it in errors.
/// A non-zero exit is an error carrying stdout and stderr; after `timeout` the command is killed
/// and that is an error too.
pub fn output(what: &str, command: &mut Command, timeout: Duration) -> anyhow::Result<String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}: {command:?}"))?;
    // Both pipes are drained concurrently, so a chatty command never blocks on a full pipe.
    let drain = |stream: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut stream) = stream {
                let _ = stream.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().with_context(|| format!("waiting for {what}"))? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(POLL);
    };
    let join = |handle: std::thread::JoinHandle<String>| {
        handle.join().unwrap_or_else(|_| String::from("<the reader thread panicked>"))
    };
    let (stdout, stderr) = (join(stdout), join(stderr));
    match status {
        Some(status) if status.success() => Ok(stdout),
        Some(status) => anyhow::bail!(
            "{what} failed ({status})\nstdout:\n{}\nstderr:\n{}",
            stdout.trim_end(),
            stderr.trim_end()
        ),
        None => anyhow::bail!(
            "gave up after {timeout:?} waiting for {what} (killed it)\nstderr:\n{}",
            stderr.trim_end()
        ),
    }
}

/// The effective user id of this process, from the `Uid:` line of `/proc/self/status`.
pub fn effective_uid() -> anyhow::Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("reading /proc/self/status to learn the effective user id")?;
    parse_effective_uid(&status)
}

/// The second field of the `Uid:` line (real, effective, saved, filesystem).
fn parse_effective_uid(status: &str) -> anyhow::Result<u32> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .ok_or_else(|| anyhow::anyhow!("no Uid: line in /proc/self/status"))?;
    let effective = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("Uid: line without an effective id: `{line}`"))?;
    effective.parse().with_context(|| format!("effective user id `{effective}` in `{line}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn output_lands_in_the_log_and_drop_kills() -> anyhow::Result<()> {
        let dir = crate::scratch::ScratchDir::new("daemon-test")?;
        let log = dir.path().join("sh.log");
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; exec sleep 60"]);
        let mut daemon = Daemon::spawn("sh", command, &log)?;
        let pid = daemon.pid();
        crate::wait_for("both lines in the log", Duration::from_secs(5), || {
            let text = daemon.log();
            Ok((text.contains("out") && text.contains("err")).then_some(()))
        })?;
        assert!(daemon.exited()?.is_none());
        drop(daemon);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} survived drop");
        Ok(())
    }

    #[test]
    fn terminate_signals_then_kills_a_process_that_ignores_it() -> anyhow::Result<()> {
        let dir = crate::scratch::ScratchDir::new("daemon-terminate")?;
        let mut command = Command::new("sh");
        command.args(["-c", "exec sleep 60"]);
        let mut polite = Daemon::spawn("sleep", command, &dir.path().join("sleep.log"))?;
        let status = polite.terminate("TERM", Duration::from_secs(5))?;
        assert!(status.is_some_and(|s| !s.success()), "{status:?}");
        assert_eq!(polite.terminate("TERM", Duration::from_secs(5))?, None, "idempotent");

        let mut command = Command::new("sh");
        command.args(["-c", "trap '' TERM; echo trapped; while :; do sleep 0.1; done"]);
        let mut stubborn = Daemon::spawn("stubborn", command, &dir.path().join("stubborn.log"))?;
        crate::wait_for("the trap", Duration::from_secs(5), || {
            Ok(stubborn.log().contains("trapped").then_some(()))
        })?;
        let started = Instant::now();
        stubborn.terminate("TERM", Duration::from_millis(300))?;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!Path::new(&format!("/proc/{}", stubborn.pid())).exists());
        Ok(())
    }

    #[test]
    fn output_returns_stdout_and_failures_carry_both_streams() {
        let mut echo = Command::new("sh");
        echo.args(["-c", "echo out; echo err >&2"]);
        assert_eq!(
            output("echo", &mut echo, Duration::from_secs(5)).ok().as_deref(),
            Some("out\n")
        );
        let mut fail = Command::new("sh");
        fail.args(["-c", "echo out; echo err >&2; exit 3"]);
        let err = output("fail", &mut fail, Duration::from_secs(5)).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("fail failed (exit status: 3)\nstdout:\nout\nstderr:\nerr")
        );
        let mut sleep = Command::new("sleep");
        sleep.arg("30");
        let err =
            output("sleep", &mut sleep, Duration::from_millis(200)).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.starts_with("gave up after 200ms waiting for sleep")));
    }

    #[test]
    fn effective_uid_is_the_second_uid_field() -> anyhow::Result<()> {
        assert_eq!(parse_effective_uid("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1\n")?, 0);
        assert!(parse_effective_uid("Name:\tx\n").is_err());
        effective_uid()?;
        Ok(())
    }
}
