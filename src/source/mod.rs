//! The CloudWatch Logs source: discover log groups, poll each one without
//! losing or double-counting an event, feed the pipeline, persist progress.
//!
//! ```text
//! Sources::start
//!   ├─ one task per target: round = [discovery if due] + poll every group
//!   │     (≤ POLL_CONCURRENCY at once, every API call through the shared
//!   │      token bucket of the target's account+Region)
//! ```
//!
//! Progress is saved by [`crate::persist::Persister`] (this source is its
//! `cloudwatch` part): checkpoints, remembered ids and audit slices of every
//! group, taken under every group's progress lock.
//!
//! Files: [`cloudwatch`] (narrow trait + SDK), [`ratelimit`] (budget,
//! backoff), [`checkpoint`] (pure overlap/sweep/dedup rules), [`poller`] (one
//! poll of one group), [`discovery`] (group listing), [`state`] (the file).

pub mod checkpoint;
pub mod cloudwatch;
pub mod discovery;
pub mod firehose;
pub mod poller;
pub mod ratelimit;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::checkpoint::GroupProgress;
use self::cloudwatch::{ErrorKind, LogsApi, SdkLogs};
use self::poller::{lock, now_ms, PollCtx};
use self::ratelimit::{CallError, Caller, TokenBucket};
use crate::aws::Api;
pub use crate::config::defaults::DEFAULT_API_RATE_PER_SECOND;
pub use crate::config::defaults::DEFAULT_DISCOVERY_INTERVAL;
pub use crate::config::defaults::DEFAULT_GROUP_PREFIX;
pub use crate::config::defaults::DEFAULT_INITIAL_LOOKBACK;
pub use crate::config::defaults::DEFAULT_LATE_ARRIVAL_WINDOW;
pub use crate::config::defaults::DEFAULT_OVERLAP_FLOOR;
pub use crate::config::defaults::DEFAULT_PAGE_LIMIT;
pub use crate::config::defaults::DEFAULT_POLL_INTERVAL;
pub use crate::config::defaults::DEFAULT_STATE_FLUSH_INTERVAL;
pub use crate::config::defaults::DEFAULT_STATE_PATH;
pub use crate::config::defaults::DEFAULT_SWEEP_INTERVAL;
use crate::ingest::Ingest;
use crate::metrics::Metrics;
use crate::persist::{Persister, Progress, Saved};
use crate::state::CLOUDWATCH_SLOT;

/// Groups of one target polled at once. The token bucket sets the call rate;
/// a little concurrency only hides the latency of slow responses.
pub const POLL_CONCURRENCY: usize = 4;

/// One CloudWatch Logs target: an account+Region (+ optional role) and the
/// groups to poll there.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetSpec {
    /// Unique name (labels logs, keys the state file).
    pub name: String,
    pub region: String,
    /// Endpoint override (VPC endpoints, tests).
    pub endpoint_url: Option<String>,
    /// Role to assume with the default chain's credentials (multi-account).
    pub role_arn: Option<String>,
    pub group_prefixes: Vec<String>,
    pub groups: Vec<String>,
    pub initial_lookback: Duration,
    pub late_arrival_window: Duration,
    pub poll_interval: Duration,
    pub discovery_interval: Duration,
    pub page_limit: i32,
    pub api_rate_per_second: f64,
    /// The least a poll reads behind its checkpoint (`poll.overlap_floor`).
    pub overlap_floor: Duration,
    /// How often a sweep re-reads a stretch whose late-arrival window has
    /// closed (`poll.sweep_interval`).
    pub sweep_interval: Duration,
    /// How far back a sweep reaches (`poll.sweep_reach`); `None`: the
    /// late-arrival window plus the sweep interval, the least that misses
    /// nothing.
    pub sweep_reach: Option<Duration>,
}

impl TargetSpec {
    /// The poller's timing for this target.
    pub fn timing(&self) -> checkpoint::Timing {
        let ms = |d: Duration| d.as_millis().min(i64::MAX as u128) as i64;
        let late_window_ms = ms(self.late_arrival_window);
        let sweep_interval_ms = ms(self.sweep_interval).max(1);
        checkpoint::Timing {
            late_window_ms,
            overlap_floor_ms: ms(self.overlap_floor),
            sweep_interval_ms,
            sweep_reach_ms: self
                .sweep_reach
                .map_or(late_window_ms + sweep_interval_ms, ms),
        }
    }
}

/// What the landing page shows per group.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupStatus {
    pub target: String,
    pub log_group: String,
    /// End of the last successful poll, Unix seconds.
    pub last_success_unix: Option<f64>,
    /// Timestamp of the newest event counted, Unix milliseconds.
    pub newest_event_ms: Option<i64>,
    /// The last poll's error, if it failed (cleared by a successful poll).
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct StatusInner {
    last_poll_ms: Option<i64>,
    /// When this process started polling the group, Unix milliseconds: the
    /// base of "seconds since the last successful poll" until one succeeds,
    /// so a daemon started during an outage reports it too.
    watched_since_ms: i64,
    error: Option<String>,
}

/// The scrape-time gauges of one group at `now_ms`: (lag, seconds since the
/// last successful poll), in seconds, never negative. Lag needs a counted
/// event (restored from the state file or read since); "since" counts from
/// the start of polling until the first success.
fn scrape_time_values(
    newest_event_ms: Option<i64>,
    last_poll_ms: Option<i64>,
    watched_since_ms: i64,
    now_ms: i64,
) -> (Option<f64>, f64) {
    let secs = |from_ms: i64| (now_ms - from_ms).max(0) as f64 / 1000.0;
    (
        newest_event_ms.map(secs),
        secs(last_poll_ms.unwrap_or(watched_since_ms)),
    )
}

struct GroupRt {
    name: String,
    progress: Arc<Mutex<GroupProgress>>,
    status: Mutex<StatusInner>,
}

struct TargetRt {
    spec: TargetSpec,
    api: Arc<dyn LogsApi>,
    bucket: Arc<TokenBucket>,
    /// Counted calls of this target (the shared bucket, its health entry).
    calls: Caller,
    groups: Mutex<BTreeMap<String, Arc<GroupRt>>>,
    /// Names added at run time by [`Sources::add_groups`].
    extra: Mutex<BTreeSet<String>>,
    /// Progress from the state file for groups not (yet) rediscovered;
    /// written back on flush so a group missing for a while keeps its place.
    restored: Mutex<BTreeMap<String, GroupProgress>>,
    wake: Notify,
    ready: AtomicBool,
    /// Effective poll interval of the last round, milliseconds.
    effective_interval_ms: AtomicU64,
}

struct Shared {
    targets: Vec<Arc<TargetRt>>,
    ingest: Arc<Ingest>,
    metrics: Arc<Metrics>,
    persist: Arc<Persister>,
    /// A live group was set aside (its progress moved to `restored`, where
    /// changes are not tracked): the next state write takes every group's
    /// whole progress.
    set_aside: AtomicBool,
}

/// What a stopped generation of sources hands to the next on a reload, per
/// target name: the live groups themselves (progress, remembered ids, poll
/// status: nothing restarts), the saved progress of groups not seen since
/// the start, the inventory's extra groups, and readiness.
struct TargetHandover {
    groups: BTreeMap<String, Arc<GroupRt>>,
    extra: BTreeSet<String>,
    restored: BTreeMap<String, GroupProgress>,
    ready: bool,
}

/// Where a generation of sources starts from.
enum Resume {
    /// The saved state (process start).
    Saved,
    /// A previous generation, stopped (a reload); with `keep_extra` its
    /// targets keep the groups the inventory added.
    Handover {
        targets: BTreeMap<String, TargetHandover>,
        keep_extra: bool,
    },
}

/// Handle on the running sources.
#[derive(Clone)]
pub struct Sources {
    shared: Arc<Shared>,
}

/// Key of a token bucket: calls with the same Region, endpoint and role hit
/// the same account-wide quota.
fn bucket_key(t: &TargetSpec) -> String {
    format!(
        "{}|{}|{}",
        t.region,
        t.endpoint_url.as_deref().unwrap_or(""),
        t.role_arn.as_deref().unwrap_or("")
    )
}

impl Sources {
    /// Takes its saved progress from `persist` (and registers there, so
    /// every later snapshot includes it), builds one SDK client per target,
    /// and starts polling. Tasks run on `tracker` and stop when `cancel`
    /// fires.
    pub async fn start(
        targets: Vec<TargetSpec>,
        persist: Arc<Persister>,
        ingest: Arc<Ingest>,
        metrics: Arc<Metrics>,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> anyhow::Result<Sources> {
        let mut apis: Vec<Arc<dyn LogsApi>> = Vec::with_capacity(targets.len());
        for t in &targets {
            apis.push(Arc::new(
                SdkLogs::new(&t.region, t.endpoint_url.as_deref(), t.role_arn.as_deref()).await,
            ));
        }
        Self::start_with_apis(targets, apis, persist, ingest, metrics, tracker, cancel)
    }

    /// [`Self::start`] with the API implementation given per target (same
    /// order as `targets`): for benchmarks with an in-process page source.
    #[allow(clippy::too_many_arguments)]
    pub fn start_with_apis(
        targets: Vec<TargetSpec>,
        apis: Vec<Arc<dyn LogsApi>>,
        persist: Arc<Persister>,
        ingest: Arc<Ingest>,
        metrics: Arc<Metrics>,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> anyhow::Result<Sources> {
        let resume = Resume::Saved;
        launch(
            targets, apis, persist, ingest, metrics, tracker, cancel, resume,
        )
    }

    /// A reload: sources for `targets` that continue exactly where these
    /// stopped (their tasks must have stopped: token cancelled, tracker
    /// drained). A target of the same name keeps its groups (progress,
    /// remembered event ids, poll status) and readiness, and with
    /// `keep_extra` the groups the inventory added (it publishes them again
    /// on its next refresh). Counters, the pipeline and the persister are
    /// the same objects; the new sources take this one's place in every
    /// later snapshot. Groups of removed targets lose their series.
    #[allow(clippy::too_many_arguments)]
    pub async fn reload(
        &self,
        targets: Vec<TargetSpec>,
        apis: Option<Vec<Arc<dyn LogsApi>>>,
        keep_extra: bool,
        tracker: &TaskTracker,
        cancel: CancellationToken,
    ) -> anyhow::Result<Sources> {
        let apis = match apis {
            Some(a) => a,
            None => {
                let mut apis: Vec<Arc<dyn LogsApi>> = Vec::with_capacity(targets.len());
                for t in &targets {
                    apis.push(Arc::new(
                        SdkLogs::new(&t.region, t.endpoint_url.as_deref(), t.role_arn.as_deref())
                            .await,
                    ));
                }
                apis
            }
        };
        let old = &self.shared;
        let handed = old
            .targets
            .iter()
            .map(|t| {
                let h = TargetHandover {
                    groups: lock(&t.groups).clone(),
                    extra: lock(&t.extra).clone(),
                    restored: lock(&t.restored).clone(),
                    ready: t.ready.load(Ordering::Acquire),
                };
                (t.spec.name.clone(), h)
            })
            .collect();
        let resume = Resume::Handover {
            targets: handed,
            keep_extra,
        };
        let (persist, ingest, metrics) =
            (old.persist.clone(), old.ingest.clone(), old.metrics.clone());
        launch(
            targets, apis, persist, ingest, metrics, tracker, cancel, resume,
        )
    }
}

/// Builds the runtime of every target, from the saved state or a previous
/// generation, registers it with the persister (in place of the previous
/// generation), and spawns the target loops.
#[allow(clippy::too_many_arguments)]
fn launch(
    targets: Vec<TargetSpec>,
    apis: Vec<Arc<dyn LogsApi>>,
    persist: Arc<Persister>,
    ingest: Arc<Ingest>,
    metrics: Arc<Metrics>,
    tracker: &TaskTracker,
    cancel: CancellationToken,
    resume: Resume,
) -> anyhow::Result<Sources> {
    anyhow::ensure!(apis.len() == targets.len(), "one API per target");
    let mut names = BTreeSet::new();
    for t in &targets {
        anyhow::ensure!(
            names.insert(t.name.clone()),
            "target name {:?} is used twice",
            t.name
        );
    }
    // The first state write takes this slot whole when the loaded value is
    // not all used: an unreadable part of it, or targets no longer
    // configured. A record would leave those on disk under what it adds.
    let mut loaded_unused = false;
    let (mut saved, mut handed, keep_extra) = match resume {
        Resume::Saved => {
            let saved: BTreeMap<String, serde_json::Value> = match persist.saved(CLOUDWATCH_SLOT) {
                Some(serde_json::Value::Object(m)) => m.into_iter().collect(),
                Some(other) => {
                    tracing::error!(found = %other, "saved CloudWatch progress is unreadable; every group starts at its initial lookback");
                    loaded_unused = true;
                    BTreeMap::new()
                }
                None => BTreeMap::new(),
            };
            loaded_unused |= saved
                .keys()
                .any(|name| !targets.iter().any(|t| &t.name == name));
            (saved, BTreeMap::new(), false)
        }
        Resume::Handover {
            targets,
            keep_extra,
        } => (BTreeMap::new(), targets, keep_extra),
    };
    let reloaded = !handed.is_empty();
    // Targets gone with a reload: their groups' gauges go too, unless
    // another target polls a group of the same name.
    let kept: BTreeSet<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let still_polled: BTreeSet<String> = handed
        .iter()
        .filter(|(name, _)| kept.contains(name.as_str()))
        .flat_map(|(_, h)| h.groups.keys().cloned())
        .collect();
    for (name, h) in handed.iter().filter(|(n, _)| !kept.contains(n.as_str())) {
        for g in h.groups.keys().filter(|g| !still_polled.contains(*g)) {
            drop_group_series(&metrics, g);
        }
        tracing::info!(target_name = %name, groups = h.groups.len(), "target removed; its groups are no longer polled");
    }

    let mut buckets: HashMap<String, Arc<TokenBucket>> = HashMap::new();
    // Targets sharing an account+Region share the lowest configured rate.
    let mut rates: HashMap<String, f64> = HashMap::new();
    for t in &targets {
        let r = rates.entry(bucket_key(t)).or_insert(t.api_rate_per_second);
        *r = r.min(t.api_rate_per_second);
    }
    let mut rts = Vec::new();
    for (spec, api) in targets.into_iter().zip(apis) {
        let key = bucket_key(&spec);
        let bucket = buckets
            .entry(key.clone())
            .or_insert_with(|| Arc::new(TokenBucket::new(rates[&key])))
            .clone();
        let h = handed.remove(&spec.name);
        let restored = match &h {
            Some(h) => h.restored.clone(),
            None => match saved
                .remove(&spec.name)
                .map(|v| restore_progress(&spec.name, v))
            {
                Some(Some(groups)) => groups,
                Some(None) => {
                    loaded_unused = true;
                    BTreeMap::new()
                }
                None => BTreeMap::new(),
            },
        };
        let calls = Caller::new(&spec.name, Api::Logs, bucket.clone(), metrics.clone());
        rts.push(Arc::new(TargetRt {
            effective_interval_ms: AtomicU64::new(spec.poll_interval.as_millis() as u64),
            calls,
            spec,
            api,
            bucket,
            groups: Mutex::new(h.as_ref().map(|h| h.groups.clone()).unwrap_or_default()),
            extra: Mutex::new(
                h.as_ref()
                    .filter(|_| keep_extra)
                    .map(|h| h.extra.clone())
                    .unwrap_or_default(),
            ),
            restored: Mutex::new(restored),
            wake: Notify::new(),
            ready: AtomicBool::new(h.is_some_and(|h| h.ready)),
        }));
    }
    let shared = Arc::new(Shared {
        targets: rts,
        ingest,
        metrics,
        persist,
        set_aside: AtomicBool::new(loaded_unused),
    });
    // Replaces the previous generation's part, if any: from here on
    // snapshots read these targets (the same group objects).
    shared
        .persist
        .register(Arc::new(SavedProgress(Arc::downgrade(&shared))));
    update_group_gauge(&shared);
    if reloaded {
        shared.persist.mark_dirty();
    }
    for t in &shared.targets {
        let (sh, t, c, tr) = (shared.clone(), t.clone(), cancel.clone(), tracker.clone());
        tracker.spawn(async move { run_target(sh, t, c, tr).await });
    }
    Ok(Sources { shared })
}

impl Sources {
    /// True once every target has completed one round: a successful
    /// discovery and one poll attempt of every group it found.
    pub fn is_ready(&self) -> bool {
        self.shared
            .targets
            .iter()
            .all(|t| t.ready.load(Ordering::Acquire))
    }

    /// One row per polled group, sorted by target then group.
    pub fn status(&self) -> Vec<GroupStatus> {
        let mut out = Vec::new();
        for t in &self.shared.targets {
            let groups: Vec<Arc<GroupRt>> = lock(&t.groups).values().cloned().collect();
            for g in groups {
                let newest = lock(&g.progress).newest_event_ms;
                let st = lock(&g.status);
                out.push(GroupStatus {
                    target: t.spec.name.clone(),
                    log_group: g.name.clone(),
                    last_success_unix: st.last_poll_ms.map(|ms| ms as f64 / 1000.0),
                    newest_event_ms: newest,
                    last_error: st.error.clone(),
                });
            }
        }
        out
    }

    /// Sets `log_group_lag_seconds` and
    /// `log_group_seconds_since_last_successful_poll` of every polled group
    /// from its state at `now_ms` (Unix milliseconds). The serving path calls
    /// this right before rendering `/metrics`, so both grow with the clock
    /// while every poll fails, instead of freezing at the last success.
    ///
    /// A log group name polled by several targets (accounts) gets the
    /// freshest view, like `min by (log_group)` across replicas.
    pub fn refresh_scrape_time_gauges(&self, now_ms: i64) {
        // Every target's group map stays locked until the gauges are set (in
        // target order; nothing else holds two at once): a group dropped
        // meanwhile has its series removed under that lock, and must not get
        // them back from here.
        let maps: Vec<_> = self
            .shared
            .targets
            .iter()
            .map(|t| lock(&t.groups))
            .collect();
        let mut values: BTreeMap<&str, (Option<f64>, f64)> = BTreeMap::new();
        for g in maps.iter().flat_map(|m| m.values()) {
            let newest = lock(&g.progress).newest_event_ms;
            let (last, watched) = {
                let st = lock(&g.status);
                (st.last_poll_ms, st.watched_since_ms)
            };
            let (lag, since) = scrape_time_values(newest, last, watched, now_ms);
            values
                .entry(g.name.as_str())
                .and_modify(|(l, s)| {
                    *l = match (*l, lag) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    *s = s.min(since);
                })
                .or_insert((lag, since));
        }
        let m = &self.shared.metrics;
        for (name, (lag, since)) in values {
            if let Some(lag) = lag {
                m.log_group_lag.with_label_values(&[name]).set(lag);
            }
            m.since_last_successful_poll
                .with_label_values(&[name])
                .set(since);
        }
        drop(maps);
    }

    /// Adds explicit group names to a target (e.g. structured-logging
    /// destinations found by the inventory). Polled from the next round on.
    pub fn add_groups(&self, target: &str, groups: Vec<String>) {
        let Some(t) = self.shared.targets.iter().find(|t| t.spec.name == target) else {
            tracing::warn!(target_name = target, "add_groups: no such target");
            return;
        };
        let mut extra = lock(&t.extra);
        let before = extra.len();
        extra.extend(groups.into_iter().filter(|g| !g.is_empty()));
        if extra.len() != before {
            drop(extra);
            t.wake.notify_one();
        }
    }

    /// The CloudWatch Logs health entry of every target, in target order
    /// (register them with an [`crate::aws::Health`] for the landing page).
    pub fn api_health(&self) -> Vec<Arc<crate::aws::ApiHealth>> {
        self.shared
            .targets
            .iter()
            .map(|t| t.calls.health().clone())
            .collect()
    }
}

/// This source's part of every state snapshot.
struct SavedProgress(std::sync::Weak<Shared>);

impl Progress for SavedProgress {
    fn slot(&self) -> &'static str {
        CLOUDWATCH_SLOT
    }

    /// Every group's progress, consistent with the counters gathered in
    /// `inner`: all progress locks are taken first (pollers hold at most one
    /// at a time and never wait for another, and count under it), so no
    /// poll is half-recorded. Groups not polled in this life (not found yet,
    /// or gone) keep what was restored.
    fn save_under(&self, inner: &mut dyn FnMut()) -> serde_json::Value {
        let Some(shared) = self.0.upgrade() else {
            inner();
            return serde_json::Value::Null;
        };
        shared.set_aside.store(false, Ordering::Release);
        let mut per_target: Vec<BTreeMap<String, GroupProgress>> = Vec::new();
        let mut live: Vec<(usize, Arc<GroupRt>)> = Vec::new();
        for (i, t) in shared.targets.iter().enumerate() {
            // Under the groups lock, as `apply_groups` moves a group from
            // one to the other under it: each group is in exactly one.
            let groups = lock(&t.groups);
            per_target.push(lock(&t.restored).clone());
            live.extend(groups.values().cloned().map(|g| (i, g)));
        }
        let mut guards: Vec<_> = live.iter().map(|(_, g)| lock(&g.progress)).collect();
        inner();
        for ((i, g), p) in live.iter().zip(&mut guards) {
            p.mark_saved();
            per_target[*i].insert(g.name.clone(), (**p).clone());
        }
        drop(guards);
        let mut targets = serde_json::Map::new();
        for (t, groups) in shared.targets.iter().zip(per_target) {
            let value = serde_json::to_value(groups).unwrap_or_else(|e| {
                // Cannot happen for these plain types; keep the rest of the file.
                tracing::error!(target_name = %t.spec.name, error = %e, "cannot serialize progress");
                serde_json::Value::Null
            });
            targets.insert(t.spec.name.clone(), value);
        }
        serde_json::Value::Object(targets)
    }

    /// Only the groups whose progress changed since the last write, each
    /// with the ids it remembered since (see [`GroupProgress::take_patch`]);
    /// the whole progress when a group was set aside or kept too many
    /// changes. Same locking as [`Self::save_under`].
    fn save_changes_under(&self, inner: &mut dyn FnMut()) -> Saved {
        let Some(shared) = self.0.upgrade() else {
            inner();
            return Saved::Whole(serde_json::Value::Null);
        };
        let live = live_groups(&shared);
        let mut guards: Vec<_> = live.iter().map(|(_, g)| lock(&g.progress)).collect();
        let whole =
            shared.set_aside.load(Ordering::Acquire) || guards.iter().any(|p| p.needs_whole_save());
        if whole {
            drop(guards);
            return Saved::Whole(self.save_under(inner));
        }
        inner();
        let mut targets = serde_json::Map::new();
        for ((i, g), p) in live.iter().zip(&mut guards) {
            if let Some(patch) = p.take_patch() {
                let name = &shared.targets[*i].spec.name;
                targets
                    .entry(name.clone())
                    .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()))
                    .as_object_mut()
                    .expect("made an object above")
                    .insert(g.name.clone(), patch);
            }
        }
        drop(guards);
        Saved::Patch(serde_json::Value::Object(targets))
    }
}

/// Every live group with the index of its target, in lock order.
fn live_groups(shared: &Shared) -> Vec<(usize, Arc<GroupRt>)> {
    let mut live = Vec::new();
    for (i, t) in shared.targets.iter().enumerate() {
        live.extend(lock(&t.groups).values().cloned().map(|g| (i, g)));
    }
    live
}

/// A target's progress as the store gave it back; unreadable progress is
/// reported (`None`) and the target starts from its initial lookback.
fn restore_progress(target: &str, v: serde_json::Value) -> Option<BTreeMap<String, GroupProgress>> {
    match serde_json::from_value::<BTreeMap<String, GroupProgress>>(v) {
        Ok(mut m) => {
            for p in m.values_mut() {
                p.prune();
            }
            Some(m)
        }
        Err(e) => {
            tracing::error!(target_name = target, error = %e,
                "saved progress of this target is unreadable; its groups start at the initial lookback");
            None
        }
    }
}

fn update_group_gauge(shared: &Shared) {
    let n: usize = shared.targets.iter().map(|t| lock(&t.groups).len()).sum();
    shared.metrics.log_groups.set(n as i64);
}

/// Applies a wanted set of groups to a target: new ones start from the
/// state file or the initial lookback, vanished ones are dropped.
fn apply_groups(shared: &Shared, t: &TargetRt, wanted: &BTreeSet<String>) {
    let now = now_ms();
    let mut groups = lock(&t.groups);
    let current: BTreeSet<String> = groups.keys().cloned().collect();
    let (added, removed) = discovery::diff(&current, wanted);
    for name in added {
        let restored = lock(&t.restored).remove(&name);
        let resumed = restored.is_some();
        let progress = restored
            .unwrap_or_else(|| GroupProgress::new(now, t.spec.initial_lookback.as_millis() as i64));
        tracing::info!(target_name = %t.spec.name, log_group = %name, resumed, "log group added");
        groups.insert(
            name.clone(),
            Arc::new(GroupRt {
                name,
                progress: Arc::new(Mutex::new(progress)),
                status: Mutex::new(StatusInner {
                    watched_since_ms: now,
                    ..StatusInner::default()
                }),
            }),
        );
    }
    for name in removed {
        // Its progress stays (saved like a group not yet rediscovered since
        // the start): a group taken out of the config by a reload, or
        // missing from one listing, resumes where it stopped when it comes
        // back.
        if let Some(g) = groups.remove(&name) {
            let p = lock(&g.progress).clone();
            lock(&t.restored).insert(name.clone(), p);
            shared.set_aside.store(true, Ordering::Release);
        }
        drop_group_series(&shared.metrics, &name);
        tracing::info!(target_name = %t.spec.name, log_group = %name, "log group no longer found; dropped");
    }
    drop(groups);
    update_group_gauge(shared);
}

fn drop_group_series(m: &Metrics, group: &str) {
    // Gauges of a gone group would otherwise report a growing lag forever.
    let _ = m.log_group_lag.remove_label_values(&[group]);
    let _ = m.log_group_last_event.remove_label_values(&[group]);
    let _ = m.last_successful_poll.remove_label_values(&[group]);
    let _ = m.since_last_successful_poll.remove_label_values(&[group]);
}

fn wanted_static(t: &TargetRt) -> BTreeSet<String> {
    let mut w: BTreeSet<String> = t.spec.groups.iter().cloned().collect();
    w.extend(lock(&t.extra).iter().cloned());
    w
}

/// A target's loop: rounds of [discovery if due] + one poll of every group.
async fn run_target(
    shared: Arc<Shared>,
    t: Arc<TargetRt>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let mut last_discovery: Option<Instant> = None;
    let mut listed: BTreeSet<String> = BTreeSet::new();
    let mut discovery_error: Option<String> = None;
    // Explicit groups that answered "not found": skipped until the next
    // discovery, so a missing name costs one call per discovery interval.
    let mut missing: BTreeSet<String> = BTreeSet::new();
    let mut stretched = false;
    loop {
        let round_start = Instant::now();
        // ---- discovery ----
        let due = last_discovery.is_none_or(|l| l.elapsed() >= t.spec.discovery_interval);
        let mut discovered_ok = true;
        if due && !t.spec.group_prefixes.is_empty() {
            match discovery::list_prefixes(
                t.api.as_ref(),
                &t.spec.group_prefixes,
                &t.calls,
                &cancel,
            )
            .await
            {
                Ok(set) => {
                    listed = set;
                    last_discovery = Some(Instant::now());
                    if discovery_error.take().is_some() {
                        tracing::info!(target_name = %t.spec.name, "log group discovery recovered");
                    }
                }
                Err(CallError::Cancelled) => break,
                Err(CallError::Api(err)) => {
                    discovered_ok = false;
                    let msg = err.to_string();
                    if discovery_error.as_deref() != Some(msg.as_str()) {
                        tracing::warn!(target_name = %t.spec.name, error = %err, "log group discovery failed; keeping the groups already known");
                    }
                    discovery_error = Some(msg);
                }
            }
        } else if due {
            last_discovery = Some(Instant::now());
        }
        if due {
            missing.clear();
        }
        let mut wanted = wanted_static(&t);
        wanted.retain(|g| !missing.contains(g));
        wanted.extend(listed.iter().cloned());
        apply_groups(&shared, &t, &wanted);

        // ---- poll every group ----
        let groups: VecDeque<Arc<GroupRt>> = lock(&t.groups).values().cloned().collect();
        let queue = Arc::new(Mutex::new(groups));
        let gone: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let mut workers = Vec::new();
        for _ in 0..POLL_CONCURRENCY {
            let (sh, t2, c, q, gone) = (
                shared.clone(),
                t.clone(),
                cancel.clone(),
                queue.clone(),
                gone.clone(),
            );
            workers.push(tracker.spawn(async move {
                loop {
                    let next = lock(&q).pop_front();
                    let Some(g) = next else { break };
                    if c.is_cancelled() {
                        break;
                    }
                    if let Some(kind) = poll_one(&sh, &t2, &g, &c).await {
                        if kind == ErrorKind::NotFound {
                            lock(&gone).push(g.name.clone());
                        }
                    }
                }
            }));
        }
        for w in workers {
            let _ = w.await;
        }
        if cancel.is_cancelled() {
            break;
        }
        let gone = std::mem::take(&mut *lock(&gone));
        if !gone.is_empty() {
            // Deleted since the listing: drop now; a later listing (or the
            // explicit list) brings it back if it reappears.
            for g in &gone {
                listed.remove(g);
                missing.insert(g.clone());
            }
            let mut w = wanted_static(&t);
            w.retain(|g| !missing.contains(g));
            w.extend(listed.iter().cloned());
            apply_groups(&shared, &t, &w);
        }
        if discovered_ok && !t.ready.swap(true, Ordering::AcqRel) {
            tracing::info!(target_name = %t.spec.name, groups = lock(&t.groups).len(), "first round complete");
        }

        // ---- pace: stretch when the budget cannot cover every group ----
        let took = round_start.elapsed();
        let effective = took.max(t.spec.poll_interval);
        t.effective_interval_ms
            .store(effective.as_millis() as u64, Ordering::Relaxed);
        let max_ms = shared
            .targets
            .iter()
            .map(|t| t.effective_interval_ms.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0);
        shared.metrics.poll_interval.set(max_ms as f64 / 1000.0);
        let over = took > t.spec.poll_interval + t.spec.poll_interval / 10;
        if over && !stretched {
            tracing::warn!(
                target_name = %t.spec.name,
                configured_s = t.spec.poll_interval.as_secs_f64(),
                effective_s = took.as_secs_f64(),
                groups = lock(&t.groups).len(),
                api_rate_per_second = t.bucket.rate(),
                "the API budget cannot poll every group each interval; polling less often (raise api_rate_per_second or poll_interval)"
            );
        } else if !over && stretched {
            tracing::info!(target_name = %t.spec.name, "poll interval back to the configured value");
        }
        stretched = over;
        let sleep = t.spec.poll_interval.saturating_sub(took);
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(sleep) => {}
            _ = t.wake.notified() => {}
        }
    }
}

/// Polls one group once, recording the outcome. Returns the error kind if
/// the poll failed.
async fn poll_one(
    shared: &Shared,
    t: &TargetRt,
    g: &GroupRt,
    cancel: &CancellationToken,
) -> Option<ErrorKind> {
    let ctx = PollCtx {
        api: t.api.as_ref(),
        calls: &t.calls,
        metrics: &shared.metrics,
        ingest: &shared.ingest,
        cancel,
        page_limit: t.spec.page_limit,
        timing: t.spec.timing(),
        clock: &now_ms,
    };
    let result = poller::poll_group(&ctx, &g.name, &g.progress).await;
    match result {
        Ok(s) => {
            if s.new > 0 || s.pages > 0 {
                shared.persist.mark_dirty();
            }
            let mut st = lock(&g.status);
            st.last_poll_ms = Some(now_ms());
            if st.error.take().is_some() {
                tracing::info!(target_name = %t.spec.name, log_group = %g.name, "polling recovered");
            }
            None
        }
        Err(CallError::Cancelled) => None,
        Err(CallError::Api(err)) => {
            // Events counted before the failure are remembered: mark dirty.
            shared.persist.mark_dirty();
            shared
                .metrics
                .poll_errors
                .with_label_values(&[g.name.as_str(), err.kind.as_str()])
                .inc();
            let msg = err.to_string();
            let mut st = lock(&g.status);
            if st.error.as_deref() != Some(msg.as_str()) {
                tracing::warn!(target_name = %t.spec.name, log_group = %g.name, error = %err, "poll failed; retrying next round");
            }
            st.error = Some(msg);
            Some(err.kind)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scrape_time_values;

    #[test]
    fn scrape_time_values_grow_with_the_clock() {
        // (newest event, last success, watched since, now) -> (lag, since)
        type Case = ((Option<i64>, Option<i64>, i64, i64), (Option<f64>, f64));
        let cases: &[Case] = &[
            // Polled a second ago, newest event 3 s old.
            ((Some(7_000), Some(9_000), 0, 10_000), (Some(3.0), 1.0)),
            // The same group 60 s later with every poll failing: both grew by 60 s.
            ((Some(7_000), Some(9_000), 0, 70_000), (Some(63.0), 61.0)),
            // Never succeeded since start (outage at start): counts from the start.
            ((Some(7_000), None, 5_000, 70_000), (Some(63.0), 65.0)),
            // No event counted yet: no lag.
            ((None, Some(9_000), 0, 10_000), (None, 1.0)),
            // Clock behind an event stamped in the future: never negative.
            ((Some(12_000), Some(10_500), 0, 10_000), (Some(0.0), 0.0)),
        ];
        for &((newest, last, watched, now), want) in cases {
            assert_eq!(
                scrape_time_values(newest, last, watched, now),
                want,
                "newest {newest:?}, last success {last:?}, watched since {watched}, now {now}"
            );
        }
    }
}
