//! Pid files of the native stack, and stopping by them. A pid counts as ours only while
//! `/proc/<pid>` is alive and its command line starts with the service's binary, so a stale pid
//! file whose number was reused never gets someone else's process killed. (Redis rewrites its
//! command line into one title, `<binary> 127.0.0.1:6379`; its first word counts then.)

use super::service::Native;
use crate::run::{Output, run};
use anyhow::Context;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long SIGKILL may take.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Records `pid` as the running process of `native`.
pub fn write(native: &Native, pid: u32) -> anyhow::Result<()> {
    std::fs::write(&native.pid_path, format!("{pid}\n"))
        .with_context(|| format!("writing {}", native.pid_path.display()))
}

/// Removes the pid file, if any.
pub fn remove(native: &Native) {
    let _ = std::fs::remove_file(&native.pid_path);
}

/// The pid of `native` if its pid file names a live process running its binary.
pub fn running(native: &Native) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(&native.pid_path).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let argv0 = std::str::from_utf8(cmdline.split(|&b| b == 0).next()?).ok()?;
    let ours = |program: &str| Path::new(program) == native.binary;
    let retitled = argv0.split_once(' ').is_some_and(|(program, _)| ours(program));
    (alive(pid) && (ours(argv0) || retitled)).then_some(pid)
}

/// Whether `pid` exists and is not a zombie (a reaped-later child of an init that may never reap).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Format: `pid (comm) state …`; comm may contain spaces and parentheses.
        Ok(stat) => {
            stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
        }
        Err(_) => false,
    }
}

/// `signal_name` (TERM for most services, INT for Postgres's fast shutdown), wait up to `grace`
/// (the service's, see `Native::stop_grace`), then SIGKILL and wait up to 5 s more.
pub fn terminate(
    pid: u32,
    name: impl std::fmt::Display,
    signal_name: &str,
    grace: Duration,
) -> anyhow::Result<()> {
    signal(signal_name, pid)?;
    let gone = |grace| {
        testkit::wait_for(&format!("{name} (pid {pid}) to exit"), grace, || {
            Ok((!alive(pid)).then_some(()))
        })
    };
    if gone(grace).is_ok() {
        return Ok(());
    }
    eprintln!("{name}: still running {}s after SIG{signal_name}, sending SIGKILL", grace.as_secs());
    signal("KILL", pid)?;
    gone(KILL_GRACE)
}

/// `signal_name` to `pid`, its process group and every descendant. Postgres' backends call
/// `setsid`, so its group holds the postmaster alone: a backend keeps serving its open connection
/// unless it is signalled itself. The parent goes first (a stopped postmaster forks no new
/// backend), except for SIGCONT, where the children go first.
pub fn signal_tree(signal_name: &str, pid: u32) -> anyhow::Result<()> {
    let children: Vec<String> = descendants(pid).iter().map(u32::to_string).collect();
    let group = [format!("-{pid}")];
    let (first, second): (&[String], &[String]) =
        if signal_name == "CONT" { (&children, &group) } else { (&group, &children) };
    for targets in [first, second] {
        if targets.is_empty() {
            continue;
        }
        let mut kill = Command::new("kill");
        kill.arg(format!("-{signal_name}")).arg("--").args(targets);
        let what = format!("kill -{signal_name} -- {}", targets.join(" "));
        match run(&what, &mut kill, Output::Quiet, Duration::from_secs(10)) {
            // The root must take it; a descendant may have exited meanwhile.
            Err(e) if targets == group && alive(pid) => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Every live descendant of `pid`, parents before children, from `/proc/<pid>/stat`.
fn descendants(pid: u32) -> Vec<u32> {
    let parent_of = |p: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
        // Format: `pid (comm) state ppid …`; comm may contain spaces and parentheses.
        stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
    };
    let all: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for &p in &all {
            if parent_of(p) == Some(parent) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}

/// `kill -<signal> <pid>`: the `kill` command, since this workspace forbids `unsafe`.
fn signal(signal: &str, pid: u32) -> anyhow::Result<()> {
    let mut kill = Command::new("kill");
    kill.arg(format!("-{signal}")).arg(pid.to_string());
    let what = format!("kill -{signal} {pid}");
    match run(&what, &mut kill, Output::Quiet, Duration::from_secs(10)) {
        // A process that exited meanwhile is fine: `alive` decides.
        Err(e) if alive(pid) => Err(e),
        _ => Ok(()),
    }
}
