//! Long-running child processes for tests: output goes to a log file (so a failure can show it),
//! and the process is killed and reaped when its owner is dropped, even when a test panics.

use anyhow::Context;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

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
}
