//! The benchmarks' own HTTP client loops, kept minimal so the client spends as little of the
//! machine as possible: `concurrency` tasks, each sending its next request as soon as the last
//! one's body has arrived, over a shared keep-alive pool. [`saturate`] measures requests per
//! second on one URL; [`flood`] sends a number of requests to unique random URLs.

use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Every request's deadline.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A client keeping `concurrency` connections alive, never through a proxy, every request with
/// `token` as its bearer token.
pub fn client(concurrency: usize, token: &str) -> anyhow::Result<reqwest::Client> {
    let bearer = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|e| anyhow::anyhow!("the API token is not a header value: {e}"))?;
    reqwest::Client::builder()
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::AUTHORIZATION,
            bearer,
        )]))
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(concurrency)
        .no_proxy()
        .user_agent("orgraph-xtask-bench")
        .build()
        .map_err(|e| anyhow::anyhow!("building the HTTP client: {e}"))
}

/// GETs `url` and reads the body; the status, or the transport error.
async fn get(client: &reqwest::Client, url: &str) -> Result<u16, String> {
    let response = client.get(url).send().await.map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    response.bytes().await.map_err(|e| format!("{e:?}"))?;
    Ok(status)
}

/// Answers that were not the expected status, and the first of them.
#[derive(Debug, Default)]
struct Unexpected {
    count: AtomicU64,
    first: Mutex<Option<String>>,
}

impl Unexpected {
    fn record(&self, what: String) {
        if self.count.fetch_add(1, Ordering::Relaxed) == 0
            && let Ok(mut first) = self.first.lock()
        {
            *first = Some(what);
        }
    }

    fn check(&self, total: u64) -> anyhow::Result<()> {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return Ok(());
        }
        let first = self.first.lock().ok().and_then(|f| f.clone()).unwrap_or_default();
        anyhow::bail!("{count} of {total} requests went wrong; the first: {first}")
    }
}

/// GETs `url` from `concurrency` tasks for `warm_up`, then counts answers for `measure`;
/// returns requests per second over the measured window. Any answer but 200, or a transport
/// error, fails the measurement.
pub async fn saturate(
    client: &reqwest::Client,
    url: &str,
    concurrency: usize,
    warm_up: Duration,
    measure: Duration,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let unexpected = Arc::new(Unexpected::default());
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (client, url) = (client.clone(), url.to_string());
        let (done, stop, unexpected) = (done.clone(), stop.clone(), unexpected.clone());
        tasks.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match get(&client, &url).await {
                    Ok(200) => {}
                    Ok(status) => unexpected.record(format!("GET {url} answered {status}")),
                    Err(e) => unexpected.record(format!("GET {url}: {e}")),
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    tokio::time::sleep(warm_up).await;
    let (from, start) = (done.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(measure).await;
    let (to, end) = (done.load(Ordering::Relaxed), Instant::now());
    stop.store(true, Ordering::Relaxed);
    while let Some(joined) = tasks.join_next().await {
        joined.map_err(|e| anyhow::anyhow!("a client task failed: {e}"))?;
    }
    unexpected.check(done.load(Ordering::Relaxed))?;
    Ok((to - from) as f64 / (end - start).as_secs_f64())
}

/// Sends `requests` GETs of `<base>/flood/<32 random hex digits>` from `concurrency` tasks, a
/// progress line every 5 s; returns the answers by status. A transport error fails it.
pub async fn flood(
    client: &reqwest::Client,
    base: &str,
    requests: u64,
    concurrency: usize,
    seed: u64,
) -> anyhow::Result<BTreeMap<u16, u64>> {
    let next = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let unexpected = Arc::new(Unexpected::default());
    let mut tasks = JoinSet::new();
    for task in 0..concurrency as u64 {
        let (client, base) = (client.clone(), base.to_string());
        let (next, answered, unexpected) = (next.clone(), answered.clone(), unexpected.clone());
        tasks.spawn(async move {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ task.rotate_left(32));
            let mut by_status = BTreeMap::<u16, u64>::new();
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let url = flood_url(&base, rng.random());
                match get(&client, &url).await {
                    Ok(status) => *by_status.entry(status).or_default() += 1,
                    Err(e) => unexpected.record(format!("GET {url}: {e}")),
                }
                answered.fetch_add(1, Ordering::Relaxed);
            }
            by_status
        });
    }
    let started = Instant::now();
    let progress = tokio::spawn(async move {
        let mut tick =
            tokio::time::interval_at(started + Duration::from_secs(5), Duration::from_secs(5));
        loop {
            tick.tick().await;
            eprintln!(
                "[bench] flood: {:>7} of {requests} answered after {:.0}s",
                answered.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            );
        }
    });
    let mut by_status = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(counts) => {
                for (status, n) in counts {
                    *by_status.entry(status).or_default() += n;
                }
            }
            Err(e) => {
                progress.abort();
                anyhow::bail!("a flood task failed: {e}");
            }
        }
    }
    progress.abort();
    unexpected.check(requests)?;
    Ok(by_status)
}

/// `<base>/flood/<32 hex digits of random>`.
fn flood_url(base: &str, random: u128) -> String {
    format!("{base}/flood/{random:032x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flood_urls_are_unique_paths_under_flood() {
        let url = flood_url("http://127.0.0.1:1", 0xab);
        assert_eq!(url, format!("http://127.0.0.1:1/flood/{}ab", "0".repeat(30)));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let urls: std::collections::BTreeSet<String> =
            (0..1000).map(|_| flood_url("", rng.random())).collect();
        assert_eq!(urls.len(), 1000);
    }
}
