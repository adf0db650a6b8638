//! The worker as its own process, the binary this package builds: started (and started again
//! after a kill) with the test's settings, its log kept across starts, SIGKILLed on demand, and
//! never left running or stopped when the test ends.

use crate::util::tail;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The worker binary: its process while it runs, its log and its settings.
pub struct WorkerProcess {
    child: Option<Child>,
    log: PathBuf,
    env: Vec<(String, String)>,
    health: String,
    /// How often it was started.
    pub starts: u32,
}

impl WorkerProcess {
    /// The worker with the settings `env`, logging to `log`; not started yet.
    pub fn new(log: PathBuf, env: Vec<(String, String)>) -> WorkerProcess {
        WorkerProcess { child: None, log, env, health: String::new(), starts: 0 }
    }

    /// Starts the worker binary and waits until its health endpoint answers.
    pub async fn start(&mut self, client: &reqwest::Client) -> anyhow::Result<()> {
        use std::io::Write;
        self.starts += 1;
        let addr = format!("127.0.0.1:{}", testkit::free_port());
        self.health = format!("http://{addr}/health/live");
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        writeln!(log, "==== chaos: worker start #{} ====", self.starts)?;
        let child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("WORKER_HEALTH_ADDR", &addr)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()?;
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.exited() {
                anyhow::bail!("the worker exited at start ({status}):\n{}", tail(&self.log, 40));
            }
            if let Ok(r) = client.get(&self.health).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < until,
                "the worker did not answer {} within 30 s:\n{}",
                self.health,
                tail(&self.log, 40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The running process' instance id (apalis worker names end in it), from its log.
    pub fn instance(&self) -> Option<String> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        let marker = format!("==== chaos: worker start #{} ====", self.starts);
        let since = &log[log.rfind(&marker)?..];
        let line = since.lines().find(|l| l.contains("\"worker running\""))?;
        let value: Value = serde_json::from_str(line).ok()?;
        value["fields"]["instance"].as_str().map(str::to_string)
    }

    /// What `/health/ready` of the running process answers.
    pub async fn readiness(&self) -> String {
        let url = self.health.replace("/health/live", "/health/ready");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build();
        let Ok(client) = client else { return "<no client>".into() };
        match client.get(&url).send().await {
            Ok(r) => format!("{} {}", r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => format!("<{e}>"),
        }
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGKILL, then reaped.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        self.kill();
    }
}
