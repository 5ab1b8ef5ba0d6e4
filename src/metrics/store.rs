//! The exporter's own counter store: the counter families of [`Metrics`]
//! (`super::Metrics`) live here rather than in the `prometheus` crate's
//! `IntCounterVec`, so a scrape can copy their values in one pass and
//! encode them directly (see `super::snapshot`), without gathering every
//! series into owned protobuf-shaped structures first. At 100,000 series
//! that gather was most of a scrape's time and memory (BENCHMARKS.md,
//! "/metrics render").
//!
//! The API is the subset of `prometheus::IntCounterVec` the exporter uses
//! (`with_label_values`, `inc`, `inc_by`, `get`), so call sites read the
//! same. Each family is also a `prometheus::core::Collector` registered on
//! the registry given to `Metrics::new`, so `Registry::gather` (the
//! `classify` command, tests, anything holding only the registry) still
//! sees every family exactly as before.
//!
//! Series are never removed: counter label values are bounded by the label
//! guard, and a counter that disappeared from a scrape would read as a
//! reset. This keeps indexes stable, which the cached sort order relies on.

use std::cell::Cell;
use std::hash::Hasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto;
use rustc_hash::{FxHashMap, FxHasher};

/// Label values of one series, in the order of the family's sorted label
/// names (the exposition's order). Shared with snapshots and the state
/// file without copying the strings.
pub type LabelValues = Arc<[Box<str>]>;

/// One counter series.
#[derive(Debug)]
struct Series {
    labels: LabelValues,
    value: AtomicU64,
}

/// A handle on one counter series (cheap to clone, like the `prometheus`
/// crate's `IntCounter`).
#[derive(Debug, Clone)]
pub struct IntCounter(Arc<Series>);

impl IntCounter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.value.fetch_add(1, Ordering::Relaxed);
    }
    /// Adds `v`.
    pub fn inc_by(&self, v: u64) {
        self.0.value.fetch_add(v, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.value.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Inner {
    /// FxHash of the label values (declared order) -> indexes into `series`.
    index: FxHashMap<u64, Vec<u32>>,
    /// Append-only: an index names the same series forever.
    series: Vec<Arc<Series>>,
}

/// The cached exposition order: indexes of `series[..covered]` sorted by
/// label values. New series are sorted and merged in at the next scrape,
/// so a steady-state scrape sorts nothing.
#[derive(Default)]
struct Order {
    sorted: Arc<[u32]>,
    covered: usize,
}

pub(crate) struct Family {
    /// Which `Metrics` the family belongs to (see [`skip_group_while`]).
    group: u64,
    pub(crate) name: String,
    pub(crate) help: String,
    /// Label names sorted (the exposition's order).
    pub(crate) sorted_names: Box<[Box<str>]>,
    /// `perm[j]` = the declared position of sorted label `j`.
    perm: Box<[usize]>,
    desc: Desc,
    inner: RwLock<Inner>,
    order: Mutex<Order>,
}

/// A counter family with labels: the store's `IntCounterVec`.
#[derive(Clone)]
pub struct IntCounterVec(pub(crate) Arc<Family>);

static NEXT_GROUP: AtomicU64 = AtomicU64::new(1);

/// A fresh family group id (one per `Metrics`).
pub(crate) fn new_group() -> u64 {
    NEXT_GROUP.fetch_add(1, Ordering::Relaxed)
}

thread_local! {
    /// The group whose families `Collector::collect` skips on this thread:
    /// set while a snapshot gathers the *other* families of the registry
    /// (its own it copies directly).
    static SKIP_GROUP: Cell<u64> = const { Cell::new(0) };
}

/// Runs `f` (a `Registry::gather`) with the families of `group` answering
/// no series, on this thread only (the registry collects on the calling
/// thread).
pub(crate) fn skip_group_while<R>(group: u64, f: impl FnOnce() -> R) -> R {
    struct Reset(u64);
    impl Drop for Reset {
        fn drop(&mut self) {
            SKIP_GROUP.with(|s| s.set(self.0));
        }
    }
    let _reset = Reset(SKIP_GROUP.with(|s| s.replace(group)));
    f()
}

fn hash_values<S: AsRef<str>>(values: &[S]) -> u64 {
    let mut h = FxHasher::default();
    for v in values {
        h.write(v.as_ref().as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl IntCounterVec {
    /// A family of counters named `name` with the given label names, in
    /// `group` (see [`new_group`]).
    pub(crate) fn with_group(
        group: u64,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> IntCounterVec {
        let desc = Desc::new(
            name.to_owned(),
            help.to_owned(),
            label_names.iter().map(|s| (*s).to_owned()).collect(),
            Default::default(),
        )
        .expect("valid metric definition");
        let mut perm: Vec<usize> = (0..label_names.len()).collect();
        perm.sort_by_key(|&i| label_names[i]);
        IntCounterVec(Arc::new(Family {
            group,
            name: name.to_owned(),
            help: help.to_owned(),
            sorted_names: perm.iter().map(|&i| label_names[i].into()).collect(),
            perm: perm.into(),
            desc,
            inner: RwLock::default(),
            order: Mutex::default(),
        }))
    }

    /// A standalone family (its own group).
    pub fn new(name: &str, help: &str, label_names: &[&str]) -> IntCounterVec {
        Self::with_group(new_group(), name, help, label_names)
    }

    /// The series with these label values (in declared order), created at
    /// zero if new. Panics when the number of values is not the number of
    /// label names, as the `prometheus` crate does: a programming error.
    pub fn with_label_values(&self, values: &[&str]) -> IntCounter {
        self.get_or_insert(values, 0).0
    }

    /// The series with these label values; a new one starts at `init`
    /// (set before any reader can see it, so a scrape never shows a
    /// restored series at zero).
    /// Returns the handle and whether it was created.
    fn get_or_insert(&self, values: &[&str], init: u64) -> (IntCounter, bool) {
        let f = &*self.0;
        assert_eq!(
            values.len(),
            f.perm.len(),
            "{}: {} label values for {} labels",
            f.name,
            values.len(),
            f.perm.len()
        );
        let h = hash_values(values);
        let matches = |s: &Series| {
            f.perm
                .iter()
                .enumerate()
                .all(|(j, &i)| *s.labels[j] == *values[i])
        };
        {
            let inner = f.inner.read().unwrap_or_else(|e| e.into_inner());
            if let Some(ids) = inner.index.get(&h) {
                for &id in ids {
                    let s = &inner.series[id as usize];
                    if matches(s) {
                        return (IntCounter(s.clone()), false);
                    }
                }
            }
        }
        let mut inner = f.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(ids) = inner.index.get(&h) {
            for &id in ids {
                let s = &inner.series[id as usize];
                if matches(s) {
                    return (IntCounter(s.clone()), false);
                }
            }
        }
        let series = Arc::new(Series {
            labels: f.perm.iter().map(|&i| values[i].into()).collect(),
            value: AtomicU64::new(init),
        });
        let id = u32::try_from(inner.series.len()).expect("fewer than 2^32 series");
        inner.series.push(series.clone());
        inner.index.entry(h).or_default().push(id);
        (IntCounter(series), true)
    }

    /// Adds `value` to the series named by label names and values (names
    /// as in the exposition, any order), for restoring saved values: a new
    /// series is created holding `value` already. False when the names do
    /// not match the family's label names exactly.
    pub fn restore(
        &self,
        names: &[impl AsRef<str>],
        values: &[impl AsRef<str>],
        value: u64,
    ) -> bool {
        let Some(declared) = self.declared_order(names, values) else {
            return false;
        };
        let (c, created) = self.get_or_insert(&declared, value);
        if !created {
            // It existed (a duplicate row, or counted already): add.
            c.inc_by(value);
        }
        true
    }

    /// Label values in declared order from names and values in any order.
    fn declared_order<'a>(
        &self,
        names: &[impl AsRef<str>],
        values: &'a [impl AsRef<str>],
    ) -> Option<Vec<&'a str>> {
        let f = &*self.0;
        if names.len() != f.perm.len() || values.len() != names.len() {
            return None;
        }
        // Declared order: sorted position j holds declared label perm[j].
        let mut declared: Vec<&str> = vec![""; f.perm.len()];
        for (j, &i) in f.perm.iter().enumerate() {
            let pos = names
                .iter()
                .position(|n| n.as_ref() == &*f.sorted_names[j])?;
            declared[i] = values[pos].as_ref();
        }
        Some(declared)
    }

    /// The family's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Series in the family.
    pub fn len(&self) -> usize {
        self.0
            .inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .series
            .len()
    }

    /// True when the family has no series yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The values of one family at one instant: the series that existed then
/// (insertion order) with their values.
pub(crate) struct Copied {
    pub(crate) series: Vec<(LabelValues, u64)>,
}

impl Family {
    /// Copies every series' labels (shared, not cloned) and value. This is
    /// the only part of a scrape that runs with counting paused.
    pub(crate) fn copy(&self) -> Copied {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        Copied {
            series: inner
                .series
                .iter()
                .map(|s| (s.labels.clone(), s.value.load(Ordering::Relaxed)))
                .collect(),
        }
    }

    /// Indexes of `copied.series` in exposition order (sorted by label
    /// values), from the cached order plus the series added since.
    pub(crate) fn order(&self, copied: &Copied) -> Arc<[u32]> {
        let n = copied.series.len();
        let mut order = lock(&self.order);
        if order.covered == n {
            return order.sorted.clone();
        }
        if order.covered > n {
            // A snapshot older than the cache (two scrapes racing): sort
            // this one on its own; rare, and correct either way.
            return sorted_indexes(&copied.series, 0..n);
        }
        let fresh = sorted_indexes(&copied.series, order.covered..n);
        let key = |i: u32| &copied.series[i as usize].0;
        let mut merged = Vec::with_capacity(n);
        let (mut a, mut b) = (
            order.sorted.iter().copied().peekable(),
            fresh.iter().copied().peekable(),
        );
        loop {
            match (a.peek(), b.peek()) {
                (Some(&x), Some(&y)) => {
                    if key(x) <= key(y) {
                        merged.push(x);
                        a.next();
                    } else {
                        merged.push(y);
                        b.next();
                    }
                }
                (Some(_), None) => merged.extend(a.by_ref()),
                (None, Some(_)) => merged.extend(b.by_ref()),
                (None, None) => break,
            }
        }
        order.sorted = merged.into();
        order.covered = n;
        order.sorted.clone()
    }
}

fn sorted_indexes(series: &[(LabelValues, u64)], range: std::ops::Range<usize>) -> Arc<[u32]> {
    let mut ids: Vec<u32> = range.map(|i| i as u32).collect();
    ids.sort_unstable_by(|&a, &b| series[a as usize].0.cmp(&series[b as usize].0));
    ids.into()
}

impl Collector for IntCounterVec {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.0.desc]
    }

    /// The family as the `prometheus` crate would gather it (for
    /// `Registry::gather`); empty while a snapshot of this family's group
    /// gathers the other families.
    fn collect(&self) -> Vec<proto::MetricFamily> {
        let f = &*self.0;
        if SKIP_GROUP.with(Cell::get) == f.group {
            return Vec::new();
        }
        let copied = f.copy();
        let metrics = copied
            .series
            .iter()
            .map(|(labels, value)| {
                let mut m = proto::Metric::default();
                m.set_label(
                    f.sorted_names
                        .iter()
                        .zip(labels.iter())
                        .map(|(n, v)| {
                            let mut lp = proto::LabelPair::default();
                            lp.set_name(n.to_string());
                            lp.set_value(v.to_string());
                            lp
                        })
                        .collect(),
                );
                let mut c = proto::Counter::default();
                c.set_value(*value as f64);
                m.set_counter(c);
                m
            })
            .collect();
        let mut mf = proto::MetricFamily::default();
        mf.set_name(f.name.clone());
        mf.set_help(f.help.clone());
        mf.set_field_type(proto::MetricType::COUNTER);
        mf.set_metric(metrics);
        vec![mf]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_share_one_series_whatever_the_lookup() {
        let v = IntCounterVec::new("t_total", "T.", &["user", "cause"]);
        let a = v.with_label_values(&["jdoe", "x"]);
        a.inc();
        v.with_label_values(&["jdoe", "x"]).inc_by(2);
        assert_eq!(a.get(), 3);
        assert!(v.restore(&["cause", "user"], &["x", "jdoe"], 4));
        assert_eq!(a.get(), 7, "names in any order select the same series");
        assert!(!v.restore(&["cause"], &["x"], 1));
        assert!(!v.restore(&["cause", "nope"], &["x", "y"], 1));
        assert_eq!(v.len(), 1);
        assert!(v.restore(&["user", "cause"], &["carol", "y"], 5));
        assert_eq!(
            v.with_label_values(&["carol", "y"]).get(),
            5,
            "created holding the value"
        );
        assert_eq!(v.len(), 2);
        // Stored in sorted-name order: cause before user.
        let c = v.0.copy();
        assert_eq!(&*c.series[0].0, &["x".into(), "jdoe".into()] as &[Box<str>]);
    }

    #[test]
    fn order_is_cached_and_merges_new_series() {
        let v = IntCounterVec::new("t_total", "T.", &["k"]);
        for k in ["m", "c", "x"] {
            v.with_label_values(&[k]);
        }
        let c = v.0.copy();
        let o = v.0.order(&c);
        let names = |c: &Copied, o: &[u32]| -> Vec<String> {
            o.iter()
                .map(|&i| c.series[i as usize].0[0].to_string())
                .collect()
        };
        assert_eq!(names(&c, &o), ["c", "m", "x"]);
        for k in ["a", "n", "z", "d"] {
            v.with_label_values(&[k]);
        }
        let c2 = v.0.copy();
        let o2 = v.0.order(&c2);
        assert_eq!(names(&c2, &o2), ["a", "c", "d", "m", "n", "x", "z"]);
        // An older snapshot still gets its own correct order.
        assert_eq!(names(&c, &v.0.order(&c)), ["c", "m", "x"]);
    }
}
