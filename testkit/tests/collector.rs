//! `testkit::Collector` against the real collector binary: it starts on free loopback ports with
//! the repo's config, serves every endpoint it advertises, and is gone after drop.

use std::path::Path;
use testkit::{Collector, http_get};

#[test]
fn collector_serves_every_advertised_endpoint_and_dies_on_drop() -> anyhow::Result<()> {
    let collector = Collector::start()?;
    let (status, _) = http_get(&collector.health_url())?;
    assert_eq!(status, 200, "health; log:\n{}", collector.log());
    // Nothing was pushed yet: the exporter answers, with no series of ours.
    collector.scrape()?;
    let (status, body) = http_get(&collector.telemetry_url())?;
    assert_eq!(status, 200, "own telemetry; log:\n{}", collector.log());
    assert!(body.contains("otelcol_"), "own telemetry lacks otelcol_* metrics:\n{body}");
    for endpoint in [collector.otlp_grpc_endpoint(), collector.otlp_http_endpoint()] {
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    }
    let pid = collector.pid();
    drop(collector);
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "collector {pid} survived drop");
    Ok(())
}
