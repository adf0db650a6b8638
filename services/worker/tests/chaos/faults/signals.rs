//! Signals sent to processes by pid, and their state watched through /proc: stopped, continued,
//! gone. Whatever this test stopped is continued when it ends, even when it fails.

use crate::util::lock;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Process ids whose parent is `pid`, from /proc.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return children };
    for entry in entries.flatten() {
        let Some(child) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some((_, parent)) = proc_stat(child)
            && parent == pid
        {
            children.push(child);
        }
    }
    children.sort_unstable();
    children
}

/// State letter and parent pid of `pid`, `None` once it is gone.
pub fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// Sends SIG`name` to every pid (those already gone are skipped), through
/// `testkit::process::signal`.
pub async fn signal(pids: &[u32], name: &str) -> anyhow::Result<()> {
    for &pid in pids {
        match testkit::process::signal(pid, name) {
            // A process that exited meanwhile is fine; any other refusal is not.
            Err(e) if is_alive(pid) && name != "CONT" => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

fn is_alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// Waits until every pid is gone (or a zombie).
pub async fn wait_gone(pids: &[u32], wait: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + wait;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|p| is_alive(*p)).collect();
        if alive.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < until,
            "processes {alive:?} survived SIGKILL for {wait:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every pid still alive is stopped (state `T`).
pub async fn wait_stopped(pids: &[u32], wait: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + wait;
    loop {
        let running: Vec<u32> = pids
            .iter()
            .copied()
            .filter(|p| proc_stat(*p).is_some_and(|(s, _)| s != 'T' && s != 't' && s != 'Z'))
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < until,
            "processes {running:?} did not stop within {wait:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until no pid is stopped any more.
pub async fn wait_continued(pids: &[u32], wait: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + wait;
    loop {
        let stopped: Vec<u32> =
            pids.iter().copied().filter(|p| proc_stat(*p).is_some_and(|(s, _)| s == 'T')).collect();
        if stopped.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < until,
            "processes {stopped:?} still stopped after {wait:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Processes this test SIGSTOPped: continued on drop, so a failing test leaves nothing frozen.
#[derive(Default)]
pub struct StoppedProcesses(Arc<Mutex<Vec<u32>>>);

impl StoppedProcesses {
    pub fn add(&self, pids: &[u32]) {
        lock(&self.0).extend(pids);
    }

    pub fn clear(&self) {
        lock(&self.0).clear();
    }
}

impl Drop for StoppedProcesses {
    fn drop(&mut self) {
        for pid in std::mem::take(&mut *lock(&self.0)) {
            let _ = testkit::process::signal(pid, "CONT");
        }
    }
}
