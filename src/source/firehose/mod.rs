//! The Firehose push source: an HTTP endpoint for Amazon Data Firehose
//! (protocol 1.0) carrying CloudWatch Logs subscription records, so the
//! exporter can be one of Firehose's destinations instead of polling
//! FilterLogEvents against the account's small shared quota.
//!
//! ```text
//! CloudWatch Logs ─ subscription filter ─▶ Firehose ─ HTTPS POST /firehose ─▶ Receiver
//!     auth (auth.rs) → size cap → decode (decode.rs) → dedup (dedup.rs)
//!     → EventSink::submit (the ingest boundary) → 200 only after it returned
//! ```
//!
//! A self-contained component: [`FirehoseConfig`] (checked by
//! [`FirehoseConfig::validate`]), [`Receiver::new`], and either [`serve`]
//! on its own listener or [`Receiver::handle`] mounted by a web edge.
//! [`Receiver::status`] is for the landing page; [`metrics::FirehoseMetrics`]
//! registers the self-metrics on a given registry. The delivery contract and
//! its pitfalls are in `reference/firehose-http-endpoint.md`; the choices:
//! undecodable records are counted and answered 200 (a retry cannot fix
//! them), transient conditions 503, 413 only for a body over the cap.

pub mod auth;
pub mod decode;
pub mod dedup;
pub mod errors;
pub mod handler;
pub mod metrics;
pub mod models;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::errors::{FirehoseError, Reject};
pub use self::handler::Ack;
pub use self::metrics::FirehoseMetrics;

use self::auth::Authenticator;
use self::decode::Undecodable;
use self::dedup::{EventIds, RequestIds};
use crate::event::RawEvent;
use crate::persist::{Persister, Progress, Saved};
use crate::pipeline::Pipeline;

/// Where Firehose delivers.
pub const PUSH_PATH: &str = "/firehose";
/// Load-balancer health checks: answered 200 and never counted as a bad
/// request (pitfall 8: health checks on the push path look like errors).
pub const HEALTH_PATH: &str = "/-/healthy";

/// Firehose's own maximum buffer size: a smaller cap would answer 413 to
/// legitimate requests, which Firehose drops without retry.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Decompressed subscription JSON per request. CloudWatch Logs payloads
/// compress 5–20×, so a full 64 MiB request of gzip records can exceed
/// this; at low-latency buffering (1–5 MiB) it never will. Records past the
/// budget are counted as undecodable (and logged), never silently dropped;
/// raise it (memory: about this much per request in flight) if that shows.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: usize = 256 * 1024 * 1024;

/// How long an acknowledged request id is remembered: Firehose's default
/// retry duration. Streams configured with a longer retry duration (up to
/// 7,200 s) should raise it to match.
pub const DEFAULT_REQUEST_ID_TTL: Duration = Duration::from_secs(300);

/// Acknowledged request ids remembered at most (~100 bytes each). Firehose
/// sends one request per buffer interval per shard: even one per 10 ms for
/// five minutes is 30,000.
pub const DEFAULT_MAX_REQUEST_IDS: usize = 100_000;

/// Event ids remembered (~30 bytes each, ~14 MiB): five minutes of 1,600
/// events/s, the window in which Firehose re-sends. Older duplicates are
/// not recognised (and would be counted again).
pub const DEFAULT_MAX_EVENT_IDS: usize = 500_000;

/// Requests processed at once. Each holds its body and decoded events in
/// memory (up to the caps above); Firehose sends a few in parallel per
/// stream, and a 503 beyond this is retried.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 8;

pub use crate::web::listener::HEADER_READ_TIMEOUT;

/// How long a body may take to arrive: Firehose waits 3 minutes for an
/// answer, then retries anyway.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(180);

/// Undecodable records written to the log per minute; the rest are only counted.
const UNDECODABLE_SAMPLES_PER_MINUTE: u32 = 5;

/// The receiver's configuration (YAML `firehose:`, flags `--firehose.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct FirehoseConfig {
    /// `firehose.listen_address`: the push listener (off when the section is absent).
    pub listen_address: SocketAddr,
    /// `firehose.access_key_file`: one accepted key per non-empty line.
    pub access_key_file: Option<PathBuf>,
    /// `firehose.allow_unauthenticated`: start without a key file (loud warning).
    pub allow_unauthenticated: bool,
    pub max_body_bytes: usize,
    pub max_decompressed_bytes: usize,
    pub request_id_ttl: Duration,
    pub max_request_ids: usize,
    pub max_event_ids: usize,
    pub max_concurrent_requests: usize,
}

impl FirehoseConfig {
    /// Defaults for everything but where to listen.
    pub fn new(listen_address: SocketAddr) -> FirehoseConfig {
        FirehoseConfig {
            listen_address,
            access_key_file: None,
            allow_unauthenticated: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            request_id_ttl: DEFAULT_REQUEST_ID_TTL,
            max_request_ids: DEFAULT_MAX_REQUEST_IDS,
            max_event_ids: DEFAULT_MAX_EVENT_IDS,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
        }
    }

    /// Every problem at once, for the config checker.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.access_key_file.is_none() && !self.allow_unauthenticated {
            p.push(FirehoseError::NoAccessKey.to_string());
        }
        if self.max_body_bytes == 0 {
            p.push("firehose.max_body_bytes must be positive".to_owned());
        }
        if self.max_body_bytes < DEFAULT_MAX_BODY_BYTES {
            // Allowed (memory-constrained hosts), but Firehose drops 413s.
            tracing::debug!("firehose.max_body_bytes below Firehose's 64 MiB maximum");
        }
        if self.max_decompressed_bytes == 0 {
            p.push("firehose.max_decompressed_bytes must be positive".to_owned());
        }
        if self.request_id_ttl.is_zero() {
            p.push(
                "firehose.request_id_ttl must be positive (Firehose retries for 300 s by default)"
                    .to_owned(),
            );
        }
        for (name, v) in [
            ("max_request_ids", self.max_request_ids),
            ("max_event_ids", self.max_event_ids),
            ("max_concurrent_requests", self.max_concurrent_requests),
        ] {
            if v == 0 {
                p.push(format!("firehose.{name} must be positive"));
            }
        }
        p
    }
}

pub use crate::ingest::EventSink;

/// An [`EventSink`] straight into a pipeline, for tests and benchmarks of
/// the receiver alone (the daemon hands it the ingest boundary).
pub struct PipelineSink(pub Arc<Mutex<Pipeline>>);

impl EventSink for PipelineSink {
    fn submit(&self, events: &[RawEvent]) {
        let mut p = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for e in events {
            p.process(e);
        }
    }
}

/// What the landing page shows about the push listener.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FirehoseStatus {
    /// Where the listener is bound (the configured address until [`serve`] bound it).
    pub listen_address: SocketAddr,
    /// Last `POST /firehose`, Unix milliseconds.
    pub last_request_ms: Option<i64>,
    /// The `requests_total` outcome of that request (`ok`, `unauthorized`, …).
    pub last_outcome: Option<&'static str>,
    /// Requests answered since the start, per outcome (every outcome of
    /// [`metrics::REQUEST_OUTCOMES`], in that order).
    pub requests: Vec<(&'static str, u64)>,
    /// The last rejected request or undecodable record, with its time (Unix ms).
    pub last_error: Option<(i64, String)>,
    /// Set when requests are accepted without an access key.
    pub warning: Option<&'static str>,
}

const UNAUTHENTICATED_WARNING: &str =
    "the Firehose receiver accepts requests WITHOUT an access key (firehose.allow_unauthenticated): anyone who can reach it can add events";

#[derive(Debug)]
struct StatusInner {
    listen_address: SocketAddr,
    last_request_ms: Option<i64>,
    last_outcome: Option<&'static str>,
    /// `requests_total` per outcome of [`metrics::REQUEST_OUTCOMES`].
    counters: Vec<prometheus::IntCounter>,
    /// Their values when the last request was noted.
    seen: Vec<u64>,
    last_error: Option<(i64, String)>,
}

impl StatusInner {
    fn counts(&self) -> Vec<u64> {
        self.counters.iter().map(|c| c.get()).collect()
    }
}

struct Sample {
    window: Instant,
    logged: u32,
    suppressed: u64,
}

pub(crate) struct Inner {
    cfg: FirehoseConfig,
    auth: Authenticator,
    sink: Arc<dyn EventSink>,
    metrics: FirehoseMetrics,
    requests: Mutex<RequestIds>,
    events: Mutex<EventIds>,
    /// Held (read) from a request's submit to the moment its id is marked
    /// done, and (write) by a state snapshot, so that a saved state never
    /// holds a request's counts without its id, or the id without them.
    pub(crate) commit: RwLock<()>,
    /// Where acknowledged requests are made durable first (the daemon's);
    /// unset in receiver-only tests and benches.
    pub(crate) persist: OnceLock<Arc<Persister>>,
    permits: Arc<Semaphore>,
    draining: AtomicBool,
    status: Mutex<StatusInner>,
    sample: Mutex<Sample>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) use crate::clock::now_ms;

impl Inner {
    fn lock_requests(&self) -> MutexGuard<'_, RequestIds> {
        lock(&self.requests)
    }

    fn lock_events(&self) -> MutexGuard<'_, EventIds> {
        lock(&self.events)
    }

    /// Called once per answered `POST /firehose`, after its outcome was
    /// counted: the outcome whose counter moved since the previous call is
    /// this request's (of requests answered at the same moment, one of
    /// theirs), so the handler needs to say nothing more than "answered".
    fn note_request(&self) {
        let mut st = lock(&self.status);
        let counts = st.counts();
        st.last_request_ms = Some(now_ms());
        if let Some(i) =
            (0..counts.len()).find(|&i| counts[i] > st.seen.get(i).copied().unwrap_or(0))
        {
            st.last_outcome = Some(metrics::REQUEST_OUTCOMES[i]);
        }
        st.seen = counts;
    }

    fn note_error(&self, msg: &str) {
        lock(&self.status).last_error = Some((now_ms(), msg.to_owned()));
    }

    /// Logs an undecodable record, at most a few per minute.
    fn sample_undecodable(
        &self,
        request_id: &str,
        source_arn: &str,
        index: usize,
        why: Undecodable,
        base64_len: usize,
    ) {
        self.note_error(&format!("undecodable record: {}", why.as_str()));
        let mut s = lock(&self.sample);
        if s.window.elapsed() >= Duration::from_secs(60) {
            if s.suppressed > 0 {
                tracing::warn!(
                    suppressed = s.suppressed,
                    "more undecodable Firehose records in the last minute were counted but not logged"
                );
            }
            *s = Sample {
                window: Instant::now(),
                logged: 0,
                suppressed: 0,
            };
        }
        if s.logged < UNDECODABLE_SAMPLES_PER_MINUTE {
            s.logged += 1;
            tracing::warn!(
                request_id = %request_id,
                source_arn = %source_arn,
                record = index,
                base64_len,
                reason = why.as_str(),
                "undecodable Firehose record: counted in aws_transfer_exporter_firehose_records_total{{outcome=\"undecodable\"}} and acknowledged (a retry cannot fix it)"
            );
        } else {
            s.suppressed += 1;
        }
    }
}

/// Slot of the receiver's progress in the state file.
pub const FIREHOSE_SLOT: &str = "firehose";

/// What the state file holds for the receiver: the acknowledged request
/// ids still within their ttl (bounded by `max_request_ids`). Event ids are
/// not saved: after a restart, only a retry with the same request id is
/// recognized.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedReceiver {
    /// Request id -> when it was acknowledged (Unix ms). An object, so a
    /// state write can carry only the ids acknowledged or forgotten since
    /// the last one (a merge patch).
    #[serde(default)]
    acked: std::collections::BTreeMap<String, i64>,
    /// The first layout (a list). Read, never written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    request_ids: Vec<SavedRequestId>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SavedRequestId {
    id: String,
    acknowledged_at_ms: i64,
}

/// The receiver's part of every state snapshot.
struct SavedRequests {
    rx: std::sync::Weak<Inner>,
    /// The slot as loaded cannot be patched (unreadable, or the first
    /// layout): the first write takes it whole.
    whole_first: AtomicBool,
    /// The ids as the last write saved them (id -> acknowledged at).
    last: Mutex<HashMap<String, i64>>,
}

impl SavedRequests {
    /// The finished request ids now, with when they were acknowledged,
    /// read with counting committed (nothing half-recorded).
    fn read_under(&self, inner: &mut dyn FnMut()) -> Option<Vec<(String, i64)>> {
        let Some(rx) = self.rx.upgrade() else {
            inner();
            return None;
        };
        let commit = rx.commit.write().unwrap_or_else(|e| e.into_inner());
        inner();
        let (now, now_wall) = (Instant::now(), now_ms());
        let ids = rx
            .lock_requests()
            .export(now)
            .into_iter()
            .map(|(id, age)| (id, now_wall - age.as_millis() as i64))
            .collect();
        drop(commit);
        Some(ids)
    }
}

/// The merge patch from the ids `last` saved to the ids `now`: ids
/// acknowledged since with their time, ids forgotten since as `null`;
/// `last` becomes `now`.
fn acked_patch(last: &mut HashMap<String, i64>, now: Vec<(String, i64)>) -> serde_json::Value {
    let mut acked = serde_json::Map::new();
    let mut next = HashMap::with_capacity(now.len());
    for (id, at) in now {
        // A kept id's time is read again from its age: it may differ by a
        // millisecond of rounding, which is not a change.
        let at = match last.remove(&id) {
            Some(saved) => saved,
            None => {
                acked.insert(id.clone(), serde_json::Value::from(at));
                at
            }
        };
        next.insert(id, at);
    }
    for (gone, _) in last.drain() {
        acked.insert(gone, serde_json::Value::Null);
    }
    *last = next;
    serde_json::json!({ "acked": acked })
}

impl Progress for SavedRequests {
    fn slot(&self) -> &'static str {
        FIREHOSE_SLOT
    }

    fn save_under(&self, inner: &mut dyn FnMut()) -> serde_json::Value {
        let Some(ids) = self.read_under(inner) else {
            return serde_json::Value::Null;
        };
        let mut last = lock(&self.last);
        *last = ids.iter().cloned().collect();
        self.whole_first.store(false, Ordering::Release);
        serde_json::to_value(SavedReceiver {
            acked: ids.into_iter().collect(),
            request_ids: Vec::new(),
        })
        .unwrap_or(serde_json::Value::Null)
    }

    fn save_changes_under(&self, inner: &mut dyn FnMut()) -> Saved {
        if self.whole_first.load(Ordering::Acquire) {
            return Saved::Whole(self.save_under(inner));
        }
        match self.read_under(inner) {
            Some(ids) => Saved::Patch(acked_patch(&mut lock(&self.last), ids)),
            None => Saved::Whole(serde_json::Value::Null),
        }
    }
}

#[cfg(test)]
mod saved_tests {
    use super::*;

    /// Patches carry only the ids acknowledged or forgotten since the last
    /// write; merged over the whole value they give the ids now.
    #[test]
    fn acked_patches_merge_into_the_ids_now() {
        let ids = |v: &[(&str, i64)]| -> Vec<(String, i64)> {
            v.iter().map(|(i, t)| (i.to_string(), *t)).collect()
        };
        let mut last = HashMap::new();
        let first = ids(&[("a", 10), ("b", 20)]);
        last.extend(first.iter().cloned());
        let mut saved = serde_json::to_value(SavedReceiver {
            acked: first.into_iter().collect(),
            request_ids: Vec::new(),
        })
        .unwrap();
        // "a" forgotten, "b" kept (read back a millisecond off), "c" new.
        let patch = acked_patch(&mut last, ids(&[("b", 21), ("c", 30)]));
        assert_eq!(patch, serde_json::json!({"acked": {"a": null, "c": 30}}));
        crate::state::journal::merge_patch(&mut saved, patch);
        let back: SavedReceiver = serde_json::from_value(saved).unwrap();
        assert_eq!(
            back.acked.into_iter().collect::<Vec<_>>(),
            ids(&[("b", 20), ("c", 30)])
        );
        let quiet = acked_patch(&mut last, ids(&[("b", 20), ("c", 30)]));
        assert_eq!(quiet, serde_json::json!({"acked": {}}));
    }

    /// State files of the first layout (a list of ids) still load.
    #[test]
    fn the_first_layout_loads() {
        let old = serde_json::json!({"request_ids": [{"id": "r1", "acknowledged_at_ms": 5}]});
        let s: SavedReceiver = serde_json::from_value(old).unwrap();
        assert!(s.acked.is_empty());
        assert_eq!(s.request_ids[0].id, "r1");
    }
}

/// The receiver: cheap to clone (one shared state).
#[derive(Clone)]
pub struct Receiver {
    pub(crate) inner: Arc<Inner>,
}

impl Receiver {
    /// Loads the access keys (or refuses to start without them unless
    /// `allow_unauthenticated`), and sets up the bounded dedup memories.
    pub fn new(
        cfg: FirehoseConfig,
        sink: Arc<dyn EventSink>,
        metrics: FirehoseMetrics,
    ) -> Result<Receiver, FirehoseError> {
        let problems = cfg.validate();
        if !problems.is_empty() {
            if cfg.access_key_file.is_none() && !cfg.allow_unauthenticated {
                return Err(FirehoseError::NoAccessKey);
            }
            return Err(FirehoseError::Config(problems.join("; ")));
        }
        let auth = Authenticator::new(cfg.access_key_file.as_deref(), cfg.allow_unauthenticated)?;
        if auth.is_open() {
            tracing::warn!(listen_address = %cfg.listen_address, "{UNAUTHENTICATED_WARNING}");
        }
        let counters: Vec<prometheus::IntCounter> = metrics::REQUEST_OUTCOMES
            .iter()
            .map(|o| metrics.requests.with_label_values(&[*o]))
            .collect();
        let seen = counters.iter().map(|c| c.get()).collect();
        Ok(Receiver {
            inner: Arc::new(Inner {
                auth,
                sink,
                metrics,
                requests: Mutex::new(RequestIds::new(cfg.request_id_ttl, cfg.max_request_ids)),
                events: Mutex::new(EventIds::new(cfg.max_event_ids)),
                commit: RwLock::new(()),
                persist: OnceLock::new(),
                permits: Arc::new(Semaphore::new(cfg.max_concurrent_requests)),
                draining: AtomicBool::new(false),
                status: Mutex::new(StatusInner {
                    listen_address: cfg.listen_address,
                    last_request_ms: None,
                    last_outcome: None,
                    counters,
                    seen,
                    last_error: None,
                }),
                sample: Mutex::new(Sample {
                    window: Instant::now(),
                    logged: 0,
                    suppressed: 0,
                }),
                cfg,
            }),
        })
    }

    /// From now on every request is answered 503 (Firehose retries it
    /// elsewhere or later); requests already past the last check finish.
    pub fn begin_shutdown(&self) {
        self.inner.draining.store(true, Ordering::Release);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    pub fn config(&self) -> &FirehoseConfig {
        &self.inner.cfg
    }

    /// For the landing page.
    pub fn status(&self) -> FirehoseStatus {
        let st = lock(&self.inner.status);
        FirehoseStatus {
            listen_address: st.listen_address,
            last_request_ms: st.last_request_ms,
            last_outcome: st.last_outcome,
            requests: metrics::REQUEST_OUTCOMES
                .iter()
                .copied()
                .zip(st.counts())
                .collect(),
            last_error: st.last_error.clone(),
            warning: self.inner.auth.is_open().then_some(UNAUTHENTICATED_WARNING),
        }
    }

    /// Saves the finished request ids with every state snapshot of
    /// `persist` (restoring the ones saved last, still within their ttl),
    /// and from now on answers 200 only once the request's counts are on
    /// disk: an acknowledged event is never lost by a crash, and a request
    /// retried after one is recognized.
    pub fn persist_with(&self, persist: &Arc<Persister>) {
        // The ids as the store holds them, which the first write's patch is
        // relative to; `None` (the first write takes the slot whole) when
        // what was loaded cannot be patched.
        let mut on_disk = Some(HashMap::new());
        if let Some(saved) = persist.saved(FIREHOSE_SLOT) {
            match serde_json::from_value::<SavedReceiver>(saved) {
                Ok(saved) => {
                    if saved.request_ids.is_empty() {
                        on_disk = Some(saved.acked.iter().map(|(k, v)| (k.clone(), *v)).collect());
                    } else {
                        on_disk = None; // the first layout: rewritten whole
                    }
                    let now_wall = now_ms();
                    let ids = saved
                        .request_ids
                        .into_iter()
                        .map(|r| (r.id, r.acknowledged_at_ms))
                        .chain(saved.acked)
                        .map(|(id, at)| {
                            let age = now_wall.saturating_sub(at).max(0);
                            (id, Duration::from_millis(age as u64))
                        })
                        .collect();
                    self.inner.lock_requests().import(ids, Instant::now());
                }
                Err(e) => {
                    on_disk = None;
                    tracing::error!(error = %e,
                        "saved Firehose request ids are unreadable; a request retried across this restart may be counted twice");
                }
            }
        }
        persist.register(Arc::new(SavedRequests {
            rx: Arc::downgrade(&self.inner),
            whole_first: AtomicBool::new(on_disk.is_none()),
            last: Mutex::new(on_disk.unwrap_or_default()),
        }));
        let _ = self.inner.persist.set(persist.clone());
    }

    /// Sizes of the dedup memories now: (request ids, event ids). Never
    /// above the configured bounds.
    pub fn dedup_sizes(&self) -> (usize, usize) {
        (
            self.inner.lock_requests().len(),
            self.inner.lock_events().len(),
        )
    }
}

/// Serves the push listener until `cancel` fires: then new requests get
/// 503, the listener closes, and in-flight requests finish (hyper's
/// graceful shutdown). Returns when every connection has ended; the caller
/// bounds that with its drain deadline.
pub async fn serve(listener: TcpListener, receiver: Receiver, cancel: CancellationToken) {
    let edge = Arc::new(crate::web::Edge::plain());
    serve_on(
        crate::web::Listener::from_tcp(listener, edge),
        receiver,
        cancel,
    )
    .await
}

/// [`serve`] on a listener of the web edge: TLS (and client certificates)
/// from the web config, as every listener of the exporter. Basic auth does
/// not apply here: Firehose authenticates with its access key.
pub async fn serve_on(
    listener: crate::web::Listener,
    receiver: Receiver,
    cancel: CancellationToken,
) {
    if let Ok(addr) = listener.local_addr() {
        lock(&receiver.inner.status).listen_address = addr;
        tracing::info!(listen_address = %addr, path = PUSH_PATH, "firehose receiver listening");
    }
    let tracker = TaskTracker::new();
    let rx = receiver.clone();
    crate::web::listener::serve_connections(&listener, &tracker, &cancel, "firehose", move |req| {
        let rx = rx.clone();
        async move { rx.handle(req).await }
    })
    .await;
    receiver.begin_shutdown();
    drop(listener);
    tracker.close();
    tracker.wait().await;
    tracing::debug!("firehose listener closed");
}

#[cfg(test)]
mod tests;
