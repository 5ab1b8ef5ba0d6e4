//! Restart: the daemon is killed with SIGKILL (or stopped with SIGTERM) at
//! random points while events keep arriving, and restarted on the same state
//! file, with a scraper reading `/metrics` like Prometheus throughout.
//!
//! Every event is a CONNECTED of its own user, so each event has its own
//! series (`aws_transfer_sessions_total{user="u<i>"}`). The promise checked
//! is the one Prometheus sees: each series, read across every life as one
//! series with `increase()`'s reset handling, grows by exactly 1 (0 lost,
//! 0 double-counted), and no counter ever goes down across a restart (the
//! counters resume from the state saved with the last served scrape).
//! Several kills land within 2 s of start; the first five within 1 s (a
//! crash loop).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::support::logs::shapes;
use crate::support::{exposition, now_ms, unique, Daemon, Logs, Moto, REGION};

pub(crate) const SERVER: &str = "s-0aaaaaaaaaaaaaaa1";
const TRIALS: usize = 20;

/// Users counted in this exposition, with their values.
fn counted(text: &str) -> BTreeMap<String, f64> {
    exposition::parse(text)
        .into_iter()
        .filter(|s| s.matches("aws_transfer_sessions_total", &[("server_id", SERVER)]))
        .map(|s| (s.label("user").unwrap_or("").to_owned(), s.value))
        .collect()
}

/// What a Prometheus server would compute from the scrapes: per series,
/// the increase with reset handling (a drop is a reset: the new value is
/// all increase), the series starting from 0 when it first appears. The
/// per-user series say which events were counted; the one series that
/// counts them all (`aws_transfer_events_total{activity="CONNECTED"}`) is
/// where a recount after a crash would show as a reset and an overcount.
#[derive(Default)]
pub(crate) struct Increase {
    last: BTreeMap<String, f64>,
    total: BTreeMap<String, f64>,
    drops: Vec<String>,
    all_last: f64,
    all_total: f64,
}

impl Increase {
    /// The last life: scrapes until every one of `total` events (users
    /// `u0..u{total}`) has been seen, or `timeout`.
    pub(crate) fn observe_until_complete(
        &mut self,
        life: usize,
        total: usize,
        timeout: Duration,
        scrape: impl Fn() -> String,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            self.observe(life, &scrape());
            if (self.total.len() >= total && self.all_last >= total as f64)
                || Instant::now() >= deadline
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The promise as Prometheus sees it, across every life: no counter
    /// went down, each of the `total` events (users `u0..u{total}`) grew
    /// its series by exactly 1, nothing else was counted, and the
    /// all-events series' `increase()` is `total`.
    pub(crate) fn assert_each_counted_once(&self, total: usize, stderr_tail: &str) {
        assert!(
            self.drops.is_empty(),
            "counters went down across restarts: {:?}",
            &self.drops[..self.drops.len().min(10)]
        );
        let missing: Vec<String> = (0..total)
            .map(|i| format!("u{i}"))
            .filter(|u| !self.total.contains_key(u))
            .take(10)
            .collect();
        assert!(
            missing.is_empty(),
            "events never counted (e.g. {missing:?}) of {total}; last stderr:\n{stderr_tail}"
        );
        let twice: Vec<(&String, &f64)> = self
            .total
            .iter()
            .filter(|(_, v)| **v != 1.0)
            .take(10)
            .collect();
        assert!(
            twice.is_empty(),
            "series whose increase is not exactly 1 (double-counted as Prometheus sees it): {twice:?}"
        );
        assert_eq!(self.total.len(), total, "counted something never written");
        assert_eq!(
            self.all_total, total as f64,
            "increase() of the all-events series across every life: {} for {total} events",
            self.all_total
        );
    }

    pub(crate) fn observe(&mut self, life: usize, text: &str) {
        if let Some(v) = exposition::value(
            text,
            "aws_transfer_events_total",
            &[("server_id", SERVER), ("activity", "CONNECTED")],
        ) {
            if v >= self.all_last {
                self.all_total += v - self.all_last;
            } else {
                self.drops.push(format!(
                    "life {life}: events_total went {} -> {v}",
                    self.all_last
                ));
                self.all_total += v;
            }
            self.all_last = v;
        }
        for (user, v) in counted(text) {
            let prev = self.last.get(&user).copied().unwrap_or(0.0);
            let inc = if v >= prev {
                v - prev
            } else {
                self.drops
                    .push(format!("life {life}: {user} went {prev} -> {v}"));
                v
            };
            *self.total.entry(user.clone()).or_default() += inc;
            self.last.insert(user, v);
        }
    }
}

/// How each life but the last ends.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// SIGKILL: nothing runs after it; the next life resumes from the state
    /// written with the last served scrape (or the last periodic flush).
    Kill,
    /// SIGTERM: the graceful path (final flush), which must exit 0 in time;
    /// the events it counted after the last scrape are seen by Prometheus
    /// in the next life (they are neither lost nor recounted).
    Term,
}

#[test]
fn sigkill_at_random_points_counts_every_event_exactly_once_as_prometheus_sees_it() {
    restarts_count_every_event_exactly_once(Ending::Kill, TRIALS);
}

#[test]
fn sigterm_at_random_points_counts_every_event_exactly_once_as_prometheus_sees_it() {
    restarts_count_every_event_exactly_once(Ending::Term, 10);
}

fn restarts_count_every_event_exactly_once(ending: Ending, trials: usize) {
    let moto = Moto::shared();
    let logs = Arc::new(Logs::new(&moto.url));
    let group = format!("/{}/restart", unique("restart"));
    let stream = format!("{SERVER}/many");
    logs.create_group(&group);
    logs.create_stream(&group, &stream);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "state:\n  flush_interval: 1s\n").unwrap();
    let args = vec![
        format!("--config.file={}", config.display()),
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={}", moto.url),
        format!("--logs.group={group}"),
        "--logs.group-prefix=/none-such-prefix/".into(),
        "--poll.interval=500ms".into(),
        "--aws.api-rate-per-second=20".into(),
        "--limits.max-users-per-server=100000".into(),
        format!("--state.path={}", state.display()),
    ];

    // Writer: 20 events every 100 ms (~200/s) until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (logs, group, stream, stop, written) = (
            logs.clone(),
            group.clone(),
            stream.clone(),
            stop.clone(),
            written.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let base = written.load(Ordering::Relaxed);
                let t = now_ms();
                let batch: Vec<(i64, String)> = (0..20)
                    .map(|k| {
                        let i = base + k;
                        (
                            t,
                            shapes::connected(SERVER, &format!("u{i}"), &format!("{i:020x}")),
                        )
                    })
                    .collect();
                logs.put(&group, &stream, &batch);
                written.fetch_add(batch.len(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    let mut rng = rand::rng();
    let mut prom = Increase::default();
    // Lives that started from journal records (writes after a life's first
    // are appended to `<state>.journal`): the kills land between them too.
    let mut replayed = 0;
    // Lives that went on appending to the journal they loaded (their first
    // write a record, not the whole state).
    let mut continued = 0;
    for life in 0..trials {
        let mut d = Daemon::start(&args);
        // A crash loop first (within 1 s of start), then anywhere up to 3 s.
        let max_ms = if life < 5 { 1000 } else { 3000 };
        let kill_at = Instant::now() + Duration::from_millis(rng.random_range(100..max_ms));
        loop {
            if Instant::now() >= kill_at {
                match ending {
                    Ending::Kill => d.kill(),
                    Ending::Term => {
                        d.terminate();
                        let status = d.wait_exit(Duration::from_secs(20));
                        assert!(
                            status.is_some_and(|s| s.success()),
                            "life {life}: SIGTERM did not end in a clean exit ({status:?}); stderr:\n{}",
                            d.stderr_tail(20)
                        );
                    }
                }
                break;
            }
            prom.observe(life, &d.metrics());
            std::thread::sleep(Duration::from_millis(rng.random_range(50..250)));
        }
        if d.stderr().contains("state journal replayed") {
            replayed += 1;
        }
        if d.stderr().contains("state journal continued") {
            continued += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let total = written.load(Ordering::Relaxed);

    // The last life catches up on everything.
    let d = Daemon::start(&args);
    prom.observe_until_complete(trials, total, Duration::from_secs(60), || d.metrics());
    prom.assert_each_counted_once(total, &d.stderr_tail(30));
    assert!(
        replayed > 0,
        "no life resumed from journal records: the journal path went untested"
    );
    assert!(
        continued > 0,
        "no life continued the journal it loaded: that path went untested"
    );
    eprintln!("restart ({ending:?}): {total} events over {trials} lives + 1, each counted exactly once as seen by the scraper; {replayed} lives resumed through journal records, {continued} appended to the journal they loaded");
}
