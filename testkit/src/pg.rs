//! A PostgreSQL cluster on disk, from the OS packages: `initdb`, the server command, readiness and
//! databases. It exists so that the throwaway servers of the tests ([`crate::Postgres`]) and the
//! long-lived one of `cargo xtask stack` are made the same way, including the one awkward part:
//! Postgres refuses to run as root, so when this process is root (CI is) the server binaries run
//! as the unprivileged `postgres` system user, who then owns the cluster's directories.
//!
//! Authentication is `trust` for the `postgres` superuser, and the server listens on 127.0.0.1 only
//! (plus a unix socket in a directory of the cluster): fine for tests and the native dev stack,
//! never for anything reachable from another machine.

use crate::process;
use crate::tools;
use anyhow::Context;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The superuser `initdb` creates; every URL of this module connects as it.
pub const SUPERUSER: &str = "postgres";

/// The database of the platform (compose creates the same one).
pub const DATABASE: &str = "orgraph";

/// The least-privileged role the collector reads Postgres as (through postgres_exporter), which
/// `postgres/monitoring-role.sql` creates.
pub const MONITOR_USER: &str = "orgraph_monitor";

/// The OS user that runs the server binaries when this process is root. The Debian `postgresql`
/// package creates it.
pub const OS_USER: &str = "postgres";

/// How long `initdb` may take (it is well under a second with `--no-sync`).
const INITDB_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a client command (`psql`, `pg_isready`, `chown`) may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Server settings that trade durability for speed. `fsync` and `full_page_writes` off only risk
/// an OS crash or power loss; `synchronous_commit` off also means a commit is acknowledged before
/// its WAL record is written, so SIGKILLing the server loses the last fraction of a second of
/// acknowledged commits. Tests that kill Postgres and count on every acknowledged commit turn it
/// back on for their database (`ALTER DATABASE … SET synchronous_commit = on`, as the chaos test
/// does).
const FAST_SETTINGS: [(&str, &str); 3] =
    [("fsync", "off"), ("synchronous_commit", "off"), ("full_page_writes", "off")];

/// Where a cluster lives and how its server is configured. Nothing runs until
/// [`Cluster::server_command`] is spawned by the owner (a test's daemon, or the stack).
#[derive(Debug, Clone)]
pub struct Cluster {
    bin_dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    durable: bool,
}

impl Cluster {
    /// A cluster with its data in `data_dir` and its unix socket in `socket_dir`, served on
    /// `127.0.0.1:port`, using the binaries of [`tools::postgres_bin_dir`]. Durable by default.
    pub fn new(data_dir: &Path, socket_dir: &Path, port: u16) -> anyhow::Result<Cluster> {
        Ok(Cluster {
            bin_dir: tools::postgres_bin_dir()?,
            data_dir: data_dir.to_path_buf(),
            socket_dir: socket_dir.to_path_buf(),
            port,
            durable: true,
        })
    }

    /// Skips every fsync (initdb's and the server's) and full-page writes: for throwaway clusters.
    pub fn without_durability(mut self) -> Cluster {
        self.durable = false;
        self
    }

    /// The directory of `initdb`, `postgres`, `psql`, ….
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The `postgres` server binary (what a running server's command line starts with).
    pub fn server_binary(&self) -> PathBuf {
        self.bin_dir.join("postgres")
    }

    /// Where `initdb` puts the cluster (the server's `-D`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Whether `initdb` has run in the data directory.
    pub fn is_initialized(&self) -> bool {
        self.data_dir.join("PG_VERSION").is_file()
    }

    /// Runs `initdb` unless the data directory holds a cluster already; `Ok(true)` if it ran.
    /// Creates the data directory's parent and the socket directory first and, when root, hands
    /// both to [`OS_USER`].
    pub fn init(&self) -> anyhow::Result<bool> {
        if self.is_initialized() {
            return Ok(false);
        }
        let parent = self.data_dir.parent().unwrap_or(Path::new("/")).to_path_buf();
        for dir in [&parent, &self.socket_dir] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            hand_over(dir)?;
        }
        let mut initdb = as_server_user(&self.bin_dir.join("initdb"))?;
        initdb
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])
            .current_dir(&parent);
        if !self.durable {
            initdb.arg("--no-sync");
        }
        let what = format!("initdb -D {}", self.data_dir.display());
        process::output(&what, &mut initdb, INITDB_TIMEOUT)?;
        Ok(true)
    }

    /// The command that runs the server in the foreground (as [`OS_USER`] when root), listening on
    /// 127.0.0.1:`port` and on a unix socket in the socket directory; logs go to stderr. Its
    /// process is the postmaster itself (no wrapper stays in between), so its pid is the server's:
    /// SIGINT is a fast shutdown, SIGQUIT an immediate one.
    pub fn server_command(&self) -> anyhow::Result<Command> {
        let mut command = as_server_user(&self.server_binary())?;
        command.arg("-D").arg(&self.data_dir).arg("-p").arg(self.port.to_string());
        let mut setting = |name: &str, value: OsString| {
            let mut arg = OsString::from(format!("{name}="));
            arg.push(value);
            command.arg("-c").arg(arg);
        };
        setting("listen_addresses", "127.0.0.1".into());
        setting("unix_socket_directories", self.socket_dir.clone().into_os_string());
        if !self.durable {
            for (name, value) in FAST_SETTINGS {
                setting(name, value.into());
            }
        }
        command.current_dir(&self.data_dir);
        Ok(command)
    }

    /// `Ok` if the port accepts TCP connections and `pg_isready` says the server accepts
    /// connections (not while it starts up, recovers or shuts down).
    pub fn ready(&self) -> anyhow::Result<()> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .with_context(|| format!("connecting to {addr}"))?;
        let mut pg_isready = Command::new(self.bin_dir.join("pg_isready"));
        pg_isready.args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", SUPERUSER]);
        pg_isready.args(["-d", "postgres", "-t", "5"]);
        process::output(&format!("pg_isready -p {}", self.port), &mut pg_isready, CLIENT_TIMEOUT)
            .map(drop)
    }

    /// Runs `sql` with `psql` against `url` (any libpq connection string) and returns its output
    /// unaligned, tuples only (`select 1` gives `1\n`). Stops at the first error.
    pub fn psql(&self, url: &str, sql: &str) -> anyhow::Result<String> {
        let mut psql = Command::new(self.bin_dir.join("psql"));
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-t", "-A", "-c", sql, url])
            .env("PGCONNECT_TIMEOUT", "5");
        process::output(&format!("psql -c {sql:?} {url}"), &mut psql, CLIENT_TIMEOUT)
    }

    /// Creates database `name` unless it exists; returns its URL. `name` must be a plain lower-case
    /// identifier (`[a-z_][a-z0-9_]*`, at most 63 bytes), so it needs no quoting anywhere.
    pub fn ensure_database(&self, name: &str) -> anyhow::Result<String> {
        if !self.has_database(name)? {
            self.psql(&self.url("postgres"), &format!("create database \"{name}\""))?;
        }
        Ok(self.url(name))
    }

    /// Runs the repo's `postgres/monitoring-role.sql` with `psql` against `url` as the superuser:
    /// creates [`MONITOR_USER`] (or updates it) with `password`. Idempotent. The password reaches
    /// psql in its environment (`\getenv`, as compose's `postgres-monitor-init` does), never on a
    /// command line, where every user of the machine could read it.
    pub fn apply_monitoring_role(&self, url: &str, password: &str) -> anyhow::Result<()> {
        let file = crate::repo_root().join("postgres").join("monitoring-role.sql");
        let mut psql = Command::new(self.bin_dir.join("psql"));
        psql.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg("--command=\\getenv monitor_password MONITOR_PASSWORD")
            .arg("-f")
            .arg(&file)
            .arg(url)
            .env("MONITOR_PASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5");
        let what = format!("psql -f {} {url}", file.display());
        process::output(&what, &mut psql, CLIENT_TIMEOUT).map(drop)
    }

    /// Whether database `name` (a plain identifier, as for [`Cluster::ensure_database`]) exists.
    pub fn has_database(&self, name: &str) -> anyhow::Result<bool> {
        check_identifier(name)?;
        let exists = format!("select 1 from pg_database where datname = '{name}'");
        Ok(!self.psql(&self.url("postgres"), &exists)?.trim().is_empty())
    }
}

/// A command running `program` as [`OS_USER`] if this process is root, else as ourselves. It is
/// `setpriv`, which execs `program` in place (unlike `runuser` and `su`, which stay as its
/// parent): the spawned pid is `program`'s, and signals reach it directly.
pub fn as_server_user(program: &Path) -> anyhow::Result<Command> {
    if process::effective_uid()? != 0 {
        return Ok(Command::new(program));
    }
    let setpriv = tools::find_on_path("setpriv").ok_or_else(|| {
        anyhow::anyhow!(
            "running as root, Postgres must run as the `{OS_USER}` user, which needs `setpriv` \
             (Debian: apt-get install util-linux)"
        )
    })?;
    let mut command = Command::new(setpriv);
    command
        .arg(format!("--reuid={OS_USER}"))
        .arg(format!("--regid={OS_USER}"))
        .arg("--init-groups")
        .arg("--")
        .arg(program);
    Ok(command)
}

/// When this process is root: gives `dir` and everything in it to [`OS_USER`], then checks that
/// the user can really write there (every parent directory must be searchable by it). Does
/// nothing otherwise.
pub fn hand_over(dir: &Path) -> anyhow::Result<()> {
    if process::effective_uid()? != 0 {
        return Ok(());
    }
    let mut chown = Command::new("chown");
    chown.arg("-R").arg(format!("{OS_USER}:{OS_USER}")).arg(dir);
    process::output(&format!("chown -R {OS_USER} {}", dir.display()), &mut chown, CLIENT_TIMEOUT)
        .with_context(|| {
        format!(
            "handing {} to the `{OS_USER}` user (does it exist? apt-get install postgresql)",
            dir.display()
        )
    })?;
    let mut test = as_server_user(Path::new("test"))?;
    test.arg("-w").arg(dir);
    process::output(&format!("test -w {}", dir.display()), &mut test, CLIENT_TIMEOUT)
        .with_context(|| {
            format!(
                "the `{OS_USER}` user cannot write {}: Postgres refuses to run as root, so every \
                 parent directory must be searchable by other users (chmod o+x), or the \
                 directory must live elsewhere",
                dir.display()
            )
        })?;
    Ok(())
}

fn check_identifier(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let plain = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63;
    anyhow::ensure!(
        plain,
        "database name `{name}` is not a plain identifier ([a-z_][a-z0-9_]*, at most 63 bytes)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_must_be_plain_identifiers() {
        for ok in ["orgraph", "_t1", "queue_test_42"] {
            assert!(check_identifier(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1abc", "Upper", "a-b", "x'; drop", &"a".repeat(64)] {
            assert!(check_identifier(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_command_listens_on_loopback_and_is_fast_only_when_asked() -> anyhow::Result<()> {
        if tools::postgres_bin_dir().is_err() {
            eprintln!("skipped: no Postgres installed");
            return Ok(());
        }
        let cluster = Cluster::new(Path::new("/x/data"), Path::new("/x"), 5999)?;
        let args = |c: &Cluster| -> anyhow::Result<String> {
            let command = c.server_command()?;
            Ok(command.get_args().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "))
        };
        let durable = args(&cluster)?;
        assert!(
            durable.ends_with(
                "-D /x/data -p 5999 -c listen_addresses=127.0.0.1 -c unix_socket_directories=/x"
            ),
            "{durable}"
        );
        let fast = args(&cluster.clone().without_durability())?;
        assert!(fast.ends_with("-c fsync=off -c synchronous_commit=off -c full_page_writes=off"));
        assert_eq!(cluster.url("orgraph"), "postgres://postgres@127.0.0.1:5999/orgraph");
        Ok(())
    }
}
