//! Whether each target can use each AWS API, said once and plainly.
//!
//! One [`ApiHealth`] per target and API (owned by that target's
//! [`super::Caller`]) keeps `aws_transfer_exporter_target_up{target, api}`
//! (1 when the last call succeeded, 0 when it failed), the current or last
//! failure (what failed, since when, how many times, the fix), and logs one
//! WARN per change of state: up → failing, failing → recovered, and a
//! failing entry whose kind of failure changes (credentials → denied is
//! news). Repeats of the same failure are counted, not logged, and a target
//! flapping between success and the same failure is told once per
//! [`REPEAT_WARN_AFTER`].
//!
//! A `not_found` answer counts as up: the API answered with working
//! credentials and permissions; the missing resource is the poller's or the
//! inventory's business, not the target's.
//!
//! [`Health`] collects the entries of every target for the landing page.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use prometheus::IntGauge;

use super::errors::{ApiError, ErrorKind};
use super::Api;
use crate::metrics::Metrics;

/// A failure as the landing page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The operation of the first failure of this streak.
    pub operation: &'static str,
    pub kind: ErrorKind,
    /// The latest message (Display of the SDK error chain).
    pub message: String,
    /// What to do about it.
    pub fix: &'static str,
    /// First failure of this streak.
    pub since: SystemTime,
    /// Failed calls in this streak.
    pub count: u64,
    /// When the streak ended (a later call succeeded); `None` while failing.
    pub recovered_at: Option<SystemTime>,
}

/// One target's use of one API, as the landing page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiStatus {
    pub target: String,
    pub api: Api,
    /// `None` before the first call.
    pub up: Option<bool>,
    /// The current failure streak, or the last one (with `recovered_at`).
    pub last_error: Option<Failure>,
}

#[derive(Debug, Default)]
struct State {
    up: Option<bool>,
    last_error: Option<Failure>,
    /// The kind and time of the last "failing" WARN.
    last_warned: Option<(ErrorKind, Instant)>,
    /// Whether the current streak's start was logged (so is its end).
    streak_logged: bool,
}

/// A target that keeps failing the same way between successes (one log
/// group denied among many, say) is told about once per this span, not per
/// round: the gauge and the counters still show every call.
pub const REPEAT_WARN_AFTER: Duration = Duration::from_secs(10 * 60);

/// The health of one target's use of one API.
#[derive(Debug)]
pub struct ApiHealth {
    target: String,
    api: Api,
    gauge: IntGauge,
    state: Mutex<State>,
}

impl ApiHealth {
    pub fn new(target: &str, api: Api, metrics: &Metrics) -> ApiHealth {
        ApiHealth {
            target: target.to_owned(),
            api,
            gauge: metrics.target_up.with_label_values(&[target, api.as_str()]),
            state: Mutex::new(State::default()),
        }
    }

    pub fn target(&self) -> &str {
        &self.target
    }

    pub fn api(&self) -> Api {
        self.api
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call succeeded.
    pub fn success(&self) {
        self.gauge.set(1);
        let mut st = self.lock();
        let was_failing = st.up == Some(false);
        st.up = Some(true);
        if !was_failing {
            return;
        }
        let logged = std::mem::take(&mut st.streak_logged);
        if let Some(f) = st.last_error.as_mut() {
            let now = SystemTime::now();
            f.recovered_at = Some(now);
            if !logged {
                return;
            }
            let failing_for_s = now.duration_since(f.since).map_or(0.0, |d| d.as_secs_f64());
            tracing::warn!(
                target_name = %self.target,
                api = %self.api,
                failed_calls = f.count,
                failing_for_s,
                "AWS API calls recovered"
            );
        }
    }

    /// A call failed (after the retries its policy allows).
    pub fn failure(&self, operation: &'static str, err: &ApiError) {
        if err.kind == ErrorKind::NotFound {
            return self.success();
        }
        self.gauge.set(0);
        let mut st = self.lock();
        let now = SystemTime::now();
        let failing = st.up == Some(false);
        let news = match st.last_error.as_mut() {
            Some(f) if failing && f.kind == err.kind => {
                f.count += 1;
                f.message.clone_from(&err.message);
                false
            }
            // Up before, or failing for another reason: a new streak.
            _ => {
                st.last_error = Some(new_failure(operation, err, now));
                true
            }
        };
        st.up = Some(false);
        let repeat = st
            .last_warned
            .is_some_and(|(k, at)| k == err.kind && at.elapsed() < REPEAT_WARN_AFTER);
        if news && !repeat {
            st.last_warned = Some((err.kind, Instant::now()));
            st.streak_logged = true;
            tracing::warn!(
                target_name = %self.target,
                api = %self.api,
                operation,
                outcome = %err.kind,
                error = %err.message,
                fix = err.fix(),
                "AWS API calls failing"
            );
        }
    }

    /// What the landing page shows.
    pub fn status(&self) -> ApiStatus {
        let st = self.lock();
        ApiStatus {
            target: self.target.clone(),
            api: self.api,
            up: st.up,
            last_error: st.last_error.clone(),
        }
    }
}

fn new_failure(operation: &'static str, err: &ApiError, now: SystemTime) -> Failure {
    Failure {
        operation,
        kind: err.kind,
        message: err.message.clone(),
        fix: err.fix(),
        since: now,
        count: 1,
        recovered_at: None,
    }
}

/// The health entries of every target and API, for the landing page.
#[derive(Debug, Default)]
pub struct Health {
    entries: Mutex<Vec<Arc<ApiHealth>>>,
}

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    /// Adds an entry (e.g. `caller.health().clone()`), replacing the one of
    /// the same target and API (a reload starts new callers).
    pub fn register(&self, entry: Arc<ApiHealth>) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|e| !(e.target == entry.target && e.api == entry.api));
        entries.push(entry);
    }

    /// Drops every entry of `target` (removed by a reload).
    pub fn forget_target(&self, target: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|e| e.target != target);
    }

    /// Every entry's status, sorted by target then API.
    pub fn status(&self) -> Vec<ApiStatus> {
        let mut out: Vec<ApiStatus> = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|e| e.status())
            .collect();
        out.sort_by(|a, b| (&a.target, a.api).cmp(&(&b.target, b.api)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Limits;

    /// Counts the WARN events this module logs, by message.
    #[derive(Clone, Default)]
    struct Warns(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warns {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if *event.metadata().level() != tracing::Level::WARN {
                return;
            }
            struct V(String, String);
            impl tracing::field::Visit for V {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    if f.name() == "message" {
                        self.0 = format!("{v:?}");
                    } else {
                        self.1.push_str(&format!(" {}={v:?}", f.name()));
                    }
                }
                fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                    self.1.push_str(&format!(" {}={v}", f.name()));
                }
            }
            let mut v = V(String::new(), String::new());
            event.record(&mut v);
            self.0.lock().unwrap().push(format!("{}{}", v.0, v.1));
        }
    }

    #[test]
    fn one_warn_per_change_of_state() {
        use tracing_subscriber::layer::SubscriberExt;
        let warns = Warns::default();
        let subscriber = tracing_subscriber::registry().with(warns.clone());
        let reg = prometheus::Registry::new();
        let m = Metrics::new(&reg, Limits::default());
        let h = ApiHealth::new("prod", Api::Transfer, &m);
        let creds = ApiError::new(ErrorKind::Credentials, "no credentials found in chain")
            .with_fix(crate::aws::errors::NO_CREDENTIALS_FIX);
        let denied = ApiError::new(ErrorKind::Denied, "AccessDeniedException: no");
        tracing::subscriber::with_default(subscriber, || {
            h.success(); // up from the start: nothing to say
            h.failure("ListServers", &creds);
            h.failure("ListServers", &creds);
            h.failure("DescribeServer", &creds);
            h.failure("ListServers", &denied); // failing for another reason
            h.failure("ListServers", &denied);
            h.success();
            h.success();
            h.failure("ListServers", &ApiError::new(ErrorKind::NotFound, "gone"));
            // Flapping on a failure already told: counted, not told again.
            h.failure("ListServers", &denied);
            h.success();
            h.failure("ListServers", &denied);
        });
        let got = warns.0.lock().unwrap().clone();
        let msgs: Vec<&str> = got
            .iter()
            .map(|l| l.split(' ').take(4).collect::<Vec<_>>().join(" "))
            .map(|s| {
                if s.contains("recovered") {
                    "recovered"
                } else {
                    "failing"
                }
            })
            .collect();
        assert_eq!(msgs, ["failing", "failing", "recovered"], "{got:#?}");
        assert!(got[0].contains("outcome=credentials"), "{}", got[0]);
        assert!(
            got[0].contains("fix=no AWS credentials found"),
            "{}",
            got[0]
        );
        assert!(!got[0].contains("CredentialsNotLoaded"), "{}", got[0]);
        let st = h.status();
        assert_eq!(st.up, Some(false));
        let f = st.last_error.unwrap();
        assert_eq!((f.kind, f.count), (ErrorKind::Denied, 1));
        assert!(f.recovered_at.is_none());
        assert_eq!(
            m.target_up.with_label_values(&["prod", "transfer"]).get(),
            0
        );
    }

    #[test]
    fn registry_lists_every_entry_sorted() {
        let reg = prometheus::Registry::new();
        let m = Metrics::new(&reg, Limits::default());
        let health = Health::new();
        for (t, api) in [("b", Api::Logs), ("a", Api::Transfer), ("a", Api::Logs)] {
            health.register(Arc::new(ApiHealth::new(t, api, &m)));
        }
        let got: Vec<(String, Api, Option<bool>)> = health
            .status()
            .into_iter()
            .map(|s| (s.target, s.api, s.up))
            .collect();
        assert_eq!(
            got,
            [
                ("a".to_owned(), Api::Logs, None),
                ("a".to_owned(), Api::Transfer, None),
                ("b".to_owned(), Api::Logs, None),
            ]
        );
    }
}
