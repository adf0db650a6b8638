//! Every way the collector is run, as the `--config` files `otelcol` gets: the single collector
//! (collector-config.yaml), the HA tier's agent (collector-config.yaml with collector/agent.yaml
//! and a resolver of gateways: the static one below, or compose's DNS one,
//! collector/gateways-dns.yaml) and its gateway (collector/gateway.yaml). `cargo xtask test`'s
//! `collector config` step and `tests/collector_tier.rs` run `otelcol validate` on each, from
//! this one list.

use std::path::{Path, PathBuf};

/// A resolver overlay for the agent with a static list of gateways (one unreachable address:
/// `validate` connects to nothing), standing for the file the native HA stack writes with the
/// gateways alive.
pub const STATIC_GATEWAYS: &str = "\
# The agent's gateways, a static list (written by cargo xtask to validate the agent's configs).
exporters:
  load_balancing/metrics:
    resolver:
      static:
        hostnames: [127.0.0.1:1]
  load_balancing/traces:
    resolver:
      static:
        hostnames: [127.0.0.1:1]
";

/// Each way the collector runs: its name and its `--config` files in order, relative to the repo
/// root, with `static_gateways` (a file holding [`STATIC_GATEWAYS`]) for the native agent's
/// resolver.
pub fn configurations(static_gateways: &Path) -> Vec<(&'static str, Vec<PathBuf>)> {
    let repo = |files: &[&str]| files.iter().map(PathBuf::from).collect::<Vec<_>>();
    let mut agent = repo(&["collector-config.yaml", "collector/agent.yaml"]);
    agent.push(static_gateways.to_path_buf());
    vec![
        ("the single collector", repo(&["collector-config.yaml"])),
        ("the agent, gateways listed", agent),
        (
            "the agent in compose.ha.yaml, gateways by DNS",
            repo(&["collector-config.yaml", "collector/agent.yaml", "collector/gateways-dns.yaml"]),
        ),
        ("a gateway", repo(&["collector/gateway.yaml"])),
    ]
}
