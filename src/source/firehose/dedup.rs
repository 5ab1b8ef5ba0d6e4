//! Exactly once per replica. Firehose retries a request (keeping its id,
//! best effort) when it got no 200 in time, even if the first attempt was in
//! fact counted; and the same events can arrive in a new request (a second
//! subscription filter, a re-driven backup). Two bounded memories stop both
//! from counting twice:
//!
//! - [`RequestIds`]: ids of acknowledged requests, each kept for a fixed
//!   time (at least Firehose's retry duration) and at most a fixed number;
//!   plus the ids being processed right now, so a retry that races its
//!   original is told to come back (503) instead of being counted in parallel.
//! - [`EventIds`]: CloudWatch event ids, namespaced by log group (an id is
//!   unique within its group), the most recent ones up to a bound, forgotten
//!   oldest first. Entries are a 64-bit keyed hash of (group, id): 56-digit
//!   ids would cost ten times the memory, and with the default bound the
//!   chance that two different events collide is below 1e-8 per filling of
//!   the set (a collision would skip one event).
//!
//! Both are plain data structures: the handler locks them and counts hits.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault};
use std::time::{Duration, Instant};

use rustc_hash::FxHasher;

/// What [`RequestIds::begin`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Never seen (or forgotten): process it; call `finish` or `abandon`.
    New,
    /// Acknowledged before: answer 200, count nothing.
    Done,
    /// Being processed by another connection right now.
    InFlight,
}

/// Request ids: acknowledged ones for `ttl` (at most `cap`), and in-flight ones.
#[derive(Debug)]
pub struct RequestIds {
    ttl: Duration,
    cap: usize,
    done: HashMap<String, Instant>,
    /// Insertion order of `done`, for expiry and eviction.
    order: VecDeque<(Instant, String)>,
    in_flight: HashSet<String>,
}

impl RequestIds {
    pub fn new(ttl: Duration, cap: usize) -> RequestIds {
        RequestIds {
            ttl,
            cap: cap.max(1),
            done: HashMap::new(),
            order: VecDeque::new(),
            in_flight: HashSet::new(),
        }
    }

    /// Acknowledged ids remembered now.
    pub fn len(&self) -> usize {
        self.done.len()
    }

    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn forget_front(&mut self) {
        if let Some((t, id)) = self.order.pop_front() {
            // Only if this entry is the live one for the id.
            if self.done.get(&id) == Some(&t) {
                self.done.remove(&id);
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((t, _)) = self.order.front() {
            if now.saturating_duration_since(*t) < self.ttl {
                break;
            }
            self.forget_front();
        }
    }

    /// Looks `id` up; a new id is marked in flight.
    pub fn begin(&mut self, id: &str, now: Instant) -> Seen {
        self.expire(now);
        if self.done.contains_key(id) {
            Seen::Done
        } else if self.in_flight.contains(id) {
            Seen::InFlight
        } else {
            self.in_flight.insert(id.to_owned());
            Seen::New
        }
    }

    /// The request was counted and is about to be acknowledged.
    pub fn finish(&mut self, id: &str, now: Instant) {
        self.in_flight.remove(id);
        self.done.insert(id.to_owned(), now);
        self.order.push_back((now, id.to_owned()));
        while self.done.len() > self.cap {
            self.forget_front();
        }
        // `order` may hold stale duplicates of re-inserted ids; keep it
        // bounded too.
        while self.order.len() > self.cap.saturating_mul(2) {
            self.forget_front();
        }
    }

    /// The request was not counted (rejected after `begin`).
    pub fn abandon(&mut self, id: &str) {
        self.in_flight.remove(id);
    }

    /// The acknowledged ids, oldest first, each with how long before `now`
    /// it was acknowledged (for the state file).
    pub fn export(&self, now: Instant) -> Vec<(String, Duration)> {
        self.order
            .iter()
            .filter(|(t, id)| self.done.get(id) == Some(t))
            .map(|(t, id)| (id.clone(), now.saturating_duration_since(*t)))
            .collect()
    }

    /// Remembers ids acknowledged `age` before `now` (from the state file):
    /// the ones still within the ttl, within the cap, newest kept.
    pub fn import(&mut self, mut saved: Vec<(String, Duration)>, now: Instant) {
        saved.sort_by_key(|s| std::cmp::Reverse(s.1));
        for (id, age) in saved {
            if age >= self.ttl || self.done.contains_key(&id) {
                continue;
            }
            let Some(t) = now.checked_sub(age) else {
                continue;
            };
            self.done.insert(id.clone(), t);
            self.order.push_back((t, id));
            while self.done.len() > self.cap {
                self.forget_front();
            }
        }
    }
}

/// Event ids per log group: the most recent `cap` distinct ones, first in
/// first out.
///
/// First-seen order is the right one to forget by: what must be caught is a
/// re-delivery within Firehose's retry window of the first delivery, and an
/// id seen again does not need to live longer. Each entry is a 64-bit key in
/// a hash set plus its place in the queue (~20–30 bytes at the default
/// bound, no allocation per entry); the set grows with use, nothing is
/// reserved up front.
pub struct EventIds {
    set: HashSet<u64, BuildHasherDefault<FxHasher>>,
    /// Insertion order of `set`, for forgetting the oldest.
    order: VecDeque<u64>,
    cap: usize,
    /// Keyed per set from a per-process random seed, so which ids collide
    /// cannot be chosen from outside without seeing the keys. foldhash's
    /// quality variant: several times cheaper than SipHash on a 56-digit id,
    /// with a full-width finish (the 64-bit key is compared whole).
    hasher: foldhash::quality::RandomState,
}

impl std::fmt::Debug for EventIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EventIds({}/{})", self.set.len(), self.cap)
    }
}

impl EventIds {
    pub fn new(cap: usize) -> EventIds {
        EventIds {
            set: HashSet::default(),
            order: VecDeque::new(),
            cap: cap.max(1),
            hasher: foldhash::quality::RandomState::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The key of an event: group and id, length-prefixed so
    /// ("ab", "c") and ("a", "bc") differ.
    pub fn key(&self, group: &str, id: &str) -> u64 {
        self.hasher.hash_one((group, id))
    }

    /// True if the event was new (and is now remembered); false if it was
    /// seen before. An empty id cannot be deduplicated and is always new.
    pub fn insert(&mut self, group: &str, id: &str) -> bool {
        if id.is_empty() {
            return true;
        }
        let k = self.key(group, id);
        if !self.set.insert(k) {
            return false;
        }
        self.order.push_back(k);
        if self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a new process restores is what the last one acknowledged within
    /// the ttl, with its remaining time: a retry after the restart is
    /// still recognized, and forgotten when the ttl would have ended.
    #[test]
    fn request_ids_survive_export_and_import() {
        let t0 = Instant::now() + Duration::from_secs(1000);
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut r = RequestIds::new(Duration::from_secs(300), 10);
        for (id, at) in [("old", 0), ("mid", 100), ("new", 250)] {
            assert_eq!(r.begin(id, s(at)), Seen::New);
            r.finish(id, s(at));
        }
        let saved = r.export(s(260));
        assert_eq!(saved.len(), 3);
        // A new process, 50 s later by its own clock.
        let later = s(260) + Duration::from_secs(50);
        let mut back = RequestIds::new(Duration::from_secs(300), 10);
        let aged: Vec<_> = saved
            .into_iter()
            .map(|(id, age)| (id, age + Duration::from_secs(50)))
            .collect();
        back.import(aged, later);
        assert_eq!(back.len(), 2, "'old' was 310 s old: past the ttl");
        assert_eq!(back.begin("mid", later), Seen::Done);
        assert_eq!(back.begin("new", later), Seen::Done);
        assert_eq!(back.begin("old", later), Seen::New);
        back.abandon("old");
        // 'mid' was acknowledged at 100: forgotten at 400.
        assert_eq!(back.begin("mid", s(399)), Seen::Done);
        assert_eq!(back.begin("mid", s(401)), Seen::New);
    }

    #[test]
    fn request_ids_table() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut r = RequestIds::new(Duration::from_secs(300), 3);
        // (step, id, at second, action, expected)
        assert_eq!(r.begin("a", s(0)), Seen::New);
        assert_eq!(
            r.begin("a", s(1)),
            Seen::InFlight,
            "retry racing the original"
        );
        r.finish("a", s(2));
        assert_eq!(r.begin("a", s(3)), Seen::Done, "retry after the ack");
        assert_eq!(r.begin("a", s(301)), Seen::Done, "still inside the ttl");
        assert_eq!(r.begin("a", s(302)), Seen::New, "forgotten after the ttl");
        r.abandon("a");
        assert_eq!(r.in_flight(), 0);
        assert_eq!(
            r.begin("a", s(303)),
            Seen::New,
            "abandoned: may be processed again"
        );
        r.abandon("a");
        for (i, id) in ["b", "c", "d", "e"].iter().enumerate() {
            assert_eq!(r.begin(id, s(310 + i as u64)), Seen::New);
            r.finish(id, s(310 + i as u64));
        }
        assert_eq!(r.len(), 3, "bounded by cap");
        assert_eq!(r.begin("b", s(320)), Seen::New, "oldest evicted first");
        r.abandon("b");
        assert_eq!(r.begin("e", s(320)), Seen::Done);
    }

    #[test]
    fn event_ids_are_per_group_and_bounded() {
        let mut e = EventIds::new(3);
        assert!(e.insert("/g", "1"));
        assert!(!e.insert("/g", "1"));
        assert!(
            e.insert("/h", "1"),
            "same id in another group is another event"
        );
        assert!(e.insert("/g", ""), "empty ids are never deduplicated");
        assert!(e.insert("/g", ""));
        assert_eq!(e.len(), 2, "empty ids are not remembered");
        assert!(!e.insert("/g", "1"), "seen again: still not refreshed");
        assert!(e.insert("/g", "2"));
        assert_eq!(e.len(), 3);
        assert!(e.insert("/g", "3"), "a fourth id");
        assert_eq!(e.len(), 3, "bounded by cap");
        assert!(
            e.insert("/g", "1"),
            "the first seen (/g 1) was forgotten first"
        );
        assert!(!e.insert("/g", "3"), "recent ones are kept");
        assert!(!e.insert("/g", "2"));
        assert!(e.insert("/h", "1"), "forgotten in its turn");
        assert_eq!(e.len(), 3);
        assert_ne!(e.key("ab", "c"), e.key("a", "bc"));
    }

    /// The set stays exact under a long stream: the last `cap` distinct ids
    /// are all known, anything older is not.
    #[test]
    fn event_ids_remember_exactly_the_last_cap() {
        let cap = 1000;
        let mut e = EventIds::new(cap);
        for i in 0..10 * cap {
            assert!(e.insert("/g", &i.to_string()));
            assert!(e.len() <= cap);
        }
        for i in 9 * cap..10 * cap {
            assert!(!e.insert("/g", &i.to_string()), "{i} is recent");
        }
        assert!(e.insert("/g", &(9 * cap - 1).to_string()), "older is gone");
    }
}
