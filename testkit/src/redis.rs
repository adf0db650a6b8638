//! A real, throwaway Redis server for tests (the OS package's `redis-server`, no persistence) on a
//! free loopback port. Like [`crate::Postgres`] it can be stopped mid-test and started again on the
//! same port, for the cache's fault tests. Readiness is a RESP `PING` over a plain TCP stream, so
//! the harness needs no Redis client crate; `cargo xtask stack` uses the same arguments and check.

use crate::process::Restartable;
use crate::scratch::ScratchDir;
use crate::{free_port, tools};
use anyhow::Context;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long the server may take to answer `PING`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long SIGTERM may take before the server is killed (without persistence it exits at once).
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Bound on connecting, writing and reading one `PING`.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// A running (or deliberately stopped) Redis; killed on drop.
#[derive(Debug)]
pub struct Redis {
    server: Restartable,
    binary: PathBuf,
    // Dropped after `server` (fields drop in order): the log outlives the process.
    _dir: ScratchDir,
}

impl Redis {
    /// Starts `redis-server` on `127.0.0.1:<free port>` without persistence and returns once it
    /// answers `PING`. Fails with its log if it exits first or does not answer within 10 s.
    pub fn start() -> anyhow::Result<Redis> {
        let binary = tools::redis_server()?;
        let dir = ScratchDir::new("redis")?;
        let server = Restartable::new("redis", free_port(), dir.path().join("redis.log"));
        let mut redis = Redis { server, binary, _dir: dir };
        redis.launch()?;
        Ok(redis)
    }

    /// The arguments of a `redis-server` on `127.0.0.1:port` that persists nothing (no RDB
    /// snapshots, no AOF) and keeps its working files in `dir`. (Redis rewrites its command line
    /// to a title, `<binary> 127.0.0.1:<port>`, so `/proc/<pid>/cmdline` no longer shows these.)
    pub fn server_args(port: u16, dir: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = ["--port", &port.to_string(), "--bind", "127.0.0.1"]
            .into_iter()
            .chain(["--save", "", "--appendonly", "no"])
            .chain(["--dir"])
            .map(OsString::from)
            .collect();
        args.push(dir.as_os_str().to_owned());
        args
    }

    /// `Ok` if `127.0.0.1:port` answers a RESP `PING` with `+PONG` within 2 s.
    pub fn ping_port(port: u16) -> anyhow::Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut stream = TcpStream::connect_timeout(&addr, PING_TIMEOUT)
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(PING_TIMEOUT)).context("setting a read timeout")?;
        stream.set_write_timeout(Some(PING_TIMEOUT)).context("setting a write timeout")?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").with_context(|| format!("PING to {addr}"))?;
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n") && answer.len() < 512 {
            let n = stream.read(&mut byte).with_context(|| format!("reading PING from {addr}"))?;
            anyhow::ensure!(n == 1, "{addr} closed the connection after PING");
            answer.push(byte[0]);
        }
        anyhow::ensure!(
            answer == b"+PONG\r\n",
            "{addr} answered PING with `{}`",
            String::from_utf8_lossy(&answer).trim_end()
        );
        Ok(())
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// The TCP port on 127.0.0.1; the same across [`Redis::stop`] and [`Redis::start_again`].
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The server's process id, `None` while stopped.
    pub fn pid(&self) -> Option<u32> {
        self.server.pid()
    }

    /// `Ok` if the server answers `PING`.
    pub fn ping(&self) -> anyhow::Result<()> {
        Redis::ping_port(self.port())
    }

    /// Everything the server logged so far, over all its starts.
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Stops the server (SIGTERM; every key is gone, nothing is persisted) and waits until the
    /// port refuses connections. A stopped server stays stopped.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.server.stop("TERM", STOP_TIMEOUT)
    }

    /// Starts the stopped server again on the same port (empty) and waits until it answers.
    /// Fails if it runs already.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.launch()
    }

    /// [`Redis::stop`], then [`Redis::start_again`].
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// Spawns the server and waits until it answers `PING`; fails if it runs already.
    fn launch(&mut self) -> anyhow::Result<()> {
        let port = self.port();
        let mut command = Command::new(&self.binary);
        command.args(Redis::server_args(port, self._dir.path()));
        let what = format!("redis to answer PING on port {port}");
        self.server.start(command, &what, STARTUP_TIMEOUT, || Redis::ping_port(port))
    }
}
