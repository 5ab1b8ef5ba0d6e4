//! Per-group progress through a CloudWatch Logs group. Pure: no I/O, no
//! clock (every function takes `now_ms`), so every rule here is table-tested.
//!
//! # The rules
//!
//! * **Polls read a little behind the checkpoint.** The checkpoint is the
//!   `now` of the last poll whose pagination completed. Each poll reads
//!   `[checkpoint - overlap, now]`, where the overlap comes from how late
//!   events of this group really become visible: a decaying estimate of the
//!   99th percentile of `ingestionTime - timestamp`, times a safety factor,
//!   never below the configured floor nor above the late-arrival window. In
//!   steady state a poll re-reads only the overlap, not the whole window.
//!   The first poll in a process reads the whole window (and from
//!   `swept_to`, if older) once, so what became visible while no exporter
//!   ran is counted at once, and a backlog is not read again by a sweep.
//! * **Sweeps read each stretch of time once more, after its window has
//!   closed.** Every `sweep_interval` (P; every W for a quiet group, see
//!   [`SWEEP_MIN_EVENTS`]) a sweep reads `[swept_to, now -
//!   lag]` with `lag = sweep_reach - sweep_interval` (R − P ≥ the late-arrival
//!   window W), then moves `swept_to` to its end. An event that becomes
//!   visible within W of its timestamp is therefore visible when the sweep
//!   of its stretch runs, so a sweep finds whatever the polls' overlap
//!   missed. A sweep skips everything before `swept_to` (already swept, so
//!   complete) and everything after `now - lag` (still open: reading it now
//!   would only have to be repeated), so each event is read by exactly one
//!   sweep: about one read when new plus one by the sweep.
//! * **Exactly once within a process.** Every event handled (counted or
//!   reported late) is remembered by id with its timestamp until no read can
//!   return it again: ids older than both the next poll's start and
//!   `swept_to` are dropped (`kept_from_ms`), so memory is bounded by the
//!   events of about `lag + sweep_interval + poll interval`. No order is
//!   assumed within or across pages (moto returns events grouped by stream,
//!   AWS by time).
//! * **Late beyond the window.** An event whose `ingestionTime` is more than
//!   W after its timestamp is reported (`aws_transfer_exporter_events_late_total`),
//!   never counted in the product metrics: counting it would make a counter
//!   jump for something that happened long ago. Sweeps find such events up
//!   to `lag` (plus up to one sweep interval) late.
//!
//! # Honest limits
//!
//! * An event that becomes visible after the sweep of its stretch (more than
//!   `sweep_reach - sweep_interval` after its timestamp, W with the default
//!   reach) is neither counted nor reported. Raise `poll.sweep_reach` to
//!   report later events, at the cost of memory (ids are remembered over the
//!   reach) and of counting in-window stragglers later.
//! * An event inside W that the polls' overlap missed is counted when its
//!   stretch is swept: up to `sweep_reach` after its timestamp.
//! * Events without an `ingestionTime` are taken as on time.
//!
//! # State compatibility
//!
//! Progress saved by the window-and-audit poller (fields `slices`,
//! `audited_to_ms`, no `swept_to_ms`) loads: its ids cover
//! `[checkpoint - W, checkpoint]`, which becomes both `swept_to_ms` and
//! `kept_from_ms` on first use ([`GroupProgress::normalize`]).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Upper bounds of the delay estimate's buckets, milliseconds (the last
/// bucket is open). Roughly doubling: fine where CloudWatch usually is
/// (sub-second to seconds), coarse where only the order of magnitude matters.
pub const DELAY_BOUNDS_MS: &[i64] = &[
    100, 250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000, 600_000,
    1_800_000, 3_600_000,
];

/// The quantile of the delay the overlap covers. The rest (1 in 100 at
/// most) is found by the sweep, later but still exactly once.
pub const DELAY_QUANTILE: f64 = 0.99;

/// The overlap is this many times the estimated quantile: delays drift
/// between estimate updates, and the estimate interpolates within buckets.
pub const OVERLAP_SAFETY_FACTOR: f64 = 1.5;

/// Observations older than this count half as much: the estimate follows a
/// change in CloudWatch's behaviour within minutes, yet a quiet group keeps
/// what it learned over a few of them.
pub const DELAY_HALF_LIFE_MS: i64 = 5 * 60_000;

/// Fewer observations than this (after decay) say too little for a 99th
/// percentile: the poll reads the whole late-arrival window (a group that
/// quiet costs one call per poll either way).
pub const DELAY_MIN_SAMPLES: u64 = 20;

/// A sweep runs every sweep interval only when its stretch holds at least
/// this many events; a quieter group is swept once per late-arrival window.
/// A thousand events of ~400 bytes fill about 40% of a 1 MB page, so a busy
/// group's sweep calls carry real pages while an idle group costs one sweep
/// call per window (with 100 idle groups, 20 calls a minute instead of 100,
/// from a default budget of 120).
pub const SWEEP_MIN_EVENTS: usize = 1000;

/// What happened to one event offered to [`GroupProgress::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Not seen before, visible within the late-arrival window: count it.
    New,
    /// Its id was already handled (counted or reported).
    Duplicate,
    /// Older than the range this read may handle: already swept (complete),
    /// or below the floor. Ignored.
    OutOfWindow,
    /// Not seen before, but it became visible more than the late-arrival
    /// window after its timestamp: report it, do not count it.
    Late,
}

/// A time range `[start_ms, end_ms]` to read (both inclusive, as
/// FilterLogEvents treats `startTime`/`endTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Which kind of read a window is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// The frequent read from just behind the checkpoint to now.
    Poll,
    /// The slower read of a stretch whose late-arrival window has closed.
    Sweep,
}

/// The timing the rules use, from the target and the `poll` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// W: events visible within this of their timestamp are counted.
    pub late_window_ms: i64,
    /// The least a poll reads behind its checkpoint.
    pub overlap_floor_ms: i64,
    /// P: how often a sweep runs.
    pub sweep_interval_ms: i64,
    /// R: how far back from now a sweep reaches (≥ P + W).
    pub sweep_reach_ms: i64,
}

impl Timing {
    /// How far behind now a sweep stops: R − P, never below W.
    pub fn sweep_lag_ms(&self) -> i64 {
        (self.sweep_reach_ms - self.sweep_interval_ms).max(self.late_window_ms)
    }
}

/// A decaying histogram of `ingestionTime - timestamp`, the base of the
/// polls' overlap. Counts are halved every [`DELAY_HALF_LIFE_MS`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelayEstimate {
    /// Observations per bucket of [`DELAY_BOUNDS_MS`] (+1 open bucket).
    #[serde(default)]
    pub counts: Vec<u64>,
    /// When the counts were last halved, Unix milliseconds.
    #[serde(default)]
    pub decayed_at_ms: i64,
}

impl DelayEstimate {
    /// Records one delay (negative delays, from clock skew, count as 0).
    pub fn observe(&mut self, delay_ms: i64) {
        if self.counts.len() != DELAY_BOUNDS_MS.len() + 1 {
            self.counts = vec![0; DELAY_BOUNDS_MS.len() + 1];
        }
        let i = DELAY_BOUNDS_MS.partition_point(|b| *b < delay_ms.max(0));
        self.counts[i] += 1;
    }

    /// Halves the counts once per half-life elapsed since the last decay.
    pub fn decay(&mut self, now_ms: i64) {
        if self.decayed_at_ms == 0 || now_ms < self.decayed_at_ms {
            self.decayed_at_ms = now_ms;
            return;
        }
        let halvings = (now_ms - self.decayed_at_ms) / DELAY_HALF_LIFE_MS;
        if halvings > 0 {
            let shift = halvings.min(63) as u32;
            for c in &mut self.counts {
                *c >>= shift;
            }
            self.decayed_at_ms += halvings * DELAY_HALF_LIFE_MS;
        }
    }

    /// The estimated `q` quantile in milliseconds (linear within a bucket;
    /// the open bucket answers `cap_ms`), or `None` with too few samples.
    pub fn quantile_ms(&self, q: f64, cap_ms: i64) -> Option<i64> {
        let total: u64 = self.counts.iter().sum();
        if total < DELAY_MIN_SAMPLES {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            if *c > 0 && (below + c) as f64 >= rank {
                let Some(&hi) = DELAY_BOUNDS_MS.get(i) else {
                    return Some(cap_ms);
                };
                let lo = if i == 0 { 0 } else { DELAY_BOUNDS_MS[i - 1] };
                let frac = ((rank - below as f64) / *c as f64).clamp(0.0, 1.0);
                return Some(lo + ((hi - lo) as f64 * frac).ceil() as i64);
            }
            below += c;
        }
        Some(cap_ms)
    }
}

/// How many ids handled since the last state write a group keeps for the
/// next write's patch; past it the next write takes the whole progress.
/// Writes come at least every flush interval, so this is a guard, not a
/// limit anyone meets.
pub const UNSAVED_IDS_CAP: usize = 200_000;

/// What changed in a group's progress since the last state write, so that a
/// write carries only that ([`GroupProgress::take_patch`]). Bookkeeping,
/// not progress: never saved, a clone starts afresh, and any two compare
/// equal.
#[derive(Debug)]
pub struct Unsaved {
    /// Something changed since the last write.
    changed: bool,
    /// Ids remembered since the last write, with their timestamps.
    ids: Vec<(String, i64)>,
    /// More than [`UNSAVED_IDS_CAP`] ids: the next write takes the whole
    /// progress.
    overflow: bool,
}

impl Default for Unsaved {
    /// Everything is unsaved: a new group (or one just restored) is
    /// written at the next write.
    fn default() -> Self {
        Unsaved {
            changed: true,
            ids: Vec::new(),
            overflow: false,
        }
    }
}

impl Clone for Unsaved {
    fn clone(&self) -> Self {
        Unsaved::default()
    }
}

impl PartialEq for Unsaved {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Unsaved {}

impl Unsaved {
    fn remember(&mut self, id: &str, ts_ms: i64) {
        self.changed = true;
        if self.overflow {
            return;
        }
        if self.ids.len() >= UNSAVED_IDS_CAP {
            self.overflow = true;
            self.ids = Vec::new();
            return;
        }
        self.ids.push((id.to_owned(), ts_ms));
    }
}

/// Progress through one log group. Serialized as-is into the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupProgress {
    /// `now` of the last poll whose pagination completed.
    pub checkpoint_ms: i64,
    /// Nothing older is ever read (the group's initial start position).
    pub floor_ms: i64,
    /// Ids handled (counted or reported late) that a read may still
    /// return: id -> timestamp.
    pub seen: HashMap<String, i64>,
    /// Every event stamped before this has been swept: complete. `None` in
    /// progress saved before sweeps existed (see [`Self::normalize`]).
    #[serde(default)]
    pub swept_to_ms: Option<i64>,
    /// `seen` holds every handled id stamped at or after this; no read
    /// handles an event stamped before it.
    #[serde(default)]
    pub kept_from_ms: Option<i64>,
    /// How late this group's events become visible.
    #[serde(default)]
    pub delay: DelayEstimate,
    /// Timestamp of the newest event counted, if any.
    #[serde(default)]
    pub newest_event_ms: Option<i64>,
    /// A poll of this group completed in this process. Until then polls
    /// read the whole late-arrival window: whatever became visible while no
    /// exporter ran is counted at once, not a sweep later. Not saved.
    #[serde(skip)]
    pub polled_in_process: bool,
    /// What changed since the last state write. Not saved.
    #[serde(skip)]
    pub unsaved: Unsaved,
}

impl GroupProgress {
    /// A group seen for the first time: start `initial_lookback_ms` ago.
    pub fn new(now_ms: i64, initial_lookback_ms: i64) -> GroupProgress {
        let floor = now_ms - initial_lookback_ms.max(0);
        GroupProgress {
            checkpoint_ms: floor,
            floor_ms: floor,
            seen: HashMap::new(),
            swept_to_ms: Some(floor),
            kept_from_ms: Some(floor),
            delay: DelayEstimate::default(),
            newest_event_ms: None,
            polled_in_process: false,
            unsaved: Unsaved::default(),
        }
    }

    /// The next state write needs this group's whole progress (its changes
    /// were too many to keep).
    pub fn needs_whole_save(&self) -> bool {
        self.unsaved.overflow
    }

    /// The whole progress was written: nothing is unsaved.
    pub fn mark_saved(&mut self) {
        self.unsaved = Unsaved {
            changed: false,
            ids: Vec::new(),
            overflow: false,
        };
    }

    /// What changed since the last write, as a JSON merge patch over the
    /// progress written then (every field but the remembered ids, which
    /// get only the ids remembered since: ids dropped since are dropped
    /// again when the progress is loaded, see [`Self::prune`]); `None` if
    /// nothing changed. Marks everything saved.
    pub fn take_patch(&mut self) -> Option<serde_json::Value> {
        if !self.unsaved.changed {
            return None;
        }
        let ids = std::mem::take(&mut self.unsaved.ids);
        self.mark_saved();
        let seen = std::mem::take(&mut self.seen);
        let fields = serde_json::to_value(&*self);
        self.seen = seen;
        let mut patch = match fields {
            Ok(serde_json::Value::Object(m)) => m,
            // Cannot happen for these plain fields.
            _ => return None,
        };
        // Absent optional fields are written as null, which removes them.
        let new_ids: serde_json::Map<String, serde_json::Value> = ids
            .into_iter()
            .map(|(id, ts)| (id, serde_json::Value::from(ts)))
            .collect();
        patch.insert("seen".into(), serde_json::Value::Object(new_ids));
        Some(serde_json::Value::Object(patch))
    }

    /// Drops remembered ids no read can return (older than `kept_from`):
    /// progress folded from a journal keeps ids its patches added after
    /// the group forgot them.
    pub fn prune(&mut self) {
        let keep = self.kept_from();
        self.seen.retain(|_, ts| *ts >= keep);
    }

    /// Fills in what progress saved by the window-and-audit poller lacks:
    /// it read `[checkpoint - W, now]` every poll and remembered the ids of
    /// that range, so that range's start is where sweeping resumes and what
    /// the ids cover. Idempotent.
    pub fn normalize(&mut self, t: &Timing) {
        let old_start = (self.checkpoint_ms - t.late_window_ms.max(0)).max(self.floor_ms);
        let swept = *self.swept_to_ms.get_or_insert(old_start);
        self.kept_from_ms.get_or_insert(old_start.min(swept));
    }

    fn swept_to(&self) -> i64 {
        self.swept_to_ms.unwrap_or(self.floor_ms)
    }

    fn kept_from(&self) -> i64 {
        self.kept_from_ms.unwrap_or(self.floor_ms)
    }

    /// How far behind its checkpoint the next poll reads: the estimated
    /// 99th percentile of the delay times the safety factor, at least the
    /// floor, at most the late-arrival window. A group with too few recent
    /// events for an estimate is read over the whole window, as before: it
    /// costs no extra call (its events fit one page), and its stragglers are
    /// counted at the next poll rather than a sweep later.
    pub fn overlap_ms(&self, t: &Timing) -> i64 {
        let w = t.late_window_ms.max(0);
        match self.delay.quantile_ms(DELAY_QUANTILE, w) {
            Some(q) => ((q as f64 * OVERLAP_SAFETY_FACTOR).ceil() as i64)
                .max(t.overlap_floor_ms)
                .min(w),
            None => w,
        }
    }

    /// The window the next poll reads: the overlap behind the checkpoint.
    /// The first poll in a process reads the whole late-arrival window, and
    /// from where sweeping stopped if that is older: it then also does the
    /// sweep's work, so a backlog after downtime is read once, not twice.
    pub fn window(&self, now_ms: i64, t: &Timing) -> Window {
        let from = if self.polled_in_process {
            self.checkpoint_ms - self.overlap_ms(t)
        } else {
            (self.checkpoint_ms - t.late_window_ms.max(0)).min(self.swept_to())
        };
        let start_ms = from.max(self.kept_from()).max(self.floor_ms);
        Window {
            start_ms,
            end_ms: now_ms.max(start_ms),
        }
    }

    /// The stretch to sweep now, if one is due: from where the last sweep
    /// ended to `now - lag`, once that spans at least a sweep interval and
    /// either holds [`SWEEP_MIN_EVENTS`] handled events or spans a
    /// late-arrival window (a quiet group is swept every window, not every
    /// sweep interval: a sweep costs a call however few events it returns).
    /// Stretches are contiguous whatever their length, so every event is
    /// swept once, at least `lag` after its timestamp.
    pub fn sweep_due(&self, now_ms: i64, t: &Timing) -> Option<Window> {
        let start_ms = self.swept_to();
        let end_ms = now_ms - t.sweep_lag_ms();
        let span = end_ms - start_ms;
        if span < t.sweep_interval_ms.max(1) {
            return None;
        }
        let busy = || {
            self.seen
                .values()
                .filter(|ts| (start_ms..=end_ms).contains(*ts))
                .take(SWEEP_MIN_EVENTS)
                .count()
                >= SWEEP_MIN_EVENTS
        };
        (span >= t.late_window_ms || busy()).then_some(Window { start_ms, end_ms })
    }

    /// Decides about one event returned for `window`, remembering it if it
    /// was not handled before. `ingestion_ms` is the event's
    /// `ingestionTime`. With `late_after_ms` (sweeps: the late-arrival
    /// window), an event ingested more than that after its timestamp is
    /// [`Admit::Late`]. Polls pass `None`: what a poll's window returns is
    /// counted, as the window poller always did (an event stamped before
    /// the exporter's first read, or visible while it was down, is not late
    /// for having waited for it).
    pub fn admit(
        &mut self,
        window: &Window,
        event_id: &str,
        ts_ms: i64,
        ingestion_ms: Option<i64>,
        late_after_ms: Option<i64>,
    ) -> Admit {
        if ts_ms < window.start_ms || ts_ms < self.kept_from() {
            return Admit::OutOfWindow;
        }
        if self.seen.contains_key(event_id) {
            return Admit::Duplicate;
        }
        self.seen.insert(event_id.to_owned(), ts_ms);
        self.unsaved.remember(event_id, ts_ms);
        let delay = ingestion_ms.map(|i| i - ts_ms);
        if let Some(d) = delay {
            self.delay.observe(d);
            if late_after_ms.is_some_and(|w| d > w) {
                return Admit::Late;
            }
        }
        if self.newest_event_ms.is_none_or(|n| ts_ms > n) {
            self.newest_event_ms = Some(ts_ms);
        }
        Admit::New
    }

    /// Pagination of `window` (a poll's or a sweep's, started at
    /// `read_at_ms`) completed: move the checkpoint (polls), move `swept_to`
    /// (a read that started at or before it saw, at `read_at_ms`, every
    /// event visible by then: what is older than `read_at_ms - lag` is
    /// complete), and forget the ids no later read can return.
    pub fn complete(&mut self, window: &Window, kind: ReadKind, read_at_ms: i64, t: &Timing) {
        self.unsaved.changed = true;
        if kind == ReadKind::Poll {
            self.polled_in_process = true;
            if window.end_ms > self.checkpoint_ms {
                self.checkpoint_ms = window.end_ms;
            }
        }
        let swept = self.swept_to();
        if window.start_ms <= swept {
            let to = window.end_ms.min(read_at_ms - t.sweep_lag_ms());
            if to > swept {
                self.swept_to_ms = Some(to);
            }
        }
        self.delay.decay(read_at_ms);
        let next_poll_start = (self.checkpoint_ms - self.overlap_ms(t)).max(self.floor_ms);
        let keep = self.swept_to().min(next_poll_start).max(self.kept_from());
        self.kept_from_ms = Some(keep);
        self.seen.retain(|_, ts| *ts >= keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const SEC: i64 = 1_000;
    const MIN: i64 = 60_000;

    /// W 5 min, floor 2 s, P 1 min, R = P + W (the defaults).
    fn defaults() -> Timing {
        Timing {
            late_window_ms: 5 * MIN,
            overlap_floor_ms: 2 * SEC,
            sweep_interval_ms: MIN,
            sweep_reach_ms: 6 * MIN,
        }
    }

    #[test]
    fn new_group_reads_from_the_lookback_then_only_the_overlap() {
        let t = defaults();
        let mut p = GroupProgress::new(100 * MIN, 10 * MIN);
        let w = p.window(100 * MIN, &t);
        assert_eq!((w.start_ms, w.end_ms), (90 * MIN, 100 * MIN));
        p.complete(&w, ReadKind::Poll, 100 * MIN, &t);
        // The first read covered the lookback: everything older than
        // now - W is complete, and no sweep is due for a sweep interval.
        assert_eq!(p.swept_to_ms, Some(95 * MIN));
        assert_eq!(p.sweep_due(100 * MIN + 10 * SEC, &t), None);
        let w2 = p.window(100 * MIN + 10 * SEC, &t);
        assert_eq!(w2.start_ms, 95 * MIN, "no delay learned yet: the window");
        for _ in 0..100 {
            p.delay.observe(300);
        }
        let w2 = p.window(100 * MIN + 10 * SEC, &t);
        assert_eq!(
            (w2.start_ms, w2.end_ms),
            (100 * MIN - 2 * SEC, 100 * MIN + 10 * SEC),
            "fast events: a poll reads the floor of overlap behind its checkpoint"
        );
        // A quiet group is swept once per window...
        assert_eq!(p.sweep_due(101 * MIN, &t), None);
        assert_eq!(
            p.sweep_due(105 * MIN, &t),
            Some(Window {
                start_ms: 95 * MIN,
                end_ms: 100 * MIN
            })
        );
        // ... a busy one every sweep interval.
        for i in 0..SWEEP_MIN_EVENTS as i64 {
            p.seen.insert(i.to_string(), 95 * MIN + i);
        }
        assert_eq!(
            p.sweep_due(101 * MIN, &t),
            Some(Window {
                start_ms: 95 * MIN,
                end_ms: 96 * MIN
            })
        );
    }

    #[test]
    fn overlap_follows_the_delay_estimate_between_floor_and_window() {
        let t = defaults();
        // (delays observed, expected overlap)
        let cases: &[(&[(i64, usize)], i64)] = &[
            (&[], 5 * MIN),                          // nothing learned: the window
            (&[(50, 1000)], 2 * SEC),                // fast group: the floor
            (&[(4 * SEC, 1000)], 7_455),             // 2 s + 99% of (2 s, 5 s], × 1.5
            (&[(50, 990), (4 * SEC, 10)], 2 * SEC),  // the top 1% is left to the sweep
            (&[(50, 900), (40 * SEC, 100)], 85_500), // 10% slow: covered
            (&[(2 * 3_600 * SEC, 100)], 5 * MIN),    // never beyond the window
            (&[(-5 * SEC, 100)], 2 * SEC),           // clock skew counts as no delay
            (&[(4 * SEC, 19)], 5 * MIN),             // too few samples
        ];
        for (obs, want) in cases {
            let mut p = GroupProgress::new(0, 0);
            for (d, n) in *obs {
                for _ in 0..*n {
                    p.delay.observe(*d);
                }
            }
            assert_eq!(p.overlap_ms(&t), *want, "observed {obs:?}");
        }
    }

    #[test]
    fn delay_estimate_halves_per_half_life() {
        let mut e = DelayEstimate::default();
        for _ in 0..64 {
            e.observe(1);
        }
        e.decay(1_000); // first call only starts the clock
        e.decay(1_000 + DELAY_HALF_LIFE_MS - 1);
        assert_eq!(e.counts.iter().sum::<u64>(), 64);
        e.decay(1_000 + 2 * DELAY_HALF_LIFE_MS);
        assert_eq!(e.counts.iter().sum::<u64>(), 16);
        e.decay(1_000 + 100 * DELAY_HALF_LIFE_MS);
        assert_eq!(e.counts.iter().sum::<u64>(), 0);
    }

    /// Table: events offered across two reads, with what each must yield:
    /// repeats within and across reads, out of order, shared milliseconds,
    /// before the window, late beyond the window, no ingestion time.
    #[test]
    fn admit_table() {
        let t = defaults();
        let poll = None;
        let sweep = Some(t.late_window_ms);
        let mut p = GroupProgress::new(100 * MIN, 10 * MIN);
        let w1 = p.window(100 * MIN, &t);
        type Row = (&'static str, i64, Option<i64>, Admit);
        let poll1: &[Row] = &[
            ("a", 99 * MIN, Some(99 * MIN + 1), Admit::New),
            ("b", 91 * MIN, Some(91 * MIN), Admit::New), // out of order
            ("c", 91 * MIN, None, Admit::New),           // same ms, no ingestion time
            ("a", 99 * MIN, Some(99 * MIN + 1), Admit::Duplicate), // a later page
            ("z", 89 * MIN, Some(89 * MIN), Admit::OutOfWindow), // below the floor
            ("o", 92 * MIN, Some(99 * MIN), Admit::New), // backfilled before the first read
        ];
        for (id, ts, ing, want) in poll1 {
            assert_eq!(
                p.admit(&w1, id, *ts, *ing, poll),
                *want,
                "poll 1: id={id} ts={ts}"
            );
        }
        p.complete(&w1, ReadKind::Poll, 100 * MIN, &t);
        assert!(p.seen.contains_key("a"), "a is newer than swept_to (95m)");
        assert!(!p.seen.contains_key("b"), "b (91m) is complete: forgotten");
        for _ in 0..100 {
            p.delay.observe(300); // learned: fast events, the floor of overlap
        }
        let w2 = p.window(102 * MIN, &t);
        let poll2: &[Row] = &[
            ("a", 99 * MIN, None, Admit::OutOfWindow), // before this poll's overlap
            ("f", 100 * MIN - 1_000, Some(100 * MIN + 500), Admit::New),
            ("g", 101 * MIN, Some(101 * MIN), Admit::New),
        ];
        for (id, ts, ing, want) in poll2 {
            assert_eq!(
                p.admit(&w2, id, *ts, *ing, poll),
                *want,
                "poll 2: id={id} ts={ts}"
            );
        }
        p.complete(&w2, ReadKind::Poll, 102 * MIN, &t);
        let s = p.sweep_due(100 * MIN + 5 * MIN, &t).expect("due");
        assert_eq!((s.start_ms, s.end_ms), (95 * MIN, 100 * MIN));
        let sweep1: &[Row] = &[
            ("l", 95 * MIN, Some(100 * MIN + 1), Admit::Late), // visible W + 1 ms late
            ("l", 95 * MIN, Some(100 * MIN + 1), Admit::Duplicate), // reported once
            ("e", 96 * MIN, Some(101 * MIN), Admit::New),      // exactly W late: inside
            ("m", 95 * MIN + 1, None, Admit::New),             // no ingestion time: on time
        ];
        for (id, ts, ing, want) in sweep1 {
            assert_eq!(
                p.admit(&s, id, *ts, *ing, sweep),
                *want,
                "sweep: id={id} ts={ts}"
            );
        }
        assert_eq!(p.newest_event_ms, Some(101 * MIN));
    }

    #[test]
    fn failed_read_keeps_its_range_so_it_is_read_again() {
        let t = defaults();
        let mut p = GroupProgress::new(100 * MIN, 10 * MIN);
        let w1 = p.window(100 * MIN, &t);
        assert_eq!(p.admit(&w1, "a", 92 * MIN, None, None), Admit::New);
        // no complete(): pagination failed half way
        let w2 = p.window(103 * MIN, &t);
        assert_eq!(w2.start_ms, 90 * MIN, "the next poll starts where it did");
        assert_eq!(p.admit(&w2, "a", 92 * MIN, None, None), Admit::Duplicate);
        assert_eq!(p.admit(&w2, "b", 93 * MIN, None, None), Admit::New);
    }

    /// A simulated group against the rules: events every 100 ms, most
    /// visible after 50 ms, 1 in 200 after 3 s (beyond the overlap, inside
    /// the window), 1 in 300 after 15 s (beyond the window W = 10 s, within
    /// the sweep lag 20 s); polls every 2 s, sweeps every 5 s. Every event
    /// inside the window is counted exactly once, every later one reported
    /// exactly once, reads stay near 1 + overlap/interval + 1 per event,
    /// and remembered ids stay bounded by the sweep reach.
    #[test]
    fn simulated_group_reads_each_event_about_twice_and_counts_it_once() {
        let t = Timing {
            late_window_ms: 10 * SEC,
            overlap_floor_ms: SEC,
            sweep_interval_ms: 5 * SEC,
            sweep_reach_ms: 25 * SEC,
        };
        let delay = |i: i64| {
            if i % 300 == 7 {
                15 * SEC
            } else if i % 200 == 3 {
                3 * SEC
            } else {
                50
            }
        };
        let n_events = 6_000i64; // 10 minutes
        let events: Vec<(String, i64, i64)> = (0..n_events)
            .map(|i| {
                (
                    i.to_string(),
                    1_000_000 + i * 100,
                    1_000_000 + i * 100 + delay(i),
                )
            })
            .collect();
        let mut p = GroupProgress::new(1_000_000, 0);
        let mut outcome: BTreeMap<&str, Vec<Admit>> = BTreeMap::new();
        let mut reads = 0u64;
        let mut max_seen = 0;
        let mut read = |p: &mut GroupProgress, w: Window, now: i64, kind: ReadKind| {
            for (id, ts, vis) in &events {
                if *vis <= now && *ts >= w.start_ms && *ts <= w.end_ms {
                    reads += 1;
                    let judge = (kind == ReadKind::Sweep).then_some(t.late_window_ms);
                    let a = p.admit(&w, id, *ts, Some(*vis), judge);
                    if matches!(a, Admit::New | Admit::Late) {
                        outcome.entry(id.as_str()).or_default().push(a);
                    }
                }
            }
            p.complete(&w, kind, now, &t);
        };
        let end = 1_000_000 + n_events * 100 + 60 * SEC;
        let mut now = 1_000_000;
        while now < end {
            now += 2 * SEC;
            let w = p.window(now, &t);
            read(&mut p, w, now, ReadKind::Poll);
            if let Some(s) = p.sweep_due(now, &t) {
                read(&mut p, s, now, ReadKind::Sweep);
            }
            max_seen = max_seen.max(p.seen.len());
        }
        for (i, (id, _, _)) in events.iter().enumerate() {
            let want = if delay(i as i64) > t.late_window_ms {
                Admit::Late
            } else {
                Admit::New
            };
            assert_eq!(outcome.get(id.as_str()), Some(&vec![want]), "event {i}");
        }
        let ratio = reads as f64 / n_events as f64;
        assert!(ratio <= 2.6, "reads per event {ratio}");
        // ids of lag + P + two poll intervals of events (100 ms apart)
        assert!(max_seen <= 300, "remembered ids {max_seen}");
    }

    /// Progress saved by the window-and-audit poller loads, and resumes
    /// sweeping where its window began (which its ids cover).
    #[test]
    fn progress_from_before_sweeps_loads() {
        let t = defaults();
        let old = r#"{"checkpoint_ms":6000000,"floor_ms":0,"seen":{"7":5900000},
            "slices":{"5890000":1},"audited_to_ms":5000000,"newest_event_ms":5900000}"#;
        let mut p: GroupProgress = serde_json::from_str(old).unwrap();
        p.normalize(&t);
        assert!(!p.polled_in_process);
        assert_eq!(p.swept_to_ms, Some(6_000_000 - 5 * MIN));
        assert_eq!(p.kept_from_ms, Some(6_000_000 - 5 * MIN));
        let w = p.window(6_010_000, &t);
        assert_eq!(
            w.start_ms,
            6_000_000 - 5 * MIN,
            "first poll: the whole window"
        );
        assert_eq!(p.admit(&w, "7", 5_900_000, None, None), Admit::Duplicate);
        p.complete(&w, ReadKind::Poll, 6_010_000, &t);
        assert_eq!(
            p.swept_to_ms,
            Some(6_010_000 - 5 * MIN),
            "the first poll read from swept_to: it swept"
        );
        for _ in 0..100 {
            p.delay.observe(300);
        }
        let w = p.window(6_020_000, &t);
        assert_eq!(w.start_ms, 6_010_000 - 2 * SEC, "then the overlap");
        let s = p.sweep_due(6_010_000 + 6 * MIN, &t).expect("due");
        assert_eq!(s.start_ms, 6_010_000 - 5 * MIN);
    }

    #[test]
    fn progress_roundtrips_through_json() {
        let t = defaults();
        let mut p = GroupProgress::new(100 * MIN, 10 * MIN);
        let w = p.window(100 * MIN, &t);
        p.admit(
            &w,
            "49712345678901234567890123456789012345678901234567890123",
            95 * MIN,
            Some(95 * MIN + 700),
            None,
        );
        let s = serde_json::to_string(&p).unwrap();
        let back: GroupProgress = serde_json::from_str(&s).unwrap();
        assert_eq!(back, p);
    }

    /// A state journal's view of a group: the first whole save, then each
    /// write's patch merged over it, loaded and pruned, is the live
    /// progress, at every write, whatever happened in between (polls,
    /// sweeps, ids forgotten, quiet writes with nothing new).
    #[test]
    fn patches_folded_over_the_whole_save_give_the_live_progress() {
        use crate::state::journal::merge_patch;
        let t = Timing {
            late_window_ms: 10 * SEC,
            overlap_floor_ms: SEC,
            sweep_interval_ms: 5 * SEC,
            sweep_reach_ms: 25 * SEC,
        };
        let start = 1_000 * MIN;
        let mut p = GroupProgress::new(start, MIN);
        let mut disk = serde_json::to_value(&p).unwrap();
        p.mark_saved();
        assert_eq!(p.take_patch(), None, "nothing changed since the save");
        let mut rng = 0x2545f4914f6cdd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut id = 0u64;
        let mut patches = 0;
        for step in 0..3_000i64 {
            let now = start + step * 200;
            let w = p.window(now, &t);
            for _ in 0..next() % 4 {
                id += 1;
                let ts = now - (next() % 3_000) as i64;
                let _ = p.admit(&w, &format!("{id:056}"), ts, Some(now), None);
            }
            if next() % 3 == 0 {
                p.complete(&w, ReadKind::Poll, now, &t);
            }
            if let Some(s) = p.sweep_due(now, &t) {
                p.complete(&s, ReadKind::Sweep, now, &t);
            }
            if next() % 5 == 0 {
                if let Some(patch) = p.take_patch() {
                    patches += 1;
                    merge_patch(&mut disk, patch);
                }
                let mut back: GroupProgress = serde_json::from_value(disk.clone()).unwrap();
                back.prune();
                back.polled_in_process = p.polled_in_process;
                assert_eq!(back, p, "step {step}");
                assert_eq!(back.seen, p.seen, "step {step}");
            }
        }
        assert!(patches > 100, "{patches} patches");
        assert!(p.seen.len() < 1_000, "ids stay bounded: {}", p.seen.len());
    }
}
