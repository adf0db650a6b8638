//! Pid files of the native stack, and stopping by them. A pid counts as ours only while
//! `/proc/<pid>` is alive and its command line starts with the service's binary, so a stale pid
//! file whose number was reused never gets someone else's process killed. (Redis rewrites its
//! command line into one title, `<binary> 127.0.0.1:6379`; its first word counts then.)

use super::service::Native;
use anyhow::Context;
use std::path::Path;
use std::time::Duration;
use testkit::process::{signal, signal_group};

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
    // A process that exited meanwhile is fine: `alive` decides.
    let send = |signal_name| match signal(pid, signal_name) {
        Err(e) if alive(pid) => Err(e),
        _ => Ok(()),
    };
    send(signal_name)?;
    let gone = |grace| {
        testkit::wait_for(&format!("{name} (pid {pid}) to exit"), grace, || {
            Ok((!alive(pid)).then_some(()))
        })
    };
    if gone(grace).is_ok() {
        return Ok(());
    }
    eprintln!("{name}: still running {}s after SIG{signal_name}, sending SIGKILL", grace.as_secs());
    send("KILL")?;
    gone(KILL_GRACE)
}

/// `signal_name` to `pid`, its process group and every descendant. Postgres' backends call
/// `setsid`, so its group holds the postmaster alone: a backend keeps serving its open connection
/// unless it is signalled itself. The parent goes first (a stopped postmaster forks no new
/// backend), except for SIGCONT, where the children go first.
pub fn signal_tree(pid: u32, signal_name: &str) -> anyhow::Result<()> {
    // Found before the root is signalled: a killed root's children are reparented.
    let descendants = descendants(pid);
    let children = || {
        for &child in &descendants {
            // A descendant may have exited meanwhile.
            let _ = signal(child, signal_name);
        }
    };
    if signal_name == "CONT" {
        children();
    }
    match signal_group(pid, signal_name) {
        // The root must take it.
        Err(e) if alive(pid) => return Err(e),
        _ => {}
    }
    if signal_name != "CONT" {
        children();
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// The state letter of `/proc/<pid>/stat` (`S` sleeping, `T` stopped, …).
    fn state(pid: u32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    }

    #[test]
    fn a_tree_is_stopped_continued_and_killed_with_a_child_that_left_the_group()
    -> anyhow::Result<()> {
        // The child leaves the group (`setsid`, as Postgres' backends do): only the tree walk
        // reaches it.
        let mut command = Command::new("sh");
        command.args(["-c", "setsid sleep 60 & wait"]).process_group(0);
        let mut root = command.spawn()?;
        let pid = root.id();
        let child = testkit::wait_for("the child", Duration::from_secs(5), || {
            Ok(descendants(pid).into_iter().find(|&c| state(c).is_some_and(|s| s != 'Z')))
        })?;
        signal_tree(pid, "STOP")?;
        let stopped = |p| {
            testkit::wait_for("stopped", Duration::from_secs(5), || {
                Ok((state(p) == Some('T')).then_some(()))
            })
        };
        stopped(pid)?;
        stopped(child)?;
        signal_tree(pid, "CONT")?;
        testkit::wait_for("running again", Duration::from_secs(5), || {
            Ok([pid, child].iter().all(|&p| state(p) != Some('T')).then_some(()))
        })?;
        signal_tree(pid, "KILL")?;
        root.wait()?;
        testkit::wait_for("the child gone", Duration::from_secs(5), || {
            Ok(state(child).is_none_or(|s| s == 'Z').then_some(()))
        })?;
        assert!(signal_tree(pid, "TERM").is_ok(), "a root that is gone is no error");
        Ok(())
    }
}
