//! A real Prometheus scraping the collector, so the worker's counters are read the way the
//! dashboards read them, across worker restarts.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A real Prometheus scraping the collector's exporter every second.
pub struct Prometheus {
    base: String,
    client: reqwest::Client,
    _daemon: testkit::process::Daemon,
}

impl Prometheus {
    pub async fn start(scratch: &Path, exporter_url: &str) -> anyhow::Result<Prometheus> {
        let binary = testkit::tools::require(&testkit::tools::prometheus_path()?, "prometheus")?;
        let dir = scratch.join("prometheus");
        std::fs::create_dir_all(dir.join("data"))?;
        let target = exporter_url
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .ok_or_else(|| anyhow::anyhow!("unexpected exporter URL {exporter_url}"))?;
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: otel-collector-exporter\n    honor_labels: true\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )?;
        let port = testkit::free_port();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let log = dir.join("prometheus.log");
        let mut daemon = testkit::process::Daemon::spawn("prometheus", command, &log)?;
        let base = format!("http://127.0.0.1:{port}");
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(5)).no_proxy().build()?;
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = daemon.exited()? {
                anyhow::bail!("prometheus exited at start ({status}):\n{}", daemon.log());
            }
            if let Ok(r) = client.get(format!("{base}/-/ready")).send().await
                && r.status().is_success()
            {
                return Ok(Prometheus { base, client, _daemon: daemon });
            }
            anyhow::ensure!(
                Instant::now() < until,
                "prometheus was not ready within 30 s:\n{}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// An instant query: each series' labels and value.
    pub async fn query(
        &self,
        promql: &str,
    ) -> anyhow::Result<Vec<(BTreeMap<String, String>, f64)>> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.base),
            &[("query", promql)],
        )?;
        let body: Value = self.client.get(url).send().await?.json().await?;
        anyhow::ensure!(body["status"] == "success", "query {promql} failed: {body}");
        let series = body["data"]["result"]
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("no result in {body}"))?;
        series
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .ok_or_else(|| anyhow::anyhow!("no value in {s}"))?;
                Ok((labels, value))
            })
            .collect()
    }
}
