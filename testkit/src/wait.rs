//! Polling with a deadline: every wait in the tests and tools ends, and when it gives up it says
//! what it was waiting for and why the last attempt failed.

use std::time::{Duration, Instant};

/// Time between two attempts.
const POLL_INTERVAL: Duration = Duration::from_millis(150);

/// Calls `f` until it returns `Ok(Some(value))`, about every 150 ms, for at most `timeout`.
///
/// `Ok(None)` means "not yet", `Err(e)` means "not yet, and here is why"; both are retried. On the
/// deadline the error reads `timed out after <N>s waiting for <what>; last error: <e>`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    let deadline = start + timeout;
    loop {
        let last_error = match f() {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => String::from("none (the condition was simply not met yet)"),
            Err(e) => format!("{e:#}"),
        };
        let now = Instant::now();
        if now >= deadline {
            anyhow::bail!(
                "timed out after {} waiting for {what}; last error: {last_error}",
                seconds(timeout)
            );
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// `30s` for whole seconds, `0.5s` otherwise.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_value() {
        let mut calls = 0;
        let got = wait_for("the third call", Duration::from_secs(5), || {
            calls += 1;
            Ok((calls == 3).then_some(calls))
        });
        assert_eq!(got.ok(), Some(3));
    }

    #[test]
    fn deadline_error_names_the_wait_and_the_last_error() {
        let started = Instant::now();
        let err =
            wait_for::<()>("the moon", Duration::from_millis(400), || anyhow::bail!("still down"))
                .err()
                .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("timed out after 0.4s waiting for the moon; last error: still down")
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "gave up late: {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn deadline_without_error_says_so() {
        let err = wait_for::<()>("nothing", Duration::from_secs(0), || Ok(None))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("timed out after 0s waiting for nothing; last error: none"),
            "{err}"
        );
    }
}
