//! The live proof's ledger: each check passes or fails with a reason, the run goes on after a
//! failure (so one run shows every broken query), and ends with `N passed, M failed`.

use std::time::Duration;

/// The ledger: how many checks passed, and which failed.
#[derive(Default)]
pub struct Checks {
    passed: usize,
    failures: Vec<String>,
}

impl Checks {
    /// Records `what`: passed if `ok`, else failed with `why()`.
    pub fn check(&mut self, what: &str, ok: bool, why: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
            println!("    ok   {what}");
        } else {
            self.fail(what, &why());
        }
    }

    /// Records `what` as failed, printing `why` indented under it.
    pub fn fail(&mut self, what: &str, why: &str) {
        println!("    FAIL {what}\n         {}", why.replace('\n', "\n         "));
        self.failures.push(what.to_string());
    }

    pub fn failed(&self) -> usize {
        self.failures.len()
    }

    /// Prints the closing lines: the time taken, each failure, then `N passed, M failed`.
    pub fn summary(&self, took: Duration) {
        println!("\nlive proof took {} s", took.as_secs());
        for f in &self.failures {
            println!("failed: {f}");
        }
        println!("e2e: {} passed, {} failed", self.passed, self.failures.len());
    }
}
