//! `testkit::Postgres` and `testkit::Redis` against the real OS binaries: each answers on its port,
//! refuses connections once stopped, answers again after a start on the same port (Postgres with
//! its data intact), and is gone after drop; Postgres serves separate databases to tests sharing
//! one server, and runs as the `postgres` user when the tests run as root.

use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use testkit::{Postgres, Redis, process, tools};

fn refuses(port: u16) -> bool {
    TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(1)).is_err()
}

/// `psql -tAc <sql> <url>` as a plain subprocess, independent of the harness's own helper.
fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let mut command = Command::new(tools::postgres_bin_dir()?.join("psql"));
    command.args(["-X", "-v", "ON_ERROR_STOP=1", "-tAc", sql, url]);
    Ok(process::output("psql", &mut command, Duration::from_secs(30))?.trim().to_string())
}

fn effective_uid_of(pid: u32) -> anyhow::Result<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:")).unwrap_or_default();
    Ok(line.split_whitespace().nth(1).unwrap_or_default().parse()?)
}

#[test]
fn postgres_answers_stops_comes_back_with_its_data_and_serves_separate_databases()
-> anyhow::Result<()> {
    let mut pg = Postgres::start()?;
    let port = pg.port();
    assert_eq!(pg.url(), format!("postgres://postgres@127.0.0.1:{port}/orgraph"));
    assert_eq!(pg.admin_url(), format!("postgres://postgres@127.0.0.1:{port}/postgres"));
    assert_eq!(psql(&pg.url(), "select 1")?, "1", "log:\n{}", pg.log());
    let pid = pg.pid().unwrap_or_default();
    if process::effective_uid()? == 0 {
        assert_ne!(effective_uid_of(pid)?, 0, "the server must not run as root");
    }

    psql(&pg.url(), "create table t (v text); insert into t values ('kept')")?;
    pg.stop()?;
    assert!(refuses(port), "port {port} still open after stop");
    assert_eq!(pg.pid(), None);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "postgres {pid} survived stop");
    assert!(psql(&pg.url(), "select 1").is_err());

    pg.start_again()?;
    assert_eq!(pg.port(), port);
    assert_eq!(psql(&pg.url(), "select v from t")?, "kept");
    assert!(pg.start_again().is_err(), "a second start of a running server must fail");
    pg.restart()?;
    assert_eq!(pg.psql(&pg.url(), "select count(*) from t")?.trim(), "1");

    let first = pg.create_database("servers_first")?;
    let second = pg.create_database("servers_second")?;
    assert_eq!(first, format!("postgres://postgres@127.0.0.1:{port}/servers_first"));
    assert_eq!(pg.create_database("servers_first")?, first, "creating twice is fine");
    psql(&first, "create table only_here (x int)")?;
    assert_eq!(psql(&first, "select count(*) from only_here")?, "0");
    assert!(psql(&second, "select count(*) from only_here").is_err());
    assert!(pg.create_database("Not-Plain").is_err());

    let pid = pg.pid().unwrap_or_default();
    drop(pg);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "postgres {pid} survived drop");
    assert!(refuses(port));
    Ok(())
}

#[test]
fn redis_answers_ping_stops_and_comes_back_on_the_same_port() -> anyhow::Result<()> {
    let mut redis = Redis::start()?;
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));
    redis.ping()?;

    let pid = redis.pid().unwrap_or_default();
    redis.stop()?;
    assert!(refuses(port), "port {port} still open after stop");
    assert!(redis.ping().is_err());
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "redis {pid} survived stop");

    redis.start_again()?;
    assert_eq!(redis.port(), port);
    redis.ping()?;
    redis.restart()?;
    Redis::ping_port(port)?;

    let pid = redis.pid().unwrap_or_default();
    drop(redis);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "redis {pid} survived drop");
    Ok(())
}

#[test]
fn ping_of_a_closed_port_is_an_error() {
    // Port 1 (tcpmux) is privileged and unused: a free port picked now could be taken by a
    // server of a test running in parallel before the ping.
    let port = 1;
    let err = Redis::ping_port(port).err().map(|e| format!("{e:#}"));
    assert!(err.is_some_and(|e| e.contains(&format!("connecting to 127.0.0.1:{port}"))));
}

#[test]
fn a_missing_redis_server_says_how_to_install_it() {
    let err = testkit::tools::redis_server_in(std::ffi::OsStr::new("/nonexistent"))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(err.contains("apt-get install postgresql redis-server"), "{err}");
}
