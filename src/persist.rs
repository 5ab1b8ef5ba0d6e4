//! Persistence of everything counted: one owner of the state store for the
//! whole daemon, whatever the sources.
//!
//! Every write is one consistent snapshot. Each source that keeps progress
//! (the CloudWatch poller's checkpoints and remembered ids, the Firehose
//! receiver's finished request ids) registers a [`Progress`] part; a
//! snapshot takes every part's locks, pauses counting at the ingest
//! boundary, gathers the counters, and records each part's progress, so
//! the counter values on disk describe exactly the events behind the
//! progress on disk. Lock order is the sources' own (a part's lock, then the
//! ingest boundary): parts are locked one inside the other, then counting
//! is paused.
//!
//! Three kinds of write, all the same snapshot:
//! - a scrape ([`Persister::scrape`]): the answer serves the families of a
//!   snapshot written durably first, so what Prometheus saw is on disk;
//! - an acknowledgement ([`Persister::durable`]): a push source waits until
//!   a snapshot taken after its events were counted is on disk before it
//!   answers its sender (group commit: one write covers every waiter that
//!   arrived before it started);
//! - the periodic flush (when something changed) and the flush at shutdown.
//!
//! Counters and the last sessions are restored when the persister is
//! created, before any listener serves, so the first scrape of a new life
//! already continues the last one.
//!
//! A write is whole (every part's whole progress, every counter series) or,
//! when the store keeps a journal and nothing failed since the last whole
//! write, only what changed since the write before: the parts' patches
//! ([`Progress::save_changes_under`]), the counter series whose value moved
//! and the last sessions that moved. Either way it is one consistent
//! snapshot; a write costs what changed, and the store folds its journal
//! into a whole write when the journal outweighs it. The first write after
//! a part replaced another (a reload) and the first after a failed write
//! are whole; so is a process's first write unless the store continues the
//! journal it loaded (intact: complete header, no torn tail), in which case
//! the new life's first write is a record over what it loaded.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::ingest::Ingest;
use crate::metrics::{Metrics, Snapshot};
use crate::state::{
    LastSession, SavedFamily, SavedSeries, StateChanges, StateFile, StateStore, STATE_VERSION,
};

/// A source's progress, saved with the counters.
pub trait Progress: Send + Sync {
    /// The part's slot in the state file (stable across versions).
    fn slot(&self) -> &'static str;

    /// Takes this part's locks so that nothing it is counting is
    /// half-recorded, calls `inner` (which takes the next part's locks,
    /// and finally pauses counting and gathers the counters), and returns
    /// the progress read under those locks: the slot's whole value. What
    /// the next [`Progress::save_changes_under`] returns is relative to it.
    fn save_under(&self, inner: &mut dyn FnMut()) -> serde_json::Value;

    /// Like [`Progress::save_under`], but may return only what changed
    /// since the last `save_under` or `save_changes_under` (before either:
    /// since the slot's value the part was restored from, see
    /// [`Persister::saved`]), as a JSON merge patch (RFC 7396) over the
    /// slot's value. A part that could not use all of the loaded value (an
    /// unreadable entry) returns [`Saved::Whole`] the first time, so the
    /// store stops holding what it could not read. The default saves the
    /// whole value.
    fn save_changes_under(&self, inner: &mut dyn FnMut()) -> Saved {
        Saved::Whole(self.save_under(inner))
    }
}

/// What a part saved in one write.
#[derive(Debug, Clone, PartialEq)]
pub enum Saved {
    /// The slot's whole value.
    Whole(serde_json::Value),
    /// A JSON merge patch over the slot's value as last saved.
    Patch(serde_json::Value),
}

/// A snapshot as written: whole, or the changes since the last write.
enum Write {
    Whole(Box<StateFile>),
    Changes(StateChanges),
}

/// The counter values and last sessions of the last write, to tell what
/// changed since.
#[derive(Default)]
struct Baseline {
    /// Family name -> series as last written (insertion order: the store
    /// only appends, so a series keeps its index and its label `Arc`).
    counters: HashMap<String, Vec<SavedSeries>>,
    sessions: HashMap<(String, String), f64>,
}

impl Baseline {
    fn reset(&mut self, counters: &[SavedFamily], sessions: &[LastSession]) {
        self.counters = counters
            .iter()
            .map(|f| (f.name.clone(), f.series.clone()))
            .collect();
        self.sessions = sessions
            .iter()
            .map(|s| ((s.server_id.clone(), s.user.clone()), s.timestamp_seconds))
            .collect();
    }

    /// The series whose value differs from the last write (or that are
    /// new); the baseline becomes `now`.
    fn counter_changes(&mut self, now: Vec<SavedFamily>) -> Vec<SavedFamily> {
        let mut out = Vec::new();
        let mut next = HashMap::with_capacity(now.len());
        for f in now {
            let prev = self.counters.remove(&f.name).unwrap_or_default();
            let mut by_labels: Option<HashMap<&[Box<str>], u64>> = None;
            let mut rows = Vec::new();
            for (i, s) in f.series.iter().enumerate() {
                let before = match prev.get(i) {
                    Some(p) if Arc::ptr_eq(&p.labels, &s.labels) => Some(p.value),
                    _ => by_labels
                        .get_or_insert_with(|| prev.iter().map(|p| (&*p.labels, p.value)).collect())
                        .get(&*s.labels)
                        .copied(),
                };
                if before != Some(s.value) {
                    rows.push(s.clone());
                }
            }
            if !rows.is_empty() {
                out.push(SavedFamily {
                    name: f.name.clone(),
                    labels: f.labels.clone(),
                    series: rows,
                });
            }
            next.insert(f.name, f.series);
        }
        self.counters = next;
        out
    }

    /// The last sessions that differ from the last write.
    fn session_changes(&mut self, now: Vec<LastSession>) -> Vec<LastSession> {
        let mut out = Vec::new();
        for s in now {
            let key = (s.server_id.clone(), s.user.clone());
            if self.sessions.insert(key, s.timestamp_seconds) != Some(s.timestamp_seconds) {
                out.push(s);
            }
        }
        out
    }
}

/// The owner of the state store.
pub struct Persister {
    store: Arc<dyn StateStore>,
    ingest: Arc<Ingest>,
    metrics: Arc<Metrics>,
    parts: Mutex<Vec<Arc<dyn Progress>>>,
    /// Slots loaded at start that no part has claimed yet: written back as
    /// they were, so a source that is off for one life (push only) finds
    /// its progress again when it is back.
    unclaimed: Mutex<BTreeMap<String, serde_json::Value>>,
    /// One write at a time; waiters for durability queue here.
    write_lock: tokio::sync::Mutex<()>,
    dirty: AtomicBool,
    /// Durability requests handed out (see [`Persister::durable`]).
    requested: AtomicU64,
    /// Highest request covered by a successful write.
    durable: AtomicU64,
    /// The next write must be whole (a part replaced another, a write
    /// failed; the store adds its own reasons).
    whole_next: AtomicBool,
    /// What the last write held, to write only what changed.
    baseline: Mutex<Baseline>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Persister {
    /// Loads the store (never failing: a missing or unreadable file is a
    /// first start, reported by the store) and restores the counters and
    /// the last sessions at once.
    pub fn load(
        store: Arc<dyn StateStore>,
        ingest: Arc<Ingest>,
        metrics: Arc<Metrics>,
    ) -> Arc<Persister> {
        let state = store.load();
        ingest.restore_last_sessions(&state.last_sessions);
        // Counters resume where the saved state (the last served scrape, a
        // later acknowledgement or flush) left them; the events after the
        // saved progress are counted again from there.
        let skipped = metrics.restore_counters(&state.counter_families);
        let saved_series: usize = state.counter_families.iter().map(|f| f.series.len()).sum();
        if saved_series > 0 {
            tracing::info!(
                series = saved_series - skipped,
                skipped,
                "counters resumed from the saved state"
            );
        }
        // Both outcomes (and both kinds of write) exist from the start (a
        // failure alert needs the series before the first failure; scrapes
        // keep one shape: a write observed after its own snapshot would
        // otherwise add a series to the next answer).
        for outcome in ["success", "failure"] {
            let _ = metrics.state_writes.with_label_values(&[outcome]);
        }
        for kind in ["whole", "record"] {
            let _ = metrics.state_write_duration.with_label_values(&[kind]);
        }
        // What the store holds now: when it continues its journal (the
        // first write is then a record), changes are relative to this.
        let mut baseline = Baseline::default();
        baseline.reset(&state.counter_families, &state.last_sessions);
        Arc::new(Persister {
            store,
            ingest,
            metrics,
            parts: Mutex::new(Vec::new()),
            unclaimed: Mutex::new(state.parts),
            write_lock: tokio::sync::Mutex::new(()),
            dirty: AtomicBool::new(false),
            requested: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            // The store says whether the first write must be whole
            // (`StateStore::wants_whole`).
            whole_next: AtomicBool::new(false),
            baseline: Mutex::new(baseline),
        })
    }

    /// Where the state lives, for messages.
    pub fn describe(&self) -> String {
        self.store.describe()
    }

    /// The progress saved in `slot` (`None` on a first start). Until the
    /// part registers, snapshots keep writing it as it was.
    pub fn saved(&self, slot: &str) -> Option<serde_json::Value> {
        lock(&self.unclaimed).get(slot).cloned()
    }

    /// Includes `part` in every later snapshot (its slot is then written
    /// from it).
    ///
    /// A slot's first part starts from the progress loaded for it (see
    /// [`Persister::saved`]), which is what the store holds, so its changes
    /// are relative to that and writes can stay records. A part that
    /// replaces another (a reload) does not know what its predecessor
    /// wrote: the next write is whole.
    pub fn register(&self, part: Arc<dyn Progress>) {
        let mut parts = lock(&self.parts);
        lock(&self.unclaimed).remove(part.slot());
        let before = parts.len();
        parts.retain(|p| p.slot() != part.slot());
        if parts.len() < before {
            self.whole_next.store(true, Ordering::Release);
        }
        parts.push(part);
    }

    /// Something was counted or progressed: the periodic flush writes.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Builds the state from memory, consistently (see the module docs):
    /// while counting is paused only the values are copied; ordering and
    /// encoding happen after counting resumed. Whole, or only what changed
    /// since the last write. Returns it with the metric snapshot taken with
    /// it, which a scrape answering from this state must serve.
    fn snapshot(&self, whole: bool) -> (Write, Snapshot) {
        // Both read under the parts lock, as `register` changes them: a
        // slot is written either from its part or as it was loaded.
        let (parts, slots) = {
            let parts = lock(&self.parts);
            (parts.clone(), whole.then(|| lock(&self.unclaimed).clone()))
        };
        let mut gathered = None;
        let mut saved: Vec<(&'static str, Saved)> = Vec::with_capacity(parts.len());
        {
            let mut innermost = || {
                gathered = Some(self.ingest.quiesced(|| self.metrics.copy_values()));
            };
            nest(&parts, whole, &mut innermost, &mut saved);
        }
        let (copied, last_sessions) = match gathered {
            Some(g) => g,
            None => self.ingest.quiesced(|| self.metrics.copy_values()),
        };
        let snapshot = copied.finish();
        let counters = snapshot.saved_counters();
        let mut baseline = lock(&self.baseline);
        let write = match slots {
            Some(mut slots) => {
                for (slot, saved) in saved {
                    let (Saved::Whole(v) | Saved::Patch(v)) = saved;
                    slots.insert(slot.to_owned(), v);
                }
                baseline.reset(&counters, &last_sessions);
                Write::Whole(Box::new(StateFile {
                    version: STATE_VERSION,
                    saved_at_ms: now_ms(),
                    journal_epoch: 0,
                    targets: BTreeMap::new(),
                    parts: slots,
                    last_sessions,
                    counter_families: counters,
                    counters: Vec::new(),
                }))
            }
            None => {
                let mut changes = StateChanges {
                    saved_at_ms: now_ms(),
                    ..StateChanges::default()
                };
                for (slot, saved) in saved {
                    match saved {
                        Saved::Whole(v) => changes.parts.insert(slot.to_owned(), v),
                        Saved::Patch(v) => changes.patches.insert(slot.to_owned(), v),
                    };
                }
                changes.counter_families = baseline.counter_changes(counters);
                changes.last_sessions = baseline.session_changes(last_sessions);
                Write::Changes(changes)
            }
        };
        (write, snapshot)
    }

    /// Takes a snapshot and writes it durably; returns the families gathered
    /// with it once the write succeeded. Callers hold the write lock. With
    /// `may_compact` (the flusher, not a scrape or an acknowledgement,
    /// which should not wait for it) the write is whole when the store's
    /// journal asks to be folded in.
    async fn write(&self, may_compact: bool) -> anyhow::Result<Snapshot> {
        self.dirty.store(false, Ordering::Release);
        // Every durability request handed out before the snapshot is
        // covered by it: its events were counted before it asked.
        let covers = self.requested.load(Ordering::Acquire);
        let whole = self.whole_next.swap(false, Ordering::AcqRel)
            || self.store.wants_whole()
            || (may_compact && self.store.wants_compaction());
        let started = std::time::Instant::now();
        let (write, snapshot) = self.snapshot(whole);
        let kind = match &write {
            Write::Whole(_) => "whole",
            Write::Changes(_) => "record",
        };
        let store = self.store.clone();
        let result = tokio::task::spawn_blocking(move || match write {
            Write::Whole(mut state) => store.save(&mut state),
            Write::Changes(changes) if changes.is_empty() => Ok(()),
            Write::Changes(changes) => store.save_changes(&changes),
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r);
        match result {
            Ok(()) => {
                self.durable.fetch_max(covers, Ordering::AcqRel);
                self.metrics
                    .state_writes
                    .with_label_values(&["success"])
                    .inc();
                self.metrics
                    .state_write_duration
                    .with_label_values(&[kind])
                    .observe(started.elapsed().as_secs_f64());
                Ok(snapshot)
            }
            Err(err) => {
                self.dirty.store(true, Ordering::Release);
                // What this write took from the parts is not on disk: the
                // next write carries everything.
                self.whole_next.store(true, Ordering::Release);
                self.metrics
                    .state_writes
                    .with_label_values(&["failure"])
                    .inc();
                tracing::error!(path = %self.store.describe(), error = %err, "writing the state file failed; will retry");
                Err(anyhow::anyhow!(
                    "writing state file {}: {err}",
                    self.store.describe()
                ))
            }
        }
    }

    /// Writes the state now (periodic flush, shutdown).
    pub async fn flush(&self) -> anyhow::Result<()> {
        let _guard = self.write_lock.lock().await;
        self.write(true).await.map(|_| ())
    }

    /// For a scrape: takes a consistent snapshot, writes it durably, and
    /// returns the families to serve, so that the state on disk is exactly
    /// the state behind the values in the answer. If the write fails the
    /// families are still returned (the scrape is answered;
    /// `state_writes_total{outcome="failure"}` and the log say the guarantee
    /// is at risk).
    pub async fn scrape(&self) -> Snapshot {
        let _guard = self.write_lock.lock().await;
        match self.write(false).await {
            Ok(s) => s,
            Err(_) => self.metrics.snapshot(),
        }
    }

    /// Returns once a snapshot taken after this call began is on disk: a
    /// push source calls it after its events were counted and before it
    /// acknowledges them, so an acknowledged event is never lost by a crash
    /// (the sender does not resend it). Concurrent callers share writes.
    pub async fn durable(&self) -> anyhow::Result<()> {
        let mine = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        if self.durable.load(Ordering::Acquire) >= mine {
            return Ok(());
        }
        let _guard = self.write_lock.lock().await;
        // A write that started while this caller waited may cover it.
        if self.durable.load(Ordering::Acquire) >= mine {
            return Ok(());
        }
        self.write(false).await.map(|_| ())
    }

    /// Writes every `every` when something changed or the store's journal
    /// should be folded in (so that scrapes do not wait for that).
    pub async fn run_flusher(self: Arc<Self>, every: Duration, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {}
            }
            if self.dirty.load(Ordering::Acquire) || self.store.wants_compaction() {
                let _ = self.flush().await;
            }
        }
    }
}

/// Calls `parts[0].save_under(parts[1].save_under(... innermost))` (or
/// `save_changes_under` unless `whole`), collecting each part's saved
/// value.
fn nest(
    parts: &[Arc<dyn Progress>],
    whole: bool,
    innermost: &mut dyn FnMut(),
    saved: &mut Vec<(&'static str, Saved)>,
) {
    match parts.split_first() {
        None => innermost(),
        Some((first, rest)) => {
            let mut inner_saved = Vec::new();
            let mut inner = || nest(rest, whole, innermost, &mut inner_saved);
            let value = if whole {
                Saved::Whole(first.save_under(&mut inner))
            } else {
                first.save_changes_under(&mut inner)
            };
            saved.push((first.slot(), value));
            saved.extend(inner_saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Limits;
    use crate::pipeline::PipelineConfig;

    /// A store in memory that keeps every state saved.
    #[derive(Default)]
    struct Memory {
        initial: Mutex<Option<StateFile>>,
        saved: Mutex<Vec<serde_json::Value>>,
    }

    impl StateStore for Memory {
        fn load(&self) -> StateFile {
            lock(&self.initial).take().unwrap_or_default()
        }
        fn save(&self, state: &mut StateFile) -> std::io::Result<()> {
            lock(&self.saved).push(serde_json::to_value(state).unwrap());
            Ok(())
        }
        fn describe(&self) -> String {
            "memory".into()
        }
    }

    struct Part(&'static str, Mutex<u32>);

    impl Progress for Part {
        fn slot(&self) -> &'static str {
            self.0
        }
        fn save_under(&self, inner: &mut dyn FnMut()) -> serde_json::Value {
            let n = lock(&self.1);
            inner();
            serde_json::json!({ "n": *n })
        }
    }

    fn persister(initial: StateFile) -> (Arc<Memory>, Arc<Metrics>, Arc<Persister>) {
        let store = Arc::new(Memory::default());
        *lock(&store.initial) = Some(initial);
        let registry = prometheus::Registry::new();
        let metrics = Arc::new(Metrics::new(&registry, Limits::default()));
        let ingest = Arc::new(Ingest::new(metrics.clone(), PipelineConfig::default()));
        let p = Persister::load(store.clone(), ingest, metrics.clone());
        (store, metrics, p)
    }

    /// The sum of a saved counter family's series.
    fn counter(state: &serde_json::Value, name: &str) -> Option<f64> {
        let family = state["counter_families"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == name)?;
        Some(
            family["series"]
                .as_array()?
                .iter()
                .filter_map(|row| row[0].as_f64())
                .sum(),
        )
    }

    /// A slot no part claims (a source that is off in this life) is written
    /// back as it was loaded; a registered part's slot is written from it;
    /// counters resume from the loaded values at once.
    #[tokio::test]
    async fn slots_are_carried_or_written_by_their_part_and_counters_resume() {
        let mut initial = StateFile {
            version: STATE_VERSION,
            ..StateFile::default()
        };
        initial
            .parts
            .insert("off".into(), serde_json::json!({"keep": [1, 2, 3]}));
        initial
            .parts
            .insert("mine".into(), serde_json::json!({"n": 41}));
        initial.counter_families.push(crate::state::SavedFamily {
            name: "aws_transfer_events_total".into(),
            labels: vec!["server_id".into(), "activity".into()],
            series: vec![crate::state::SavedSeries {
                value: 7,
                labels: vec![Box::<str>::from("s-1"), Box::from("CONNECTED")].into(),
            }],
        });
        let (store, _metrics, p) = persister(initial);
        assert_eq!(p.saved("mine"), Some(serde_json::json!({"n": 41})));
        p.flush().await.unwrap();
        {
            let saved = lock(&store.saved);
            assert_eq!(saved[0]["parts"]["mine"], serde_json::json!({"n": 41}));
            assert_eq!(
                counter(&saved[0], "aws_transfer_events_total"),
                Some(7.0),
                "resumed when loaded"
            );
        }
        p.register(Arc::new(Part("mine", Mutex::new(42))));
        p.flush().await.unwrap();
        let saved = lock(&store.saved);
        assert_eq!(saved[1]["parts"]["mine"], serde_json::json!({"n": 42}));
        assert_eq!(
            saved[1]["parts"]["off"],
            serde_json::json!({"keep": [1, 2, 3]})
        );
        assert_eq!(counter(&saved[1], "aws_transfer_events_total"), Some(7.0));
    }

    /// `durable` returns only after a write that started after the call:
    /// what was counted before it is on disk; concurrent callers share
    /// writes (never more writes than callers).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn durable_covers_what_was_counted_before_it_and_shares_writes() {
        let (store, metrics, p) = persister(StateFile::default());
        for round in 1..=3u64 {
            metrics
                .events
                .with_label_values(&["s-1", "CONNECTED"])
                .inc();
            p.durable().await.unwrap();
            let saved = lock(&store.saved);
            let last = saved.last().expect("a write");
            assert_eq!(
                counter(last, "aws_transfer_events_total"),
                Some(round as f64),
                "round {round}"
            );
        }
        let before = lock(&store.saved).len();
        let calls: Vec<_> = (0..32)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(async move { p.durable().await })
            })
            .collect();
        for c in calls {
            c.await.unwrap().unwrap();
        }
        let writes = lock(&store.saved).len() - before;
        assert!((1..=32).contains(&writes), "{writes} writes for 32 callers");
    }

    /// A part that saves a map, or only the keys that changed since.
    #[derive(Default)]
    struct MapPart {
        map: Mutex<BTreeMap<String, u64>>,
        changed: Mutex<std::collections::BTreeSet<String>>,
    }

    impl MapPart {
        fn set(&self, k: &str, v: u64) {
            lock(&self.map).insert(k.into(), v);
            lock(&self.changed).insert(k.into());
        }
    }

    impl Progress for MapPart {
        fn slot(&self) -> &'static str {
            "map"
        }
        fn save_under(&self, inner: &mut dyn FnMut()) -> serde_json::Value {
            let m = lock(&self.map);
            inner();
            lock(&self.changed).clear();
            serde_json::to_value(&*m).unwrap()
        }
        fn save_changes_under(&self, inner: &mut dyn FnMut()) -> Saved {
            let m = lock(&self.map);
            inner();
            let changed = std::mem::take(&mut *lock(&self.changed));
            Saved::Patch(
                changed
                    .iter()
                    .map(|k| (k.clone(), serde_json::json!(m[k])))
                    .collect(),
            )
        }
    }

    /// With the file store, writes after the first append only what
    /// changed to the journal (the state file stays as it was); a new
    /// process loads the state file with the journal folded in: the same
    /// counters, last sessions and progress as the live ones.
    #[tokio::test]
    async fn writes_after_the_first_go_to_the_journal_and_load_folds_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let journal = crate::state::journal_path(&path);
        let open = || {
            let store = Arc::new(crate::state::FileStore::new(&path));
            let registry = prometheus::Registry::new();
            let metrics = Arc::new(Metrics::new(&registry, Limits::default()));
            let ingest = Arc::new(Ingest::new(metrics.clone(), PipelineConfig::default()));
            let p = Persister::load(store, ingest, metrics.clone());
            (metrics, p)
        };
        let (metrics, p) = open();
        let part = Arc::new(MapPart::default());
        part.set("a", 1);
        p.register(part.clone());
        let events = |server: &str| metrics.events.with_label_values(&[server, "CONNECTED"]);
        events("s-1").inc();
        p.flush().await.unwrap();
        let base = std::fs::read(&path).unwrap();
        assert_eq!(
            std::fs::read(&journal).unwrap(),
            crate::state::journal::MAGIC
        );
        let mut journal_len = crate::state::journal::MAGIC.len();
        for round in 2..=20u64 {
            events("s-1").inc();
            if round % 3 == 0 {
                events(&format!("s-{round}")).inc_by(round);
            }
            part.set(&format!("k{}", round % 4), round);
            p.flush().await.unwrap();
            assert_eq!(
                std::fs::read(&path).unwrap(),
                base,
                "round {round}: base untouched"
            );
            let len = std::fs::metadata(&journal).unwrap().len() as usize;
            assert!(len > journal_len, "round {round}: a record appended");
            assert!(
                len - journal_len < 2_000,
                "round {round}: only the changes ({} bytes)",
                len - journal_len
            );
            journal_len = len;
        }
        // Nothing counted: the record holds only the state-write counter
        // (the last write's success, which scrapes showed).
        // A scrape serves what it wrote.
        let live = p.scrape().await.saved_counters();
        let len = std::fs::metadata(&journal).unwrap().len() as usize;
        assert!(len - journal_len < 300, "{} bytes", len - journal_len);
        let live_map = lock(&part.map).clone();
        drop(p);

        let (metrics2, p2) = open();
        assert_eq!(
            p2.saved("map"),
            Some(serde_json::to_value(&live_map).unwrap())
        );
        let mut again = metrics2.snapshot().saved_counters();
        let mut live = live;
        for f in again.iter_mut().chain(live.iter_mut()) {
            f.series.sort_by(|a, b| a.labels.cmp(&b.labels));
        }
        assert_eq!(again, live);
        assert_eq!(
            metrics2
                .events
                .with_label_values(&["s-1", "CONNECTED"])
                .get(),
            20
        );
        // The new process continues the journal: its first write is a
        // record of what moved since the load (the base untouched), even
        // though its part is new to it, and a third process reads it all.
        let part2 = Arc::new(MapPart::default());
        for (k, v) in &live_map {
            part2.set(k, *v);
        }
        std::mem::take(&mut *lock(&part2.changed));
        p2.register(part2.clone());
        part2.set("k-new", 99);
        metrics2
            .events
            .with_label_values(&["s-1", "CONNECTED"])
            .inc();
        p2.flush().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), base, "base untouched");
        let len = std::fs::metadata(&journal).unwrap().len() as usize;
        assert!(
            len > journal_len && len - journal_len < 1_000,
            "one small record: {} bytes",
            len - journal_len
        );
        let (metrics3, p3) = open();
        assert_eq!(p3.saved("map").unwrap()["k-new"], 99);
        assert_eq!(p3.saved("map").unwrap()["k1"], live_map["k1"]);
        let s1 = |m: &Metrics| m.events.with_label_values(&["s-1", "CONNECTED"]).get();
        assert_eq!(s1(&metrics3), 21);
        drop(p3);

        // A torn tail (a crash inside an append): the next process ignores
        // it, and its first write is whole, which empties the journal.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&journal)
            .unwrap();
        std::io::Write::write_all(&mut f, &[7, 0, 0]).unwrap();
        drop(f);
        let (metrics4, p4) = open();
        assert_eq!(s1(&metrics4), 21);
        p4.flush().await.unwrap();
        assert_eq!(
            std::fs::read(&journal).unwrap(),
            crate::state::journal::MAGIC
        );
        assert_ne!(std::fs::read(&path).unwrap(), base);
        drop(p4);
        let (metrics5, p5) = open();
        assert_eq!(s1(&metrics5), 21);
        assert_eq!(p5.saved("map").unwrap()["k-new"], 99);
    }

    /// A journaling store whose second record fails: the failed write is
    /// reported, and the next write is whole (what the failed record held
    /// is not lost), after which records resume.
    #[tokio::test]
    async fn a_failed_record_makes_the_next_write_whole() {
        #[derive(Default)]
        struct Flaky {
            log: Mutex<Vec<&'static str>>,
            wholes: Mutex<Vec<serde_json::Value>>,
        }
        impl Flaky {
            fn saved_whole(&self) -> bool {
                lock(&self.log).contains(&"whole")
            }
        }
        impl StateStore for Flaky {
            fn load(&self) -> StateFile {
                StateFile::default()
            }
            fn save(&self, state: &mut StateFile) -> std::io::Result<()> {
                lock(&self.log).push("whole");
                lock(&self.wholes).push(serde_json::to_value(&*state).unwrap());
                Ok(())
            }
            fn wants_whole(&self) -> bool {
                // A store with nothing on disk yet.
                !self.saved_whole()
            }
            fn save_changes(&self, _: &StateChanges) -> std::io::Result<()> {
                let mut log = lock(&self.log);
                let n = log.iter().filter(|e| e.starts_with("record")).count();
                if n == 1 {
                    log.push("record failed");
                    return Err(std::io::Error::other("disk full"));
                }
                log.push("record");
                Ok(())
            }
            fn describe(&self) -> String {
                "flaky".into()
            }
        }
        let store = Arc::new(Flaky::default());
        let registry = prometheus::Registry::new();
        let metrics = Arc::new(Metrics::new(&registry, Limits::default()));
        let ingest = Arc::new(Ingest::new(metrics.clone(), PipelineConfig::default()));
        let p = Persister::load(store.clone(), ingest, metrics.clone());
        let part = Arc::new(MapPart::default());
        p.register(part.clone());
        for round in 1..=5u64 {
            part.set(&format!("k{round}"), round);
            metrics
                .events
                .with_label_values(&["s-1", "CONNECTED"])
                .inc();
            let _ = p.flush().await;
        }
        assert_eq!(
            *lock(&store.log),
            ["whole", "record", "record failed", "whole", "record"]
        );
        {
            let wholes = lock(&store.wholes);
            let second = &wholes[1];
            assert_eq!(
                second["parts"]["map"],
                serde_json::json!({"k1": 1, "k2": 2, "k3": 3, "k4": 4}),
                "the whole write after the failure holds what the failed record held"
            );
            assert_eq!(counter(second, "aws_transfer_events_total"), Some(4.0));
            assert_eq!(
                metrics.state_writes.with_label_values(&["failure"]).get(),
                1
            );
        }
        // A part that replaces another (a reload) does not know what its
        // predecessor wrote: the next write is whole, then records again.
        p.register(Arc::new(MapPart::default()));
        let _ = p.flush().await;
        let _ = p.flush().await;
        assert_eq!(
            lock(&store.log)[5..],
            ["whole", "record"],
            "after a part was replaced"
        );
        // Successful writes by kind (the failed record is not timed).
        let timed = |kind: &str| {
            metrics
                .state_write_duration
                .with_label_values(&[kind])
                .get_sample_count()
        };
        assert_eq!((timed("whole"), timed("record")), (3, 3));
    }
}
