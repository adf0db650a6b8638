//! An instrumented circuit breaker for the API's remote dependencies (Postgres, Redis).
//!
//! When a dependency is down, calling it anyway only piles up timeouts; the breaker notices
//! consecutive failures, refuses calls for a while (so the API can answer 503 at once), then lets
//! a single probe through to find out whether the dependency is back. Every transition and every
//! call is recorded through [`BreakerMetrics`], so "the breaker opened" is visible in metrics
//! (`orgraph.circuit_breaker.state` / `.calls`), which the `CircuitBreaker*` alerts read. A
//! rejection and a transition are also events on the current span (the call's), when traced.
//!
//! Time is `tokio::time::Instant`, so tests drive it with tokio's paused clock.

use otel::catalogue::{BreakerName, BreakerOutcome, BreakerState, Label};
use otel::metrics::BreakerMetrics;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// When a breaker opens and how it recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures (while closed) that open the breaker. Default 5; 0 is taken as 1.
    pub failure_threshold: u32,
    /// How long the breaker stays open before it turns half-open and lets a probe through.
    /// Default 10 s.
    pub open_for: Duration,
    /// Successful probes in a row (one at a time) that close a half-open breaker. Default 1; 0
    /// is taken as 1.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    /// 5 consecutive failures open it, it stays open 10 s, one successful probe closes it.
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(10),
            half_open_probes: 1,
        }
    }
}

/// What a call's error says about the dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It answered (a "not found", a constraint violation): a success for the breaker.
    Answered,
    /// It did not answer: a failure.
    Failed,
    /// Nothing is known: the call never reached it (e.g. every pooled connection was busy while
    /// it answered others). Counted as neither, like a cancelled call.
    Unknown,
}

/// Why a call through a breaker returned an error.
#[derive(Debug, thiserror::Error)]
pub enum BreakerError<E> {
    /// The breaker refused the call; the wrapped operation was not run.
    #[error("circuit breaker {} is open; retry after {retry_after:?}", name.as_str())]
    Open {
        /// Which breaker refused.
        name: BreakerName,
        /// A hint for when to try again: the rest of the open period, or while a half-open probe
        /// is in flight, `min(open_for, 1 s)`.
        retry_after: Duration,
    },
    /// The operation ran and returned this error.
    #[error(transparent)]
    Inner(E),
}

impl<E> BreakerError<E> {
    /// Whether the breaker refused the call (rather than the call failing).
    pub fn is_open(&self) -> bool {
        matches!(self, BreakerError::Open { .. })
    }
}

/// A circuit breaker around one dependency. Cheap to clone: clones share the state.
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

struct Inner {
    name: BreakerName,
    config: BreakerConfig,
    metrics: BreakerMetrics,
    state: Mutex<State>,
}

/// The mutable state; the lock is held only for bookkeeping, never across an await.
struct State {
    phase: Phase,
    /// Bumped on every transition, so a call admitted in one phase cannot change a later one.
    generation: u64,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probe_in_flight: bool, successes: u32 },
}

impl Phase {
    fn label(self) -> BreakerState {
        match self {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { .. } => BreakerState::Open,
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

/// What admission granted a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Permit {
    /// Admitted while closed.
    Normal,
    /// The single half-open probe.
    Probe,
}

impl CircuitBreaker {
    /// A closed breaker; records the Closed state and starts the call counts at 0 at once, so
    /// the state series and the first rejection are visible from the start.
    pub fn new(name: BreakerName, config: BreakerConfig, metrics: BreakerMetrics) -> Self {
        metrics.set_state(name, BreakerState::Closed);
        metrics.start_at_zero(name);
        let state = State { phase: Phase::Closed { failures: 0 }, generation: 0 };
        CircuitBreaker {
            inner: Arc::new(Inner { name, config, metrics, state: Mutex::new(state) }),
        }
    }

    /// Which dependency this breaker guards.
    pub fn name(&self) -> BreakerName {
        self.inner.name
    }

    /// The configuration it was built with.
    pub fn config(&self) -> BreakerConfig {
        self.inner.config
    }

    /// The current state, for readiness checks. An open breaker whose open period is over reports
    /// Open until the next call turns it half-open.
    pub fn state(&self) -> BreakerState {
        self.inner.lock().phase.label()
    }

    /// Runs `f` unless the breaker is open; every error of `f` counts as a failure.
    pub async fn call<T, E, F, Fut>(&self, f: F) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call_with(f, |_| true).await
    }

    /// Runs `f` unless the breaker is open; only errors for which `is_failure` is true count as
    /// failures. Others (a "not found", a constraint violation) show the dependency answered, so
    /// they count — and are recorded — as successes, though the error is still returned.
    ///
    /// If the returned future is dropped before `f` finishes (cancellation), the call counts as
    /// neither: a half-open probe slot is released for the next caller.
    pub async fn call_with<T, E, F, Fut>(
        &self,
        f: F,
        is_failure: impl Fn(&E) -> bool,
    ) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let judge = |e: &E| if is_failure(e) { Verdict::Failed } else { Verdict::Answered };
        self.call_judged(f, judge).await
    }

    /// [`CircuitBreaker::call_with`] with a third verdict: an error judged
    /// [`Verdict::Unknown`] counts as neither success nor failure (and is not recorded as a call),
    /// as a cancelled call does.
    pub async fn call_judged<T, E, F, Fut>(
        &self,
        f: F,
        judge: impl Fn(&E) -> Verdict,
    ) -> Result<T, BreakerError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let inner = &*self.inner;
        let (permit, generation) = match inner.admit() {
            Ok(admitted) => admitted,
            Err((state, retry_after)) => {
                inner.metrics.call(inner.name, BreakerOutcome::Rejected);
                otel::trace::client::breaker_rejected(inner.name, state);
                return Err(BreakerError::Open { name: inner.name, retry_after });
            }
        };
        let mut guard = CallGuard { inner, permit, generation, done: false };
        let result = f().await;
        let failed = match &result {
            Ok(_) => false,
            Err(e) => match judge(e) {
                Verdict::Answered => false,
                Verdict::Failed => true,
                // The guard releases a probe slot, as for a cancelled call.
                Verdict::Unknown => return result.map_err(BreakerError::Inner),
            },
        };
        guard.done = true;
        inner.finish(permit, generation, failed);
        let outcome = if failed { BreakerOutcome::Failure } else { BreakerOutcome::Success };
        inner.metrics.call(inner.name, outcome);
        result.map_err(BreakerError::Inner)
    }
}

impl Inner {
    /// The state lock; a poisoned lock still holds a consistent state (every update is a single
    /// assignment), so it is used as is rather than panicking.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves to `phase`, recording the new state. Called with the lock held so the recorded
    /// states follow the transitions in order.
    fn transition(&self, state: &mut State, phase: Phase) {
        let from = state.phase.label();
        state.phase = phase;
        state.generation = state.generation.wrapping_add(1);
        self.metrics.set_state(self.name, phase.label());
        otel::trace::client::breaker_state_changed(self.name, from, phase.label());
    }

    /// Admits a call (with its permit and the generation it was admitted in) or says which state
    /// refused it and how long to wait.
    fn admit(&self) -> Result<(Permit, u64), (BreakerState, Duration)> {
        let mut state = self.lock();
        match state.phase {
            Phase::Closed { .. } => Ok((Permit::Normal, state.generation)),
            Phase::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err((BreakerState::Open, until.saturating_duration_since(now)));
                }
                let probing = Phase::HalfOpen { probe_in_flight: true, successes: 0 };
                self.transition(&mut state, probing);
                Ok((Permit::Probe, state.generation))
            }
            Phase::HalfOpen { probe_in_flight: true, .. } => {
                Err((BreakerState::HalfOpen, self.config.open_for.min(Duration::from_secs(1))))
            }
            Phase::HalfOpen { probe_in_flight: false, successes } => {
                state.phase = Phase::HalfOpen { probe_in_flight: true, successes };
                Ok((Permit::Probe, state.generation))
            }
        }
    }

    /// Applies a finished call's result, if the breaker is still in the phase that admitted it.
    fn finish(&self, permit: Permit, generation: u64, failed: bool) {
        let mut state = self.lock();
        if state.generation != generation {
            return;
        }
        match (permit, state.phase) {
            (Permit::Normal, Phase::Closed { failures }) => {
                let failures = if failed { failures.saturating_add(1) } else { 0 };
                if failures >= self.config.failure_threshold.max(1) {
                    self.open(&mut state);
                } else {
                    state.phase = Phase::Closed { failures };
                }
            }
            (Permit::Probe, Phase::HalfOpen { successes, .. }) => {
                if failed {
                    self.open(&mut state);
                    return;
                }
                let successes = successes.saturating_add(1);
                if successes >= self.config.half_open_probes.max(1) {
                    self.transition(&mut state, Phase::Closed { failures: 0 });
                } else {
                    state.phase = Phase::HalfOpen { probe_in_flight: false, successes };
                }
            }
            _ => {}
        }
    }

    fn open(&self, state: &mut State) {
        let until = Instant::now() + self.config.open_for;
        self.transition(state, Phase::Open { until });
    }

    /// A probe that never finished (its future was dropped, or `f` panicked) frees its slot.
    fn abandon(&self, permit: Permit, generation: u64) {
        if permit != Permit::Probe {
            return;
        }
        let mut state = self.lock();
        if state.generation != generation {
            return;
        }
        if let Phase::HalfOpen { successes, .. } = state.phase {
            state.phase = Phase::HalfOpen { probe_in_flight: false, successes };
        }
    }
}

/// Releases a half-open probe slot if the call is cancelled before it finishes.
struct CallGuard<'a> {
    inner: &'a Inner,
    permit: Permit,
    generation: u64,
    done: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.inner.abandon(self.permit, self.generation);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use otel::metrics::testing::{Points, Recorder};
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio::sync::oneshot;

    const OPEN_FOR: Duration = Duration::from_secs(10);

    fn breaker(
        recorder: &Recorder,
        failure_threshold: u32,
        half_open_probes: u32,
    ) -> CircuitBreaker {
        let config = BreakerConfig { failure_threshold, open_for: OPEN_FOR, half_open_probes };
        CircuitBreaker::new(BreakerName::Postgres, config, BreakerMetrics::new(recorder.meter()))
    }

    async fn succeed(b: &CircuitBreaker) -> Result<(), BreakerError<&'static str>> {
        b.call(|| async { Ok::<(), &'static str>(()) }).await
    }

    async fn fail(b: &CircuitBreaker) -> Result<(), BreakerError<&'static str>> {
        b.call(|| async { Err::<(), _>("down") }).await
    }

    /// Starts a call through `b` that holds its slot (the half-open probe) until the returned
    /// sender answers it; returns once the call has started.
    async fn hold_probe<T: Send + 'static>(
        b: &CircuitBreaker,
    ) -> (
        tokio::task::JoinHandle<Result<T, BreakerError<&'static str>>>,
        oneshot::Sender<Result<T, &'static str>>,
    ) {
        let (started_tx, started_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel::<Result<T, &'static str>>();
        let probing = b.clone();
        let probe = tokio::spawn(async move {
            probing
                .call(|| async move {
                    started_tx.send(()).unwrap();
                    release_rx.await.unwrap()
                })
                .await
        });
        started_rx.await.unwrap();
        (probe, release_tx)
    }

    fn state_values(points: &Points) -> (f64, f64, f64) {
        let value = |s| {
            points.value(
                "orgraph.circuit_breaker.state",
                &[("circuit_breaker.name", "postgres"), ("circuit_breaker.state", s)],
            )
        };
        (value("closed"), value("open"), value("half_open"))
    }

    fn calls(points: &Points, outcome: &str) -> f64 {
        points.value(
            "orgraph.circuit_breaker.calls",
            &[("circuit_breaker.name", "postgres"), ("circuit_breaker.outcome", outcome)],
        )
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let recorder = Recorder::new();
        let b = breaker(&recorder, 3, 1);
        fail(&b).await.unwrap_err();
        fail(&b).await.unwrap_err();
        succeed(&b).await.unwrap();
        fail(&b).await.unwrap_err();
        fail(&b).await.unwrap_err();
        assert_eq!(b.state(), BreakerState::Closed, "the success reset the count");
        let err = fail(&b).await.unwrap_err();
        assert!(matches!(err, BreakerError::Inner("down")), "{err:?}");
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn open_rejects_without_calling_and_reports_retry_after() {
        let recorder = Recorder::new();
        let b = breaker(&recorder, 1, 1);
        fail(&b).await.unwrap_err();
        tokio::time::advance(Duration::from_secs(4)).await;
        let called = AtomicU32::new(0);
        let err = b
            .call(|| async {
                called.fetch_add(1, Ordering::SeqCst);
                Ok::<(), &str>(())
            })
            .await
            .unwrap_err();
        assert_eq!(called.load(Ordering::SeqCst), 0);
        match &err {
            BreakerError::Open { name, retry_after } => {
                assert_eq!(*name, BreakerName::Postgres);
                assert_eq!(*retry_after, Duration::from_secs(6));
            }
            other => panic!("expected Open, got {other:?}"),
        }
        assert!(err.is_open());
        assert_eq!(err.to_string(), "circuit breaker postgres is open; retry after 6s");
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_a_single_probe_through() {
        let recorder = Recorder::new();
        let b = breaker(&recorder, 1, 1);
        fail(&b).await.unwrap_err();
        tokio::time::advance(OPEN_FOR).await;

        let (probe, release_tx) = hold_probe::<u32>(&b).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);

        let called = AtomicU32::new(0);
        let second = b
            .call(|| async {
                called.fetch_add(1, Ordering::SeqCst);
                Ok::<(), &str>(())
            })
            .await;
        assert!(matches!(second, Err(BreakerError::Open { .. })), "{second:?}");
        assert_eq!(called.load(Ordering::SeqCst), 0, "the second call must not run");

        release_tx.send(Ok(7)).unwrap();
        assert_eq!(probe.await.unwrap().unwrap(), 7);
        assert_eq!(b.state(), BreakerState::Closed);
        succeed(&b).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn probe_success_closes_and_probe_failure_reopens() {
        let recorder = Recorder::new();
        let b = breaker(&recorder, 1, 2);
        fail(&b).await.unwrap_err();
        tokio::time::advance(OPEN_FOR).await;

        fail(&b).await.unwrap_err();
        assert_eq!(b.state(), BreakerState::Open, "a failed probe re-opens");
        let retry = fail(&b).await.unwrap_err();
        assert!(
            matches!(retry, BreakerError::Open { retry_after, .. } if retry_after == OPEN_FOR),
            "{retry:?}"
        );

        tokio::time::advance(OPEN_FOR).await;
        succeed(&b).await.unwrap();
        assert_eq!(b.state(), BreakerState::HalfOpen, "two probes are needed");
        succeed(&b).await.unwrap();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_frees_the_slot() {
        let recorder = Recorder::new();
        let b = breaker(&recorder, 1, 1);
        fail(&b).await.unwrap_err();
        tokio::time::advance(OPEN_FOR).await;
        let hung = b.call(std::future::pending::<Result<(), &str>>);
        let timed_out = tokio::time::timeout(Duration::from_secs(1), hung).await;
        assert!(timed_out.is_err());
        assert_eq!(b.state(), BreakerState::HalfOpen);
        succeed(&b).await.unwrap();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_verdict_is_neither_a_failure_nor_a_success() {
        let recorder = Recorder::new();
        let b = breaker(&recorder, 2, 1);
        let unknown = || async { Err::<(), _>("busy") };
        fail(&b).await.unwrap_err();
        for _ in 0..5 {
            b.call_judged(unknown, |_| Verdict::Unknown).await.unwrap_err();
        }
        // Not a success: the first failure still counts, and the next one opens it.
        fail(&b).await.unwrap_err();
        assert_eq!(b.state(), BreakerState::Open);
        // Not a success for a probe either: it frees the slot, the breaker stays half-open.
        tokio::time::advance(OPEN_FOR).await;
        b.call_judged(unknown, |_| Verdict::Unknown).await.unwrap_err();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        succeed(&b).await.unwrap();
        assert_eq!(b.state(), BreakerState::Closed);
        let points = recorder.collect();
        assert_eq!((calls(&points, "failure"), calls(&points, "success")), (2.0, 1.0));
    }

    #[tokio::test(start_paused = true)]
    async fn call_with_counts_only_classified_failures() {
        #[derive(Debug, PartialEq)]
        enum DbError {
            NotFound,
            Unavailable,
        }
        let recorder = Recorder::new();
        let b = breaker(&recorder, 2, 1);
        let is_failure = |e: &DbError| *e == DbError::Unavailable;
        for _ in 0..5 {
            let err = b.call_with(|| async { Err::<(), _>(DbError::NotFound) }, is_failure).await;
            assert!(matches!(err, Err(BreakerError::Inner(DbError::NotFound))));
        }
        assert_eq!(b.state(), BreakerState::Closed);
        for _ in 0..2 {
            let _ = b.call_with(|| async { Err::<(), _>(DbError::Unavailable) }, is_failure).await;
        }
        assert_eq!(b.state(), BreakerState::Open);

        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!((calls(&points, "success"), calls(&points, "failure")), (5.0, 2.0));
    }

    #[tokio::test(start_paused = true)]
    async fn records_one_hot_state_and_calls_by_outcome() {
        let recorder = Recorder::new();
        let b = breaker(&recorder, 2, 1);
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!(state_values(&points), (1.0, 0.0, 0.0), "closed is recorded at construction");

        succeed(&b).await.unwrap();
        fail(&b).await.unwrap_err();
        fail(&b).await.unwrap_err();
        fail(&b).await.unwrap_err();
        fail(&b).await.unwrap_err();
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!(state_values(&points), (0.0, 1.0, 0.0));
        assert_eq!(calls(&points, "success"), 1.0);
        assert_eq!(calls(&points, "failure"), 2.0);
        assert_eq!(calls(&points, "rejected"), 2.0);

        tokio::time::advance(OPEN_FOR).await;
        let (probe, release_tx) = hold_probe::<()>(&b).await;
        assert_eq!(state_values(&recorder.collect()), (0.0, 0.0, 1.0));

        release_tx.send(Ok(())).unwrap();
        probe.await.unwrap().unwrap();
        let points = recorder.collect();
        points.assert_conforms();
        assert_eq!(state_values(&points), (1.0, 0.0, 0.0));
        assert_eq!(calls(&points, "success"), 2.0);
        assert_eq!(points.series("orgraph.circuit_breaker.state"), 3);
    }
}
