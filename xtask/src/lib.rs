//! What the `cargo xtask` binary and xtask's integration tests share, as a library rather than
//! files included by path: reading the Grafana dashboards ([`dashboards`]: the structural tests
//! check them, the live proof runs their queries), building the small Go programs of the tests
//! ([`go_program`]), the collector's configurations ([`collector_tier`]), loading the compose project as Compose does ([`compose`]), reading the repository's YAML files ([`yaml`]) and the dashboards' links to
//! traces ([`trace_links`], also as [`dashboards::trace_links`]).

pub mod collector_tier;
pub mod compose;
pub mod dashboards;
pub mod go_program;
pub mod ha;
pub mod trace_links;
pub mod yaml;
