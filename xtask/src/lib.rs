//! What the `cargo xtask` binary and xtask's integration tests share, as a library rather than
//! files included by path: reading the Grafana dashboards ([`dashboards`]: the structural tests
//! check them, the live proof runs their queries), building the small Go programs of the tests
//! ([`go_program`]) and reading the repository's YAML files ([`yaml`]).

pub mod dashboards;
pub mod go_program;
pub mod yaml;
