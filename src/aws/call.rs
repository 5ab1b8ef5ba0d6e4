//! The one counted-call wrapper. Every attempt of every AWS call, of every
//! API, goes through [`Caller::call`] (or the bare [`call`]):
//!
//! 1. it waits for a token of the shared [`TokenBucket`];
//! 2. it times the attempt into `api_call_duration_seconds{operation}` and
//!    counts it into `api_calls_total{operation, outcome}`;
//! 3. on a throttle it pauses the whole bucket, and on a throttle or a
//!    transient failure it backs off with jitter and tries again, as the
//!    [`RetryPolicy`] allows; credentials, denied, not found and other
//!    errors are never retried inside a call (waiting milliseconds does not
//!    bring credentials or permissions; the next round or refresh tries
//!    again, and the health tracker says what is wrong once);
//! 4. a [`Caller`] reports the call's final result to its target's
//!    [`ApiHealth`] (`aws_transfer_exporter_target_up{target, api}` and one
//!    WARN per change of state).
//!
//! Why a shared bucket: FilterLogEvents has an account-wide quota per Region
//! (5 TPS in some Regions, 10 in most, 25 in us-east-1) shared with every
//! other caller in the account, the console included. Throttling is not an
//! error to retry harder but a signal to slow everyone down, so a throttle
//! also pauses the whole bucket, not just the caller.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::errors::{ApiError, ErrorKind};
use super::health::ApiHealth;
use super::Api;
use crate::metrics::Metrics;

/// First backoff after a throttle or transient failure; doubled per attempt.
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest single backoff: long enough to let a throttled account recover,
/// short enough that a burst of 5xx does not stall a group for minutes.
pub const BACKOFF_CAP: Duration = Duration::from_secs(10);
/// Attempts per CloudWatch Logs call before the round gives up on that
/// group (it is retried next round, nothing is lost). With throttling on
/// half the calls, ten attempts fail together about once in a thousand calls.
pub const MAX_ATTEMPTS: u32 = 10;

/// Transfer API calls per second per target. The inventory makes 1 + one
/// per server calls each refresh (every five minutes by default); ten per
/// second lists and describes a hundred servers inside the ten seconds the
/// daemon waits for the first view, and stays well under the Transfer
/// API's control-plane quota.
pub const TRANSFER_API_RATE_PER_SECOND: f64 = 10.0;

/// Rate a bucket falls back to when given an invalid one (config
/// validation rejects those; this only keeps a programming error slow).
const FALLBACK_RATE_PER_SECOND: f64 = 1.0;

/// When an attempt is tried again. One policy type for every API; the
/// attempt budgets differ because the callers retry on different clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = never retried).
    pub max_attempts: u32,
    /// Whether transient failures (5xx, timeouts, connection errors) are
    /// retried; throttles always are while attempts remain.
    pub retry_transient: bool,
}

impl RetryPolicy {
    /// CloudWatch Logs: a failed poll re-reads its whole window next round,
    /// so riding out throttles and blips inside the call is cheaper.
    pub const LOGS: RetryPolicy = RetryPolicy {
        max_attempts: MAX_ATTEMPTS,
        retry_transient: true,
    };
    /// Transfer: each inventory refresh is itself the retry of the last one,
    /// which it keeps on failure; retrying a dead endpoint inside the
    /// refresh would only hold the first view (bounded to ten seconds
    /// before polling starts) behind connect timeouts. Throttles are retried
    /// (a short, bucket-wide pause is the right answer to them).
    pub const TRANSFER: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        retry_transient: false,
    };

    /// The policy of an API.
    pub fn for_api(api: Api) -> RetryPolicy {
        match api {
            Api::Logs => RetryPolicy::LOGS,
            Api::Transfer => RetryPolicy::TRANSFER,
        }
    }

    /// Whether to try again after `attempts` attempts ended with `kind`.
    pub fn retries(&self, kind: ErrorKind, attempts: u32) -> bool {
        attempts < self.max_attempts
            && match kind {
                ErrorKind::Throttled => true,
                ErrorKind::Transient => self.retry_transient,
                _ => false,
            }
    }
}

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
            FALLBACK_RATE_PER_SECOND
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

/// Why a call gave up.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("shutting down")]
    Cancelled,
}

/// One target's use of one AWS API: its bucket, its retry policy, where its
/// calls are counted, and the health entry they report to. Cheap to clone
/// (clones share the health entry).
#[derive(Clone)]
pub struct Caller {
    bucket: Arc<TokenBucket>,
    metrics: Arc<Metrics>,
    policy: RetryPolicy,
    health: Arc<ApiHealth>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("target", &self.health.target())
            .field("api", &self.health.api())
            .field("rate", &self.bucket.rate())
            .field("policy", &self.policy)
            .finish()
    }
}

impl Caller {
    /// A caller for `target`'s use of `api`, with the API's
    /// [`RetryPolicy`], spending tokens of `bucket` (share one bucket
    /// between the targets that share a quota).
    pub fn new(target: &str, api: Api, bucket: Arc<TokenBucket>, metrics: Arc<Metrics>) -> Caller {
        let health = Arc::new(ApiHealth::new(target, api, &metrics));
        Caller {
            bucket,
            metrics,
            policy: RetryPolicy::for_api(api),
            health,
        }
    }

    /// The same caller with another retry policy.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Caller {
        self.policy = policy;
        self
    }

    /// The health entry this caller reports to (register it with a
    /// [`super::Health`] for the landing page).
    pub fn health(&self) -> &Arc<ApiHealth> {
        &self.health
    }

    pub fn bucket(&self) -> &Arc<TokenBucket> {
        &self.bucket
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Runs one API operation: every attempt counted, retried as the policy
    /// allows, the final result reported to the health entry. A cancelled
    /// call reports nothing.
    pub async fn call<T, F, Fut>(
        &self,
        operation: &'static str,
        cancel: &CancellationToken,
        attempt_fn: F,
    ) -> Result<T, CallError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let result = run(
            operation,
            &self.bucket,
            &self.metrics,
            self.policy,
            cancel,
            attempt_fn,
        )
        .await;
        match &result {
            Ok(_) => self.health.success(),
            Err(CallError::Api(err)) => self.health.failure(operation, err),
            Err(CallError::Cancelled) => {}
        }
        result
    }
}

/// [`Caller::call`] without a health entry, with [`RetryPolicy::LOGS`]: for
/// callers that have no target (benches, tools).
pub async fn call<T, F, Fut>(
    operation: &'static str,
    bucket: &TokenBucket,
    metrics: &Metrics,
    cancel: &CancellationToken,
    attempt_fn: F,
) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    run(
        operation,
        bucket,
        metrics,
        RetryPolicy::LOGS,
        cancel,
        attempt_fn,
    )
    .await
}

async fn run<T, F, Fut>(
    operation: &'static str,
    bucket: &TokenBucket,
    metrics: &Metrics,
    policy: RetryPolicy,
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
        if !policy.retries(err.kind, attempt) {
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
    use crate::metrics::Limits;

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
        let b = Arc::new(TokenBucket::new(100.0));
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

    fn metrics() -> (prometheus::Registry, Arc<Metrics>) {
        let reg = prometheus::Registry::new();
        let m = Arc::new(Metrics::new(&reg, Limits::default()));
        (reg, m)
    }

    #[tokio::test]
    async fn call_retries_throttles_and_counts_each_attempt() {
        let (_reg, m) = metrics();
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
        let (_reg, m) = metrics();
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

    /// A credentials error is one attempt, counted as `credentials`, for
    /// either API's caller, and turns that target's `target_up` to 0; the
    /// next success turns it back to 1.
    #[tokio::test]
    async fn credentials_outcome_is_counted_not_retried_and_sets_target_up() {
        let (reg, m) = metrics();
        let cancel = CancellationToken::new();
        for (api, op) in [
            (Api::Logs, "DescribeLogGroups"),
            (Api::Transfer, "ListServers"),
        ] {
            let c = Caller::new("prod", api, Arc::new(TokenBucket::new(1000.0)), m.clone());
            let mut n = 0;
            let started = Instant::now();
            let r: Result<(), CallError> = c
                .call(op, &cancel, || {
                    n += 1;
                    async {
                        Err(ApiError::new(
                            ErrorKind::Credentials,
                            "dispatch failure: the credential provider was not enabled: no credentials found in chain",
                        )
                        .with_fix(crate::aws::errors::NO_CREDENTIALS_FIX))
                    }
                })
                .await;
            assert!(
                matches!(&r, Err(CallError::Api(e)) if e.kind == ErrorKind::Credentials),
                "{api}: {r:?}"
            );
            assert_eq!(n, 1, "{api}: not retried");
            assert!(started.elapsed() < BACKOFF_BASE, "{api}: no backoff");
            assert_eq!(
                m.api_calls.with_label_values(&[op, "credentials"]).get(),
                1,
                "{api}"
            );
            let up = || m.target_up.with_label_values(&["prod", api.as_str()]).get();
            assert_eq!(up(), 0, "{api}");
            let st = c.health().status();
            let f = st.last_error.expect("failure recorded");
            assert_eq!(
                (f.operation, f.kind, f.count),
                (op, ErrorKind::Credentials, 1)
            );
            assert!(f.fix.starts_with("no AWS credentials found"), "{}", f.fix);

            c.call(op, &cancel, || async { Ok::<_, ApiError>(()) })
                .await
                .unwrap();
            assert_eq!(up(), 1, "{api}");
            assert_eq!(c.health().status().up, Some(true));
        }
        let text = crate::metrics::render(&reg);
        for api in ["logs", "transfer"] {
            assert!(
                text.contains(&format!(
                    "aws_transfer_exporter_target_up{{api=\"{api}\",target=\"prod\"}} 1"
                )),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn transfer_policy_retries_throttles_but_not_transient_failures() {
        let (_reg, m) = metrics();
        let cancel = CancellationToken::new();
        let c = Caller::new(
            "t",
            Api::Transfer,
            Arc::new(TokenBucket::new(1000.0)),
            m.clone(),
        );
        let mut n = 0;
        let r: Result<(), CallError> = c
            .call("DescribeServer", &cancel, || {
                n += 1;
                async { Err(ApiError::new(ErrorKind::Transient, "500")) }
            })
            .await;
        assert!(r.is_err());
        assert_eq!(n, 1);
        let mut n = 0;
        let r: Result<u8, CallError> = c
            .call("ListServers", &cancel, || {
                n += 1;
                let k = n;
                async move {
                    if k == 1 {
                        Err(ApiError::new(ErrorKind::Throttled, "slow down"))
                    } else {
                        Ok(1)
                    }
                }
            })
            .await;
        assert_eq!(r.unwrap(), 1);
        assert_eq!(n, 2);
    }

    #[test]
    fn retry_policy_table() {
        use ErrorKind::*;
        let table: &[(RetryPolicy, ErrorKind, u32, bool)] = &[
            (RetryPolicy::LOGS, Throttled, 1, true),
            (RetryPolicy::LOGS, Transient, 9, true),
            (RetryPolicy::LOGS, Transient, 10, false),
            (RetryPolicy::LOGS, Credentials, 1, false),
            (RetryPolicy::LOGS, Denied, 1, false),
            (RetryPolicy::LOGS, NotFound, 1, false),
            (RetryPolicy::LOGS, Other, 1, false),
            (RetryPolicy::TRANSFER, Throttled, 2, true),
            (RetryPolicy::TRANSFER, Throttled, 3, false),
            (RetryPolicy::TRANSFER, Transient, 1, false),
            (RetryPolicy::TRANSFER, Credentials, 1, false),
        ];
        for (p, kind, attempts, want) in table {
            assert_eq!(
                p.retries(*kind, *attempts),
                *want,
                "{p:?} {kind} after {attempts}"
            );
        }
    }
}
