//! How busy the rest of the machine was during a measurement: the CPU time of every process
//! (`/proc/stat`) minus that of this process and of the service measured
//! (`/proc/<pid>/stat`), in cores. On a shared, noisy machine a throughput run that other
//! processes disturbed says so next to its figure, instead of passing for a slow service.

use anyhow::Context;
use std::time::Instant;

/// Clock ticks per second of `/proc` (`USER_HZ`, fixed at 100 on Linux's user ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time counters at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    at: Instant,
    all: u64,
    ours: u64,
}

impl Snapshot {
    /// The machine's busy ticks and those of this process and `service`.
    pub fn take(service: u32) -> anyhow::Result<Snapshot> {
        let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let all = busy_ticks(&stat).context("no `cpu` line in /proc/stat")?;
        let ours = process_ticks(std::process::id())? + process_ticks(service)?;
        Ok(Snapshot { at: Instant::now(), all, ours })
    }

    /// Cores other processes kept busy on average since `self`.
    pub fn others_since(&self, later: &Snapshot) -> f64 {
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-3);
        let all = later.all.saturating_sub(self.all);
        let ours = later.ours.saturating_sub(self.ours);
        all.saturating_sub(ours) as f64 / TICKS_PER_SECOND / seconds
    }
}

/// `user + nice + system + irq + softirq + steal` of the `cpu` line (guest time is already in
/// user time).
fn busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> =
        line.split_whitespace().skip(1).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// `utime + stime` of process `pid`, all its threads.
fn process_ticks(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_process_ticks(&stat).with_context(|| format!("{path} has no utime and stime"))
}

fn parse_process_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses: fields after the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_busy_time_leaves_idle_and_iowait_out() {
        let stat = "cpu  100 5 50 1000 40 3 2 1 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(busy_ticks(stat), Some(161));
        assert_eq!(busy_ticks("intr 1 2\n"), None);
    }

    #[test]
    fn process_time_is_read_after_the_command_name() {
        let stat = "42 (tokio (rt) x) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 9 0 1";
        assert_eq!(parse_process_ticks(stat), Some(280));
        assert!(Snapshot::take(std::process::id()).is_ok());
    }
}
