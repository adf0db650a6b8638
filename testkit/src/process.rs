//! Child processes for tests and tools. Long-running ones ([`Daemon`]): output goes to a log file
//! (so a failure can show it), and the process is killed and reaped when its owner is dropped, even
//! when a test panics. Short ones run to completion under a deadline, through one wait loop:
//! [`output`] captures their output for the caller and the error message, [`run`] shows it (or
//! not, [`Output`]) with a heartbeat while they are quiet for long. Signals are sent with `rustix`
//! ([`signal`], [`signal_group`]); the effective user id comes from `/proc`.

use anyhow::Context;
use rustix::process::{Pid, Signal};
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a child is checked while waiting for it.
const POLL: Duration = Duration::from_millis(50);

/// How often a long command run with output says it is still running.
const HEARTBEAT: Duration = Duration::from_secs(30);

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

    /// The pid it was spawned with (the number stays after the process exited: see
    /// [`Daemon::exited`]).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Where the output goes.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the process wrote so far (or why it cannot be read).
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// Waits up to `timeout` for `ready` to answer `Ok` (`what` names what is awaited, for the
    /// timeout's message). Fails with the log if the process exits first or is not ready in time.
    pub fn wait_ready(
        &mut self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        enum Startup {
            Ready,
            Exited(ExitStatus),
        }
        let startup = crate::wait_for(what, timeout, || {
            if let Some(status) = self.exited()? {
                return Ok(Some(Startup::Exited(status)));
            }
            ready().map(|()| Some(Startup::Ready))
        });
        let failure = match startup {
            Ok(Startup::Ready) => return Ok(()),
            Ok(Startup::Exited(status)) => format!("{} exited early ({status})", self.name),
            Err(e) => format!("{e:#}"),
        };
        anyhow::bail!("{failure}\n{} log ({}):\n{}", self.name, self.log_path.display(), self.log())
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
        if wait(&mut self.child, &self.name, grace, false)?.is_none() {
            eprintln!(
                "testkit: {} (pid {}) still ran {:?} after SIG{signal_name}; killed it",
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

/// Everything in the log file at `path` (or why it cannot be read).
fn read_log(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// A server on a fixed loopback port that a test may stop and start again there: at most one
/// [`Daemon`] at a time, all of them appending to one log.
#[derive(Debug)]
pub struct Restartable {
    name: &'static str,
    port: u16,
    log_path: PathBuf,
    daemon: Option<Daemon>,
}

impl Restartable {
    /// A server named `name` (in messages) on `127.0.0.1:port`, logging to `log_path`; not
    /// started yet.
    pub fn new(name: &'static str, port: u16, log_path: PathBuf) -> Restartable {
        Restartable { name, port, log_path, daemon: None }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id, `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Daemon::pid)
    }

    /// Everything the server logged so far, over all its starts.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// Spawns `command` and waits up to `timeout` for `ready` ([`Daemon::wait_ready`]; `what`
    /// names what is awaited). Fails if the server runs already.
    pub fn start(
        &mut self,
        command: Command,
        what: &str,
        timeout: Duration,
        ready: impl FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if let Some(daemon) = self.daemon.as_mut() {
            anyhow::ensure!(
                daemon.exited()?.is_some(),
                "{} on port {} runs already (pid {}); stop it first",
                self.name,
                self.port,
                daemon.pid()
            );
        }
        self.daemon = None;
        let daemon = self.daemon.insert(Daemon::spawn(self.name, command, &self.log_path)?);
        daemon.wait_ready(what, timeout, ready)
    }

    /// Sends `signal_name`, gives the server `timeout` to exit ([`Daemon::terminate`]), then waits
    /// until its port refuses connections. A stopped server stays stopped.
    pub fn stop(&mut self, signal_name: &str, timeout: Duration) -> anyhow::Result<()> {
        if let Some(mut daemon) = self.daemon.take() {
            daemon.terminate(signal_name, timeout)?;
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        crate::wait_for(&format!("{} to close {addr}", self.name), timeout, || {
            Ok(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err().then_some(()))
        })
    }

    /// The running server's process, taken out (to shut it down its own way on drop).
    pub fn take(&mut self) -> Option<Daemon> {
        self.daemon.take()
    }
}

/// Sends the signal named `signal_name` (`TERM`, `INT`, `QUIT`, `KILL`, `STOP`, `CONT`, `HUP`,
/// `USR1`, `USR2`) to process `pid`. An error if the process does not exist (any more).
pub fn signal(pid: u32, signal_name: &str) -> anyhow::Result<()> {
    let sig = parse_signal(signal_name)?;
    rustix::process::kill_process(to_pid(pid)?, sig)
        .with_context(|| format!("sending SIG{signal_name} to process {pid}"))
}

/// Sends the signal named `signal_name` (as for [`signal`]) to every process of the process group
/// `pgid` (a group's id is its leader's pid).
pub fn signal_group(pgid: u32, signal_name: &str) -> anyhow::Result<()> {
    let sig = parse_signal(signal_name)?;
    rustix::process::kill_process_group(to_pid(pgid)?, sig)
        .with_context(|| format!("sending SIG{signal_name} to process group {pgid}"))
}

fn parse_signal(name: &str) -> anyhow::Result<Signal> {
    Ok(match name {
        "TERM" => Signal::TERM,
        "INT" => Signal::INT,
        "QUIT" => Signal::QUIT,
        "KILL" => Signal::KILL,
        "STOP" => Signal::STOP,
        "CONT" => Signal::CONT,
        "HUP" => Signal::HUP,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        _ => anyhow::bail!("unknown signal name `{name}` (TERM, INT, QUIT, KILL, STOP, CONT, …)"),
    })
}

/// `pid` as the kernel's type: 0 and numbers above `i32::MAX` are no process.
fn to_pid(pid: u32) -> anyhow::Result<Pid> {
    i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| anyhow::anyhow!("{pid} is not a process id"))
}

/// Where the output of a command run by [`run`] goes.
#[derive(Debug, Clone, Copy)]
pub enum Output<'a> {
    /// Straight to our stdout and stderr.
    Inherit,
    /// Line by line to our stderr, each line prefixed with `[<prefix>] ` (keeps stdout clean).
    Prefixed(&'a str),
    /// Discarded.
    Quiet,
}

/// Runs `command` to completion (stdin closed), its output going where `output` says; `what`
/// names it in messages. Unless [`Output::Quiet`], says every 30 s that it still runs (Go builds
/// print nothing for minutes). A non-zero exit is an error; after `timeout` the command is killed
/// and that is an error too.
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
        let streams = [reader(child.stdout.take()), reader(child.stderr.take())];
        forwarders.extend(streams.into_iter().flatten().map(|s| forward(s, prefix.to_string())));
    }
    let heartbeat = !matches!(output, Output::Quiet);
    let status = wait(&mut child, what, timeout, heartbeat)?;
    for forwarder in forwarders {
        let _ = forwarder.join();
    }
    match status {
        Some(status) => anyhow::ensure!(status.success(), "{what} failed ({status})"),
        None => anyhow::bail!("gave up after {} waiting for {what} (killed it)", human(timeout)),
    }
    Ok(())
}

/// Whether `program args…` runs and exits 0 within 30 s (e.g. a `--version` probe).
pub fn runs(program: &Path, args: &[&str]) -> bool {
    let mut command = Command::new(program);
    command.args(args);
    let what = format!("{} {}", program.display(), args.join(" "));
    run(&what, &mut command, Output::Quiet, Duration::from_secs(30)).is_ok()
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
    let stdout = drain(reader(child.stdout.take()));
    let stderr = drain(reader(child.stderr.take()));
    let status = wait(&mut child, what, timeout, false)?;
    let join = |handle: JoinHandle<String>| {
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

/// The one wait of this module: polls `child` until it exits (`Some(status)`) or `timeout` has
/// passed, when it is killed and reaped (`None`). With `heartbeat`, says on stderr every 30 s that
/// `what` still runs.
fn wait(
    child: &mut Child,
    what: &str,
    timeout: Duration,
    heartbeat: bool,
) -> anyhow::Result<Option<ExitStatus>> {
    let start = Instant::now();
    let mut next_heartbeat = start + HEARTBEAT;
    loop {
        if let Some(status) = child.try_wait().with_context(|| format!("waiting for {what}"))? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= start + timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        if heartbeat && now >= next_heartbeat {
            eprintln!("[{what}] still running ({} so far)", human(now - start));
            next_heartbeat = now + HEARTBEAT;
        }
        std::thread::sleep(POLL);
    }
}

/// A child's pipe, boxed so stdout and stderr have one type.
fn reader(stream: Option<impl Read + Send + 'static>) -> Option<Box<dyn Read + Send>> {
    stream.map(|s| Box::new(s) as Box<dyn Read + Send>)
}

/// Reads `stream` to its end in a thread; the text, lossily decoded.
fn drain(stream: Option<Box<dyn Read + Send>>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut stream) = stream {
            let _ = stream.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Copies `stream` line by line to our stderr, each line prefixed with `[<prefix>] `.
fn forward(stream: Box<dyn Read + Send>, prefix: String) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(line) => eprintln!("[{prefix}] {line}"),
                Err(_) => break,
            }
        }
    })
}

/// A duration for people: `4.2s`, `3m05s`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", secs / 60, secs % 60)
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
    fn run_failure_and_overrun_name_the_command() {
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
        assert!(runs(Path::new("true"), &[]));
        let mut echo = Command::new("echo");
        echo.arg("captured");
        let echoed = output("echo captured", &mut echo, Duration::from_secs(30)).ok();
        assert_eq!(echoed.as_deref(), Some("captured\n"));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(4200)), "4.2s");
        assert_eq!(human(Duration::from_secs(185)), "3m05s");
    }

    #[test]
    fn signals_go_by_name_to_a_process_and_its_group() -> anyhow::Result<()> {
        let mut command = Command::new("sleep");
        command.arg("60");
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn()?;
        let pid = child.id();
        signal(pid, "STOP")?;
        signal(pid, "CONT")?;
        assert!(signal(pid, "NOPE").is_err_and(|e| e.to_string().contains("unknown signal")));
        signal_group(pid, "KILL")?;
        let status = child.wait()?;
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
        assert!(signal(pid, "TERM").is_err(), "the process is gone");
        assert!(signal(0, "TERM").is_err());
        Ok(())
    }

    #[test]
    fn effective_uid_is_the_second_uid_field() -> anyhow::Result<()> {
        assert_eq!(parse_effective_uid("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1\n")?, 0);
        assert!(parse_effective_uid("Name:\tx\n").is_err());
        effective_uid()?;
        Ok(())
    }
}
