//! Per-group progress through a CloudWatch Logs group. Pure: no I/O, no
//! clock (every function takes `now_ms`), so every rule here is table-tested.
//!
//! # The rules
//!
//! * **Window.** Each poll reads `[checkpoint - late_window, now]`. The
//!   checkpoint is the `now` of the last poll whose pagination completed, so
//!   an event that becomes visible up to `late_window` after its timestamp is
//!   still inside some later window. A new group starts with
//!   `checkpoint = floor = now - initial_lookback`, and no window ever reaches
//!   below the floor.
//! * **Exactly once within a process.** Every counted event's id is
//!   remembered with its timestamp; an id seen again is a duplicate. Ids whose
//!   timestamp is older than the next window start can never be returned
//!   again, so they are dropped: memory is bounded by the events in one
//!   window. No order is assumed within or across pages (moto returns events
//!   grouped by stream, AWS by time).
//! * **Late beyond the window.** An event that becomes visible more than
//!   `late_window` after its timestamp is never returned by a window poll. To
//!   make such losses visible rather than silent, we count how many events we
//!   counted per [`SLICE_MS`] slice of time; once a slice has been outside the
//!   window for `audit_delay`, it is read once more (an *audit*) and every
//!   event found beyond what we counted there is reported as late
//!   (`aws_transfer_exporter_events_late_total`). Late events are reported,
//!   never counted in the product metrics: counting them would make a counter
//!   jump for something that happened long ago.
//!
//! # Honest limits
//!
//! * An event visible later than `late_window + audit_delay` after its
//!   timestamp (after its slice was audited) is neither counted nor reported.
//! * An audit reports a *number* of late events per slice, not which ones.
//! * Events deleted before an audit (retention shorter than the horizon, a
//!   deleted stream) hide the same number of late events in that slice.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// Width of the time slices whose counts the late-event audit compares.
/// Small enough that the slice map for a window of minutes stays tiny, large
/// enough that a busy group does not need one entry per event.
pub const SLICE_MS: i64 = 10_000;

/// What happened to one event offered to [`GroupProgress::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Not seen before: count it.
    New,
    /// Its id was already counted in this window.
    Duplicate,
    /// Older than the current window start: the API should never return it;
    /// ignored (it may have been counted already and its id forgotten).
    OutOfWindow,
}

/// A time range `[start_ms, end_ms]` to read (both inclusive, as
/// FilterLogEvents treats `startTime`/`endTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Progress through one log group. Serialized as-is into the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupProgress {
    /// `now` of the last poll whose pagination completed.
    pub checkpoint_ms: i64,
    /// Nothing older is ever read (the group's initial start position).
    pub floor_ms: i64,
    /// Ids counted whose timestamp is inside the current window: id -> timestamp.
    pub seen: HashMap<String, i64>,
    /// Events counted per slice (slice start -> count), for slices not yet audited.
    pub slices: BTreeMap<i64, u64>,
    /// Every slice before this has been audited (or lies below the floor).
    pub audited_to_ms: i64,
    /// Timestamp of the newest event counted, if any.
    pub newest_event_ms: Option<i64>,
}

/// Rounds down to a slice boundary.
pub fn slice_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(SLICE_MS) * SLICE_MS
}

impl GroupProgress {
    /// A group seen for the first time: start `initial_lookback_ms` ago.
    pub fn new(now_ms: i64, initial_lookback_ms: i64) -> GroupProgress {
        let floor = now_ms - initial_lookback_ms.max(0);
        GroupProgress {
            checkpoint_ms: floor,
            floor_ms: floor,
            seen: HashMap::new(),
            slices: BTreeMap::new(),
            audited_to_ms: slice_of(floor),
            newest_event_ms: None,
        }
    }

    /// Start of the next window.
    pub fn window_start(&self, late_window_ms: i64) -> i64 {
        (self.checkpoint_ms - late_window_ms).max(self.floor_ms)
    }

    /// The window the next poll reads.
    pub fn window(&self, now_ms: i64, late_window_ms: i64) -> Window {
        let start_ms = self.window_start(late_window_ms);
        Window {
            start_ms,
            end_ms: now_ms.max(start_ms),
        }
    }

    /// Decides about one event returned for `window`, remembering it if new.
    pub fn admit(&mut self, window: &Window, event_id: &str, ts_ms: i64) -> Admit {
        if ts_ms < window.start_ms {
            return Admit::OutOfWindow;
        }
        if self.seen.contains_key(event_id) {
            return Admit::Duplicate;
        }
        self.seen.insert(event_id.to_owned(), ts_ms);
        *self.slices.entry(slice_of(ts_ms)).or_insert(0) += 1;
        if self.newest_event_ms.is_none_or(|n| ts_ms > n) {
            self.newest_event_ms = Some(ts_ms);
        }
        Admit::New
    }

    /// Pagination of `window` completed: move the checkpoint to its end and
    /// forget the ids that can no longer be returned.
    pub fn complete(&mut self, window: &Window, late_window_ms: i64) {
        if window.end_ms > self.checkpoint_ms {
            self.checkpoint_ms = window.end_ms;
        }
        let keep_from = self.window_start(late_window_ms);
        self.seen.retain(|_, ts| *ts >= keep_from);
    }

    /// The range to audit now, if one is due: every whole slice that has
    /// been outside the window for at least `audit_delay_ms`, provided the
    /// range spans at least `min_span_ms` (to batch audits into few calls).
    pub fn audit_due(
        &self,
        late_window_ms: i64,
        audit_delay_ms: i64,
        min_span_ms: i64,
    ) -> Option<Window> {
        let end = slice_of(self.window_start(late_window_ms) - audit_delay_ms);
        if end - self.audited_to_ms >= min_span_ms.max(SLICE_MS) {
            // end is exclusive; FilterLogEvents' endTime is inclusive.
            Some(Window {
                start_ms: self.audited_to_ms,
                end_ms: end - 1,
            })
        } else {
            None
        }
    }

    /// Records an audit of `range` (from [`Self::audit_due`]) that found
    /// `observed` distinct events per slice. Returns the number of late
    /// events: those found beyond what was counted, summed over slices.
    pub fn audit_done(&mut self, range: &Window, observed: &BTreeMap<i64, u64>) -> u64 {
        let end = range.end_ms + 1;
        let mut late = 0;
        for (slice, found) in observed.range(range.start_ms..end) {
            let counted = self.slices.get(slice).copied().unwrap_or(0);
            late += found.saturating_sub(counted);
        }
        self.slices = self.slices.split_off(&end);
        if end > self.audited_to_ms {
            self.audited_to_ms = end;
        }
        late
    }
}

/// Counts distinct events per slice for an audit. Ids are deduplicated in
/// case a retried page returns an event twice.
#[derive(Debug, Default)]
pub struct AuditTally {
    ids: HashSet<String>,
    pub per_slice: BTreeMap<i64, u64>,
}

impl AuditTally {
    pub fn add(&mut self, event_id: &str, ts_ms: i64) {
        if self.ids.insert(event_id.to_owned()) {
            *self.per_slice.entry(slice_of(ts_ms)).or_insert(0) += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn new_group_starts_at_initial_lookback_and_never_reads_below_it() {
        let p = GroupProgress::new(100 * MIN, 10 * MIN);
        let w = p.window(100 * MIN, 5 * MIN);
        assert_eq!(
            w,
            Window {
                start_ms: 90 * MIN,
                end_ms: 100 * MIN
            }
        );
    }

    #[test]
    fn window_reaches_back_by_the_late_window_after_a_poll() {
        let mut p = GroupProgress::new(100 * MIN, 10 * MIN);
        let w = p.window(100 * MIN, 5 * MIN);
        p.complete(&w, 5 * MIN);
        let w2 = p.window(101 * MIN, 5 * MIN);
        assert_eq!(
            w2,
            Window {
                start_ms: 95 * MIN,
                end_ms: 101 * MIN
            }
        );
    }

    /// Table: a sequence of (event id, timestamp) offered across two polls,
    /// with what each must yield. Covers repeats within a page, across pages,
    /// across polls, out-of-order timestamps, shared milliseconds, and
    /// events before the window.
    #[test]
    fn admit_table() {
        let late = 5 * MIN;
        let mut p = GroupProgress::new(100 * MIN, 10 * MIN);
        let w1 = p.window(100 * MIN, late);
        let poll1: &[(&str, i64, Admit)] = &[
            ("a", 99 * MIN, Admit::New),
            ("b", 91 * MIN, Admit::New),         // out of order
            ("c", 91 * MIN, Admit::New),         // same millisecond as b
            ("a", 99 * MIN, Admit::Duplicate),   // repeated in a later page
            ("z", 89 * MIN, Admit::OutOfWindow), // below the window
        ];
        for (id, ts, want) in poll1 {
            assert_eq!(p.admit(&w1, id, *ts), *want, "poll 1: id={id} ts={ts}");
        }
        p.complete(&w1, late);
        assert!(p.seen.contains_key("a"), "a is inside the next window");
        assert!(
            !p.seen.contains_key("b"),
            "b (91m) is older than the next window (95m)"
        );
        let w2 = p.window(102 * MIN, late);
        let poll2: &[(&str, i64, Admit)] = &[
            ("a", 99 * MIN, Admit::Duplicate), // returned again by the overlap
            ("d", 96 * MIN, Admit::New),       // became visible late, inside the window
            ("e", 101 * MIN, Admit::New),
            ("b", 91 * MIN, Admit::OutOfWindow),
        ];
        for (id, ts, want) in poll2 {
            assert_eq!(p.admit(&w2, id, *ts), *want, "poll 2: id={id} ts={ts}");
        }
        assert_eq!(p.newest_event_ms, Some(101 * MIN));
    }

    #[test]
    fn failed_poll_keeps_checkpoint_so_the_window_is_read_again() {
        let late = 5 * MIN;
        let mut p = GroupProgress::new(100 * MIN, 10 * MIN);
        let w1 = p.window(100 * MIN, late);
        assert_eq!(p.admit(&w1, "a", 92 * MIN), Admit::New);
        // no complete(): pagination failed half way
        let w2 = p.window(103 * MIN, late);
        assert_eq!(
            w2.start_ms,
            90 * MIN,
            "window still starts at the old position"
        );
        assert_eq!(p.admit(&w2, "a", 92 * MIN), Admit::Duplicate);
        assert_eq!(p.admit(&w2, "b", 93 * MIN), Admit::New);
    }

    #[test]
    fn remembered_ids_stay_bounded_by_the_window() {
        let late = MIN;
        let mut p = GroupProgress::new(0, 0);
        for round in 1..=100i64 {
            let now = round * MIN;
            let w = p.window(now, late);
            for i in 0..50 {
                let id = format!("{round}-{i}");
                p.admit(&w, &id, now - i * 1000);
            }
            p.complete(&w, late);
            assert!(p.seen.len() <= 100, "round {round}: {} ids", p.seen.len());
        }
    }

    #[test]
    fn audit_is_due_only_after_the_delay_and_min_span() {
        let late = MIN;
        let mut p = GroupProgress::new(10 * MIN, 10 * MIN); // floor 0
        let w = p.window(10 * MIN, late);
        p.complete(&w, late); // window start now 9m
                              // delay 2m: slices before 7m are due
        assert_eq!(
            p.audit_due(late, 2 * MIN, MIN),
            Some(Window {
                start_ms: 0,
                end_ms: 7 * MIN - 1
            })
        );
        assert_eq!(p.audit_due(late, 2 * MIN, 8 * MIN), None, "span too short");
        assert_eq!(p.audit_due(late, 10 * MIN, 0), None, "nothing old enough");
    }

    /// Table: (counted per slice, observed per slice, expected late).
    #[test]
    fn audit_table() {
        type Slices = &'static [(i64, u64)];
        let cases: &[(Slices, Slices, u64)] = &[
            (&[], &[], 0),
            (&[(0, 3)], &[(0, 3)], 0),
            (&[(0, 3)], &[(0, 5)], 2),
            (&[(0, 3), (10_000, 1)], &[(0, 3), (10_000, 4)], 3),
            (&[], &[(20_000, 7)], 7),  // a slice we never counted in
            (&[(0, 3)], &[(0, 2)], 0), // deleted events never go negative
            (&[(0, 1)], &[(0, 1), (60_000, 9)], 0), // outside the audited range
        ];
        for (counted, observed, want) in cases {
            let mut p = GroupProgress::new(0, 0);
            p.slices = counted.iter().copied().collect();
            let range = Window {
                start_ms: 0,
                end_ms: 30_000 - 1,
            };
            let obs: BTreeMap<i64, u64> = observed.iter().copied().collect();
            let got = p.audit_done(&range, &obs);
            assert_eq!(got, *want, "counted={counted:?} observed={observed:?}");
            assert!(
                p.slices.keys().all(|s| *s >= 30_000),
                "audited slices forgotten"
            );
            assert_eq!(p.audited_to_ms, 30_000);
        }
    }

    #[test]
    fn late_event_beyond_the_window_is_found_by_the_audit() {
        let late = MIN;
        let mut p = GroupProgress::new(0, 0);
        // poll at 1m: events at 10s and 20s
        let w = p.window(MIN, late);
        p.admit(&w, "1", 10_000);
        p.admit(&w, "2", 20_000);
        p.complete(&w, late);
        // time passes; an event stamped 15s becomes visible at 3m (too late)
        for now in [2 * MIN, 3 * MIN, 4 * MIN] {
            let w = p.window(now, late);
            p.complete(&w, late);
        }
        let range = p.audit_due(late, MIN, 0).expect("due");
        let mut tally = AuditTally::default();
        for (id, ts) in [("1", 10_000), ("2", 20_000), ("3", 15_000), ("3", 15_000)] {
            tally.add(id, ts);
        }
        assert_eq!(p.audit_done(&range, &tally.per_slice), 1);
        assert_eq!(p.audit_due(late, MIN, 0), None, "audited once");
    }

    #[test]
    fn progress_roundtrips_through_json() {
        let mut p = GroupProgress::new(100 * MIN, 10 * MIN);
        let w = p.window(100 * MIN, MIN);
        p.admit(
            &w,
            "49712345678901234567890123456789012345678901234567890123",
            95 * MIN,
        );
        let s = serde_json::to_string(&p).unwrap();
        let back: GroupProgress = serde_json::from_str(&s).unwrap();
        assert_eq!(back, p);
    }
}
