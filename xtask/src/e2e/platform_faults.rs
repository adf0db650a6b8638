//! Faults of the platform under the services, for the infrastructure alerts: Postgres' connection
//! slots nearly used up by idle sessions (a connection leak, a pooler misconfigured), and Redis
//! evicting because its `maxmemory` is far below what is written to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The `application_name` of the idle sessions, so they can be counted and ended.
const HOG_APP: &str = "orgraph-e2e-hog";

/// Client sessions of every database, as the exporter counts them (`pg_stat_activity_count`
/// counts the sessions with a database: client backends).
const CLIENT_SESSIONS: &str = "SELECT count(*) FROM pg_stat_activity WHERE datname IS NOT NULL";

/// Idle `psql` sessions holding connection slots until [`ConnectionHog::release`].
pub struct ConnectionHog {
    sessions: Vec<Child>,
}

impl ConnectionHog {
    /// Opens idle sessions until the client sessions are `share` of the slots non-superusers may
    /// use (`max_connections - superuser_reserved_connections`); returns once all are connected.
    pub fn fill(share: f64) -> anyhow::Result<ConnectionHog> {
        let setting = |name: &str| -> anyhow::Result<f64> {
            Ok(super::sql(&format!("SELECT setting FROM pg_settings WHERE name = '{name}'"))?
                .parse()?)
        };
        let slots = setting("max_connections")? - setting("superuser_reserved_connections")?;
        let now: f64 = super::sql(CLIENT_SESSIONS)?.parse()?;
        let wanted = (share * slots).ceil() - now;
        anyhow::ensure!(wanted >= 1.0, "{now} of {slots} slots in use already");
        let mut hog = ConnectionHog { sessions: Vec::new() };
        for _ in 0..wanted as usize {
            // stdin stays open (piped, never written): the session waits idle for a command.
            let session = super::psql(&["-q"])?
                .env("PGAPPNAME", HOG_APP)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            hog.sessions.push(session);
        }
        let count =
            format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{HOG_APP}'");
        let opened = hog.sessions.len().to_string();
        testkit::wait_for(
            &format!("{opened} idle sessions to be connected"),
            Duration::from_secs(30),
            || Ok(super::sql(&count).is_ok_and(|n| n == opened).then_some(())),
        )?;
        println!(
            "    {opened} idle sessions opened: {} of {slots} connection slots in use",
            now + wanted
        );
        Ok(hog)
    }

    /// Ends every session (as dropping it does, also when the proof stops early).
    pub fn release(self) {
        drop(self);
    }
}

impl Drop for ConnectionHog {
    fn drop(&mut self) {
        for session in &mut self.sessions {
            let _ = session.kill();
            let _ = session.wait();
        }
    }
}

/// The stack's Redis.
const REDIS: &str = "127.0.0.1:6379";

/// Its `maxmemory` in the native stack (as in compose), put back by [`RedisFill::stop`].
const REDIS_MAXMEMORY: &str = "192mb";

/// Writes of 4 KiB values at 100 per second into a Redis whose `maxmemory` is set 1 MiB above what
/// it uses: with `allkeys-lru` it evicts about as many keys as are written.
pub struct RedisFill {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    thread: JoinHandle<anyhow::Result<()>>,
}

impl RedisFill {
    pub fn start() -> anyhow::Result<RedisFill> {
        let mut redis = Resp::connect()?;
        let used = info_field(&redis.command(&["INFO", "memory"])?, "used_memory")?;
        let bound = (used + 1024 * 1024).to_string();
        redis.command(&["CONFIG", "SET", "maxmemory", &bound])?;
        println!("    Redis: used_memory {used} B, maxmemory set to {bound} B");
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let (stopping, count) = (stop.clone(), written.clone());
        let thread = std::thread::spawn(move || {
            let value = "x".repeat(4096);
            let mut i = 0u64;
            while !stopping.load(Ordering::Relaxed) {
                redis.command(&["SET", &format!("e2e:fill:{i}"), &value])?;
                i += 1;
                count.store(i, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        });
        Ok(RedisFill { stop, written, thread })
    }

    /// Stops writing, puts `maxmemory` back; returns how many keys were written and how many
    /// Redis evicted since it started.
    pub fn stop(self) -> anyhow::Result<(u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let wrote = self.thread.join().map_err(|_| anyhow::anyhow!("the Redis writer panicked"));
        let mut redis = Resp::connect()?;
        redis.command(&["CONFIG", "SET", "maxmemory", REDIS_MAXMEMORY])?;
        wrote??;
        let evicted = info_field(&redis.command(&["INFO", "stats"])?, "evicted_keys")?;
        Ok((self.written.load(Ordering::Relaxed), evicted))
    }
}

/// `field:<number>` of an `INFO` answer.
fn info_field(info: &str, field: &str) -> anyhow::Result<u64> {
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in Redis' INFO"))
}

/// Just enough of Redis' protocol for the commands above: one command, one reply.
struct Resp {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Resp {
    fn connect() -> anyhow::Result<Resp> {
        let writer = TcpStream::connect(REDIS)?;
        writer.set_read_timeout(Some(Duration::from_secs(5)))?;
        let reader = BufReader::new(writer.try_clone()?);
        Ok(Resp { writer, reader })
    }

    /// Sends `args` and returns the reply's text (a status, a number or a bulk string); an error
    /// reply is an error.
    fn command(&mut self, args: &[&str]) -> anyhow::Result<String> {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.writer.write_all(request.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let line = line.trim_end();
        match line.split_at_checked(1) {
            Some(("+" | ":", rest)) => Ok(rest.to_string()),
            Some(("-", error)) => anyhow::bail!("Redis answered {error} to {}", args[0]),
            Some(("$", len)) => {
                let len: usize = len.parse()?;
                let mut body = vec![0; len + 2];
                self.reader.read_exact(&mut body)?;
                body.truncate(len);
                Ok(String::from_utf8_lossy(&body).into_owned())
            }
            _ => anyhow::bail!("unexpected Redis reply {line:?} to {}", args[0]),
        }
    }
}
