//! Which gateway collectors are in: natively there is no orchestrator (compose's DNS drops a dead
//! container's address, Kubernetes its endpoint), so this thread plays its part. Every second it
//! checks each gateway's health; when the set of healthy gateways changes it rewrites the agent's
//! static resolver (the `--config` collector/gateways-dns.yaml is in compose) and Prometheus'
//! file-SD lists, then reloads the agent with SIGHUP. A change is recorded with its time, so the
//! proof can say how long a gateway's series took to move.

use super::stack::{GatewayFiles, Ports};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the gateways' health is checked (compose's resolver re-resolves every 5 s).
const EVERY: Duration = Duration::from_secs(1);

/// The gateways in, by index, and every change so far.
#[derive(Debug, Default)]
struct State {
    alive: Vec<usize>,
    changes: Vec<(Instant, Vec<usize>)>,
}

pub struct Membership {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    health: [String; 2],
    files: GatewayFiles,
    ports: Ports,
    agent_pid: AtomicU32,
    state: Mutex<State>,
    stop: AtomicBool,
}

impl Membership {
    /// Writes the files with both gateways in (they are started before the agent reads them);
    /// the thread starts with [`Membership::watch`].
    pub fn start(health: [String; 2], files: GatewayFiles, ports: Ports) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            health,
            files,
            ports,
            agent_pid: AtomicU32::new(0),
            state: Mutex::new(State { alive: vec![0, 1], changes: Vec::new() }),
            stop: AtomicBool::new(false),
        });
        shared.write(&[0, 1])?;
        Ok(Membership { shared, thread: None })
    }

    /// The agent's pid, which the stack sets whenever it starts the agent.
    pub fn set_agent_pid(&self, pid: u32) {
        self.shared.agent_pid.store(pid, Ordering::SeqCst);
    }

    /// Starts checking the gateways.
    pub fn watch(&mut self) {
        let shared = self.shared.clone();
        self.thread = Some(std::thread::spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                shared.check();
                std::thread::sleep(EVERY);
            }
        }));
    }

    /// The first change after `since` that left gateway `gone` out, and when.
    pub fn dropped_since(&self, since: Instant, gone: usize) -> Option<Instant> {
        let state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.changes.iter().find(|(at, alive)| *at >= since && !alive.contains(&gone)).map(|c| c.0)
    }

    /// The first change after `since` that had gateway `back` in again, and when.
    pub fn joined_since(&self, since: Instant, back: usize) -> Option<Instant> {
        let state = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.changes.iter().find(|(at, alive)| *at >= since && alive.contains(&back)).map(|c| c.0)
    }

    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn check(&self) {
        let alive: Vec<usize> = (0..2)
            .filter(|&i| testkit::http_get(&self.health[i]).is_ok_and(|(status, _)| status == 200))
            .collect();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // None healthy: keep routing to the last set rather than to nothing.
        if alive.is_empty() || alive == state.alive {
            return;
        }
        match self.write(&alive) {
            Ok(()) => {
                let pid = self.agent_pid.load(Ordering::SeqCst);
                let reloaded = pid != 0 && testkit::process::signal(pid, "HUP").is_ok();
                super::stack::say(&format!(
                    "membership: gateways in {:?} (agent reloaded: {reloaded})",
                    alive.iter().map(|i| i + 1).collect::<Vec<_>>()
                ));
                state.alive = alive.clone();
                state.changes.push((Instant::now(), alive));
            }
            Err(e) => super::stack::say(&format!("membership: cannot write the lists: {e:#}")),
        }
    }

    /// The agent's resolver and Prometheus' target lists for the gateways `alive`.
    fn write(&self, alive: &[usize]) -> anyhow::Result<()> {
        let p = &self.ports;
        let list = |ports: Vec<u16>| {
            ports.iter().map(|port| format!("\"127.0.0.1:{port}\"")).collect::<Vec<_>>().join(", ")
        };
        let otlp = list(alive.iter().map(|&i| p.gateway_otlp[i]).collect());
        let resolver = format!("static:\n        hostnames: [{otlp}]");
        write_atomically(
            &self.files.resolver,
            &format!(
                "# The gateways alive, written by the HA proof (natively the orchestrator's part).\n\
                 exporters:\n  load_balancing/metrics:\n    resolver:\n      {resolver}\n  \
                 load_balancing/traces:\n    resolver:\n      {resolver}\n"
            ),
        )?;
        let exporters = list(alive.iter().map(|&i| p.gateway_exporter[i]).collect());
        write_atomically(
            &self.files.exporter_targets,
            &format!("# The gateways alive (HA proof)\n- targets: [{exporters}]\n"),
        )?;
        let telemetry = list(
            std::iter::once(p.agent_telemetry)
                .chain(alive.iter().map(|&i| p.gateway_telemetry[i]))
                .collect(),
        );
        write_atomically(
            &self.files.telemetry_targets,
            &format!("# The agent and the gateways alive (HA proof)\n- targets: [{telemetry}]\n"),
        )
    }
}

/// Writes `path` through a temporary file and a rename, so a reader never sees half of it.
fn write_atomically(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
