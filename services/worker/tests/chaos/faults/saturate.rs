//! The API's pool saturated: `employees` locked while readers hit the API, so its few pooled
//! connections wait on the lock and callers behind them wait past the pool timeout; they must get
//! 503 problems, never a 500 or a hang.

use super::{FaultReport, Rig};
use reqwest::Method;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Locks `employees` for `hold` while readers hit `/api/graph/nodes`: the API's few pooled
/// connections wait on the lock, and callers behind them wait past the pool timeout.
pub async fn saturate(rig: &Rig, report: &mut FaultReport, hold: Duration) -> anyhow::Result<()> {
    use sqlx::Connection;
    let (api, faults) = (&rig.api, &rig.api.faults);
    let mut conn = sqlx::PgConnection::connect(&rig.pg_url).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET LOCAL lock_timeout = '10s'").execute(&mut *tx).await?;
    sqlx::query("LOCK TABLE employees IN ACCESS EXCLUSIVE MODE").execute(&mut *tx).await?;
    faults.begin(report.kind);
    let reading = Arc::new(AtomicBool::new(true));
    let readers: Vec<_> = (0..10)
        .map(|i| {
            let (api, reading) = (api.clone(), reading.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                while reading.load(Ordering::SeqCst) {
                    let path = format!("/api/graph/nodes?limit=20&after={}", i * 100);
                    statuses.push(api.call(Method::GET, &path, None).await.map(|(s, _)| s));
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(hold).await;
    tx.commit().await?;
    reading.store(false, Ordering::SeqCst);
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for reader in readers {
        for status in reader.await? {
            let key = status.map_or_else(|| "no answer".to_string(), |s| s.to_string());
            *statuses.entry(key).or_default() += 1;
        }
    }
    faults.end();
    conn.close().await?;
    report.unavailable = statuses.get("503").copied().unwrap_or(0);
    report.detail =
        format!("locked employees {:.1}s; readers got {statuses:?}", hold.as_secs_f64());
    Ok(())
}
