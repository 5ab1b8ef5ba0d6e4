//! The API budget: one [`TokenBucket`] per account+Region, shared by every
//! log group of the targets that use it, and [`call`], which spends a token
//! per attempt, times and counts each attempt, and backs off with jitter on
//! throttling and transient failures.
//!
//! Why a shared bucket: FilterLogEvents has an account-wide quota per Region
//! (5 TPS in some Regions, 10 in most, 25 in us-east-1) shared with every
//! other caller in the account, the console included. Throttling is not an
//! error to retry harder but a signal to slow everyone down, so a throttle
//! also pauses the whole bucket, not just the caller.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::cloudwatch::{ApiError, ErrorKind};
use crate::metrics::Metrics;

/// First backoff after a throttle or transient failure; doubled per attempt.
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest single backoff: long enough to let a throttled account recover,
/// short enough that a burst of 5xx does not stall a group for minutes.
pub const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// Attempts per call before the round gives up on that group (it is retried
/// next round, nothing is lost). With throttling on half the calls, ten
/// attempts fail together about once in a thousand calls.
pub const MAX_ATTEMPTS: u32 = 10;

/// A token bucket in its "virtual scheduling" form (GCRA): each reservation
/// moves a theoretical arrival time forward by `1/rate`. Burst is one token,
/// so over any span `t` at most `1 + t * rate` calls start: the configured
/// rate is a hard ceiling, which is what a shared quota needs.
#[derive(Debug)]
pub struct TokenBucket {
    interval: Duration,
    tat: Mutex<Instant>,
    granted: AtomicU64,
}

impl TokenBucket {
    /// A bucket admitting `rate_per_second` calls per second (> 0).
    pub fn new(rate_per_second: f64) -> TokenBucket {
        let rate = if rate_per_second.is_finite() && rate_per_second > 0.0 {
            rate_per_second
        } else {
            super::DEFAULT_API_RATE_PER_SECOND
        };
        TokenBucket {
            interval: Duration::from_secs_f64(1.0 / rate),
            tat: Mutex::new(Instant::now()),
            granted: AtomicU64::new(0),
        }
    }

    /// Calls per second this bucket admits.
    pub fn rate(&self) -> f64 {
        1.0 / self.interval.as_secs_f64()
    }

    /// Reserves the next slot and returns when it starts.
    fn reserve(&self) -> Instant {
        let now = Instant::now();
        let mut tat = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        let at = (*tat).max(now);
        *tat = at + self.interval;
        self.granted.fetch_add(1, Ordering::Relaxed);
        at
    }

    /// Waits for a token. Reservations are served in the order they were
    /// asked for, so no group starves.
    pub async fn acquire(&self) {
        let at = self.reserve();
        tokio::time::sleep_until(at.into()).await;
    }

    /// No token is granted before `now + d` (after a throttle).
    pub fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut tat = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        if *tat < until {
            *tat = until;
        }
    }

    /// Tokens granted so far (for tests and benches).
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }
}

/// Backoff before attempt `attempt + 1` ("equal jitter": half fixed, half
/// random, so retries spread out but never hammer immediately).
pub fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(16));
    let d = exp.min(BACKOFF_CAP);
    let half = d / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
    half + Duration::from_millis(jitter)
}

/// Why [`call`] gave up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("shutting down")]
    Cancelled,
}

/// Runs one API operation under the budget: each attempt takes a token, is
/// timed into `api_call_duration{operation}` and counted into
/// `api_calls{operation, outcome}`; throttles pause the shared bucket and
/// every retryable failure backs off with jitter, up to [`MAX_ATTEMPTS`].
pub async fn call<T, F, Fut>(
    operation: &'static str,
    bucket: &TokenBucket,
    metrics: &Metrics,
    cancel: &CancellationToken,
    mut attempt_fn: F,
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut attempt = 0;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Err(CallError::Cancelled),
            _ = bucket.acquire() => {}
        }
        let started = Instant::now();
        let result = tokio::select! {
            _ = cancel.cancelled() => return Err(CallError::Cancelled),
            r = attempt_fn() => r,
        };
        metrics
            .api_call_duration
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        let err = match result {
            Ok(v) => {
                metrics
                    .api_calls
                    .with_label_values(&[operation, "success"])
                    .inc();
                return Ok(v);
            }
            Err(e) => e,
        };
        metrics
            .api_calls
            .with_label_values(&[operation, err.kind.as_str()])
            .inc();
        attempt += 1;
        if !err.kind.is_retryable() || attempt >= MAX_ATTEMPTS {
            return Err(CallError::Api(err));
        }
        let wait = backoff(attempt - 1);
        if err.kind == ErrorKind::Throttled {
            bucket.pause(wait);
        }
        tracing::debug!(operation, attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying AWS call");
        tokio::select! {
            _ = cancel.cancelled() => return Err(CallError::Cancelled),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        for attempt in 0..20 {
            let exp = BACKOFF_BASE
                .saturating_mul(1 << attempt.min(16))
                .min(BACKOFF_CAP);
            for _ in 0..50 {
                let d = backoff(attempt);
                assert!(
                    d >= exp / 2 && d <= exp,
                    "attempt {attempt}: {d:?} vs {exp:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn bucket_never_exceeds_its_rate() {
        let b = std::sync::Arc::new(TokenBucket::new(100.0));
        let start = Instant::now();
        // 21 tokens at 100/s from 3 concurrent callers: the first is
        // immediate, the rest 10 ms apart, so at least 200 ms in all.
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..7 {
                    b.acquire().await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(
            start.elapsed() >= Duration::from_millis(199),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(b.granted(), 21);
    }

    #[tokio::test]
    async fn pause_delays_everyone() {
        let b = TokenBucket::new(1000.0);
        b.acquire().await;
        b.pause(Duration::from_millis(150));
        let start = Instant::now();
        b.acquire().await;
        assert!(
            start.elapsed() >= Duration::from_millis(149),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn call_retries_throttles_and_counts_each_attempt() {
        let reg = prometheus::Registry::new();
        let m = Metrics::new(&reg, Default::default());
        let b = TokenBucket::new(100.0);
        let cancel = CancellationToken::new();
        let mut n = 0;
        let r: Result<u32, CallError> = call("FilterLogEvents", &b, &m, &cancel, || {
            n += 1;
            let k = n;
            async move {
                match k {
                    1 => Err(ApiError::new(ErrorKind::Throttled, "Rate exceeded")),
                    2 => Err(ApiError::new(ErrorKind::Transient, "503")),
                    _ => Ok(7),
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        let get = |o: &str| m.api_calls.with_label_values(&["FilterLogEvents", o]).get();
        assert_eq!(
            (get("throttled"), get("transient"), get("success")),
            (1, 1, 1)
        );
    }

    #[tokio::test]
    async fn call_does_not_retry_denied() {
        let reg = prometheus::Registry::new();
        let m = Metrics::new(&reg, Default::default());
        let b = TokenBucket::new(100.0);
        let cancel = CancellationToken::new();
        let mut n = 0;
        let r: Result<(), CallError> = call("DescribeLogGroups", &b, &m, &cancel, || {
            n += 1;
            async { Err(ApiError::new(ErrorKind::Denied, "no")) }
        })
        .await;
        assert!(matches!(
            r,
            Err(CallError::Api(ApiError {
                kind: ErrorKind::Denied,
                ..
            }))
        ));
        assert_eq!(n, 1);
    }
}
