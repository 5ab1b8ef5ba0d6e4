//! The ingest boundary: the one way into counting. A source submits a batch
//! of raw events; when [`Ingest::submit`] returns, every event of the batch
//! has been counted (parse → attribute → classify → count), so the source
//! may then move its checkpoint or acknowledge its sender. Sources never see
//! the pipeline.
//!
//! Beside counting, the boundary keeps what concerns every source and no
//! stage of the flow: the policy of which events are copies of others (the
//! legacy lines of servers that also log structured JSON, reference §8.4,
//! fed by the inventory), the landing page's ring of recent failures and
//! its per-cause summary (failures per cause and server since the start).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use rustc_hash::{FxHashMap, FxHashSet};

use crate::event::RawEvent;
use crate::metrics::Metrics;
use crate::pipeline::{Outcome, Pipeline, PipelineConfig};
use crate::state::LastSession;

/// What an ingest handle does for its sources; implemented by [`Ingest`].
/// Sources that need only to submit take `Arc<dyn EventSink>`.
pub trait EventSink: Send + Sync + 'static {
    /// Counts every event of `events` before returning.
    fn submit(&self, events: &[RawEvent]);
}

fn is_listed(sets: &FxHashMap<String, FxHashSet<String>>, server_id: &str) -> bool {
    !sets.is_empty() && sets.values().any(|s| s.contains(server_id))
}

/// Servers listed per cause in the landing page's summary; the failures of
/// further servers are added up in one `(other servers)` entry. An account
/// has at most a few dozen Transfer servers and connectors per Region, so
/// this bound is reached only by ids that are not servers (a flood of
/// distinct AS2 resources, say), and then memory stays bounded.
pub const MAX_SERVERS_PER_CAUSE: usize = 256;

/// The `server_id` of the entry that adds up the servers past
/// [`MAX_SERVERS_PER_CAUSE`].
pub const OTHER_SERVERS: &str = "(other servers)";

/// Failures of one cause on one server since this process started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCount {
    /// Server id (or connector id, AS2 resource) as the log said it; empty
    /// when the event named none.
    pub server_id: String,
    pub count: u64,
    /// Timestamp of the newest failure counted here, Unix milliseconds.
    pub last_ms: i64,
}

/// Failures of one cause since this process started, for the landing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CauseSummary {
    pub category: &'static str,
    pub cause: &'static str,
    pub advice: &'static str,
    pub total: u64,
    /// Most failures first.
    pub servers: Vec<ServerCount>,
}

#[derive(Default)]
struct CauseCounts {
    advice: &'static str,
    total: u64,
    servers: FxHashMap<String, (u64, i64)>,
}

impl CauseCounts {
    /// One lookup for a server already listed (every failure but a
    /// server's first); a string is allocated only for a new entry.
    fn add(&mut self, server_id: &str, timestamp_ms: i64) {
        fn bump(entry: &mut (u64, i64), timestamp_ms: i64) {
            entry.0 += 1;
            entry.1 = entry.1.max(timestamp_ms);
        }
        self.total += 1;
        if let Some(entry) = self.servers.get_mut(server_id) {
            return bump(entry, timestamp_ms);
        }
        let key = if self.servers.len() < MAX_SERVERS_PER_CAUSE {
            server_id
        } else {
            OTHER_SERVERS
        };
        match self.servers.get_mut(key) {
            Some(entry) => bump(entry, timestamp_ms),
            None => {
                self.servers.insert(key.to_owned(), (1, timestamp_ms));
            }
        }
    }
}

struct Inner {
    pipeline: Pipeline,
    recent: VecDeque<Outcome<'static>>,
    recent_cap: usize,
    /// Per (category, cause): failures per server since the start.
    causes: FxHashMap<(&'static str, &'static str), CauseCounts>,
    /// Per inventory target: servers whose legacy text lines duplicate the
    /// structured events also read (see [`Ingest::set_legacy_duplicates`]).
    legacy_duplicates: FxHashMap<String, FxHashSet<String>>,
}

impl Inner {
    fn process(&mut self, raw: &RawEvent) {
        let Inner {
            pipeline,
            recent,
            recent_cap,
            causes,
            legacy_duplicates,
        } = self;
        let skip = |server: &str| is_listed(legacy_duplicates, server);
        let out = pipeline.process_with(raw, &skip);
        if let Some(cause) = out.cause {
            let counts = causes
                .entry((out.category.unwrap_or_default(), cause))
                .or_insert_with(|| CauseCounts {
                    advice: out.advice.unwrap_or_default(),
                    ..CauseCounts::default()
                });
            counts.add(out.server_id.as_deref().unwrap_or(""), out.timestamp_ms);
        }
        if out.cause.is_some() && *recent_cap > 0 {
            if recent.len() == *recent_cap {
                let mut oldest = recent.pop_front().expect("full ring is not empty");
                out.copy_into(&mut oldest);
                recent.push_back(oldest);
            } else {
                recent.push_back(out.to_static());
            }
        }
    }
}

/// The ingest handle: owns the pipeline; shared by every source.
pub struct Ingest {
    inner: Mutex<Inner>,
    metrics: Arc<Metrics>,
}

impl Ingest {
    pub fn new(metrics: Arc<Metrics>, cfg: PipelineConfig) -> Ingest {
        let recent_cap = cfg.recent_failures;
        Ingest {
            inner: Mutex::new(Inner {
                pipeline: Pipeline::new(metrics.clone(), cfg),
                recent: VecDeque::with_capacity(recent_cap.min(1024)),
                recent_cap,
                causes: FxHashMap::default(),
                legacy_duplicates: FxHashMap::default(),
            }),
            metrics,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere must not stop counting; the data under this lock
        // stays consistent between events.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Counts every event of the batch; returns when all are counted.
    pub fn submit(&self, events: &[RawEvent]) {
        if events.is_empty() {
            return;
        }
        let mut inner = self.lock();
        for raw in events {
            inner.process(raw);
        }
    }

    /// Runs `f` while nothing is being counted: what `f` reads of the
    /// counters describes exactly the batches submitted before it. Returns
    /// its result with the last sessions of that same moment.
    pub fn quiesced<R>(&self, f: impl FnOnce() -> R) -> (R, Vec<LastSession>) {
        let inner = self.lock();
        let r = f();
        (r, inner.pipeline.last_sessions())
    }

    /// Recent classified failures, newest first (bounded).
    pub fn recent_failures(&self) -> Vec<Outcome<'static>> {
        self.lock().recent.iter().rev().cloned().collect()
    }

    /// Failures per cause and server since this process started, the
    /// cause with the most failures first (ties by name), each cause's
    /// servers likewise.
    pub fn cause_summary(&self) -> Vec<CauseSummary> {
        let inner = self.lock();
        let mut out: Vec<CauseSummary> = inner
            .causes
            .iter()
            .map(|(&(category, cause), c)| {
                let mut servers: Vec<ServerCount> = c
                    .servers
                    .iter()
                    .map(|(id, &(count, last_ms))| ServerCount {
                        server_id: id.clone(),
                        count,
                        last_ms,
                    })
                    .collect();
                servers.sort_by(|a, b| {
                    b.count
                        .cmp(&a.count)
                        .then_with(|| a.server_id.cmp(&b.server_id))
                });
                CauseSummary {
                    category,
                    cause,
                    advice: c.advice,
                    total: c.total,
                    servers,
                }
            })
            .collect();
        drop(inner);
        out.sort_by(|a, b| {
            b.total
                .cmp(&a.total)
                .then_with(|| (a.category, a.cause).cmp(&(b.category, b.cause)))
        });
        out
    }

    /// Servers (of one inventory target) that have both a logging role and
    /// structured destinations that are being read: AWS delivers each of
    /// their events twice, once as a legacy text line and once as JSON, with
    /// different event ids (reference §8.4). Their legacy lines are then
    /// skipped (and counted in
    /// `aws_transfer_exporter_legacy_duplicates_skipped_total`) so every event
    /// counts once. Replaces the target's previous set.
    pub fn set_legacy_duplicates(&self, target: &str, servers: impl IntoIterator<Item = String>) {
        let set: FxHashSet<String> = servers.into_iter().collect();
        let mut inner = self.lock();
        if set.is_empty() {
            inner.legacy_duplicates.remove(target);
        } else {
            inner.legacy_duplicates.insert(target.to_owned(), set);
        }
    }

    /// Whether `server_id`'s legacy lines are skipped now.
    pub fn is_legacy_duplicate(&self, server_id: &str) -> bool {
        is_listed(&self.lock().legacy_duplicates, server_id)
    }

    /// Last CONNECTED per (server, user label), for the state store.
    pub fn last_sessions(&self) -> Vec<LastSession> {
        self.lock().pipeline.last_sessions()
    }

    /// Restores the silent-partner gauge after a restart.
    pub fn restore_last_sessions(&self, v: &[LastSession]) {
        self.lock().pipeline.restore_last_sessions(v);
    }
}

impl EventSink for Ingest {
    fn submit(&self, events: &[RawEvent]) {
        Ingest::submit(self, events);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use prometheus::Registry;

    use crate::metrics::Limits;

    const ARN: &str = "arn:aws:transfer:eu-west-1:111122223333:server/s-0123456789abcdef0";

    fn raw(stream: &str, msg: &str) -> RawEvent {
        RawEvent {
            log_group: "/aws/transfer/shared".into(),
            log_stream: stream.into(),
            event_id: "1".into(),
            timestamp_ms: 1_764_000_000_000,
            message: msg.into(),
        }
    }

    /// The landing page's ring: newest first, bounded, and each entry equal
    /// to what `process` returned, also when a recycled entry had fields
    /// (user, message, activity) that the new one lacks, or the reverse.
    #[test]
    fn recent_failures_are_newest_first_bounded_and_exact() {
        // What `process` returns, from a pipeline of its own; the ingest
        // handle's ring must hold exactly these.
        let mut p = Pipeline::new(
            Arc::new(Metrics::new(&Registry::new(), Limits::default())),
            PipelineConfig::default(),
        );
        let ingest = Ingest::new(
            Arc::new(Metrics::new(&Registry::new(), Limits::default())),
            PipelineConfig {
                recent_failures: 3,
                ..Default::default()
            },
        );
        let lines = [
            (
                "ERRORS",
                format!(
                    r#"{{"activity-type":"AUTH_FAILURE","resource-arn":"{ARN}","message":"Authentication failure","user":"no-such-user"}}"#
                ),
            ),
            (
                "s-0123456789abcdef0/jdoe",
                format!(
                    r#"{{"activity-type":"ERROR","resource-arn":"{ARN}","message":"Access denied","session-id":"26315c40e111fcf04b00"}}"#
                ),
            ),
            (
                "ERRORS",
                format!(
                    r#"{{"activity-type":"KEX_FAILURE","resource-arn":"{ARN}","message":"no matching key exchange method found"}}"#
                ),
            ),
            (
                "",
                r#"{"type":"ExecutionThrottled","details":{},"connectorId":"c-0123456789abcdef0"}"#
                    .to_owned(),
            ),
            (
                "s-0123456789abcdef0/alice",
                format!(
                    r#"{{"activity-type":"PARTIAL_CLOSE","resource-arn":"{ARN}","path":"/b/k","session-id":"aa"}}"#
                ),
            ),
            (
                "ERRORS",
                format!(
                    r#"{{"activity-type":"CONNECTED","resource-arn":"{ARN}","user":"bob","session-id":"bb"}}"#
                ),
            ),
            ("ERRORS", "{broken".to_owned()),
            (
                "s-0123456789abcdef0/carol",
                format!(
                    r#"{{"activity-type":"ERROR","resource-arn":"{ARN}","message":"Unable to AssumeRole for user"}}"#
                ),
            ),
        ];
        let mut failures = Vec::new();
        for (i, (stream, msg)) in lines.iter().enumerate() {
            let mut e = raw(stream, msg);
            e.event_id = format!("id-{i}");
            let o = p.process(&e);
            ingest.submit(std::slice::from_ref(&e));
            if o.cause.is_some() {
                failures.push(serde_json::to_value(&o).unwrap());
            }
        }
        assert_eq!(failures.len(), 6, "{failures:?}");
        let recent: Vec<_> = ingest
            .recent_failures()
            .iter()
            .map(|o| serde_json::to_value(o).unwrap())
            .collect();
        let want: Vec<_> = failures.iter().rev().take(3).cloned().collect();
        assert_eq!(recent, want);
    }

    /// The landing page's summary: failures per cause and server since the
    /// start, most first; non-failures are not in it; servers past the
    /// bound are added up in one entry and nothing is lost.
    #[test]
    fn cause_summary_counts_per_cause_and_server_bounded() {
        let metrics = Arc::new(Metrics::new(&Registry::new(), Limits::default()));
        let ingest = Ingest::new(metrics, PipelineConfig::default());
        let arn = |s: &str| format!("arn:aws:transfer:eu-west-1:111122223333:server/{s}");
        let unknown = |server: &str, t: i64| {
            let mut e = raw(
                "ERRORS",
                &format!(
                    r#"{{"activity-type":"AUTH_FAILURE","resource-arn":"{}","message":"Authentication failure","user":"nobody"}}"#,
                    arn(server)
                ),
            );
            e.timestamp_ms = t;
            e
        };
        let denied = raw(
            "s-0123456789abcdef0/jdoe",
            &format!(
                r#"{{"activity-type":"ERROR","resource-arn":"{}","message":"Access denied","session-id":"26315c40e111fcf04b00"}}"#,
                arn("s-0123456789abcdef0")
            ),
        );
        let ok = raw(
            "ERRORS",
            &format!(
                r#"{{"activity-type":"CONNECTED","resource-arn":"{}","user":"bob","session-id":"bb"}}"#,
                arn("s-0123456789abcdef0")
            ),
        );
        let mut batch = vec![
            unknown("s-00000000000000001", 10),
            unknown("s-00000000000000001", 30),
            unknown("s-00000000000000001", 20),
            unknown("s-00000000000000002", 5),
            denied.clone(),
            ok,
        ];
        ingest.submit(&batch);
        let got = ingest.cause_summary();
        assert_eq!(got.len(), 2, "{got:#?}");
        let first = &got[0];
        assert_eq!(
            (first.category, first.cause, first.total),
            ("auth", "unknown_user", 4)
        );
        assert!(!first.advice.is_empty());
        assert_eq!(
            first.servers,
            [
                ServerCount {
                    server_id: "s-00000000000000001".into(),
                    count: 3,
                    last_ms: 30
                },
                ServerCount {
                    server_id: "s-00000000000000002".into(),
                    count: 1,
                    last_ms: 5
                },
            ]
        );
        assert_eq!(got[1].total, 1);
        assert_eq!(got[1].servers[0].server_id, "s-0123456789abcdef0");

        // Past the bound, one entry adds up the rest; totals stay exact.
        batch.clear();
        for i in 0..MAX_SERVERS_PER_CAUSE + 50 {
            batch.push(unknown(&format!("s-{i:017x}"), 1));
        }
        ingest.submit(&batch);
        let got = ingest.cause_summary();
        let u = got.iter().find(|c| c.cause == "unknown_user").unwrap();
        assert_eq!(u.total, 4 + MAX_SERVERS_PER_CAUSE as u64 + 50);
        assert_eq!(u.servers.len(), MAX_SERVERS_PER_CAUSE + 1);
        assert_eq!(u.servers.iter().map(|s| s.count).sum::<u64>(), u.total);
        let other = u
            .servers
            .iter()
            .find(|s| s.server_id == OTHER_SERVERS)
            .unwrap();
        // 306 ids, 2 already listed: 254 more fit, 50 are added up.
        assert_eq!(other.count, 50);
    }

    #[test]
    fn legacy_duplicates_policy_lives_here() {
        let metrics = Arc::new(Metrics::new(&Registry::new(), Limits::default()));
        let ingest = Ingest::new(metrics, PipelineConfig::default());
        assert!(!ingest.is_legacy_duplicate("s-0123456789abcdef0"));
        ingest.set_legacy_duplicates("t", ["s-0123456789abcdef0".to_owned()]);
        assert!(ingest.is_legacy_duplicate("s-0123456789abcdef0"));
        ingest.set_legacy_duplicates("t", Vec::new());
        assert!(!ingest.is_legacy_duplicate("s-0123456789abcdef0"));
    }
}
