//! Honest health during a total outage: every FilterLogEvents call answered
//! `ThrottlingException` by the fault proxy in front of moto. The lag and
//! the time since the last successful poll, as scraped from `/metrics`,
//! grow with the clock through the outage (instead of freezing at the last
//! success), and fall back once polls succeed again.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::source_harness::{connected_events, server_id, target, Harness};
use crate::support::exposition;
use crate::support::faultproxy::FaultProxy;
use crate::support::{now_ms, unique, wait_until, Logs, Moto};

const LAG: &str = "aws_transfer_exporter_log_group_lag_seconds";
const SINCE: &str = "aws_transfer_exporter_log_group_seconds_since_last_successful_poll";
const LAST_POLL: &str = "aws_transfer_exporter_last_successful_poll_timestamp_seconds";

/// How long the outage lasts: long against the 500 ms poll interval, short
/// for a test.
const OUTAGE: Duration = Duration::from_secs(7);

/// One scrape through the app's listener, with the wall-clock interval in
/// which the daemon took its `now`.
struct Scrape {
    sent: Instant,
    answered: Instant,
    /// The same two moments on the wall clock, Unix milliseconds.
    sent_ms: i64,
    answered_ms: i64,
    text: String,
}

impl Scrape {
    fn take(h: &Harness) -> Scrape {
        let (sent, sent_ms) = (Instant::now(), now_ms());
        let text = h.scrape();
        Scrape {
            sent,
            answered: Instant::now(),
            sent_ms,
            answered_ms: now_ms(),
            text,
        }
    }

    fn value(&self, name: &str, group: &str) -> f64 {
        exposition::value(&self.text, name, &[("log_group", group)])
            .unwrap_or_else(|| panic!("no {name}{{log_group={group:?}}} in:\n{}", self.text))
    }
}

/// Asserts that `name` grew from `a` to `b` by the time between the two
/// scrapes (bounds from the request/answer instants, plus clock rounding):
/// nothing reset it in between.
fn assert_grew_with_clock(name: &str, group: &str, a: &Scrape, b: &Scrape) {
    let grew = b.value(name, group) - a.value(name, group);
    let min = b.sent.duration_since(a.answered).as_secs_f64() - 0.05;
    let max = b.answered.duration_since(a.sent).as_secs_f64() + 0.05;
    assert!(
        (min..=max).contains(&grew),
        "{name} grew by {grew:.3} s between two scrapes {min:.3}..{max:.3} s apart\nfirst:\n{}\nsecond:\n{}",
        a.text,
        b.text
    );
}

#[test]
fn lag_and_time_since_last_poll_grow_during_a_total_outage_and_recover() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let proxy = FaultProxy::start(&moto.url);
    let group = unique("/it/source/outage/");
    let server = server_id();
    logs.create_group(&group);
    logs.put_new(
        &group,
        "a",
        &connected_events(&server, 5, now_ms() - 2_000, 100),
    );
    // One explicit group: no discovery, every call is a FilterLogEvents.
    let t = target(&proxy.url, &[], &[&group]);
    let h = Harness::start(vec![t]);
    wait_until("5 events counted", Duration::from_secs(60), || {
        (h.connected(&server) == 5).then_some(())
    });
    h.wait_polls(&group, 1, Duration::from_secs(30));

    // Healthy: polled within a poll interval or so, newest event ~2 s old.
    let before = Scrape::take(&h);
    assert!(
        before.value(SINCE, &group) < 2.0,
        "polled recently:\n{}",
        before.text
    );
    let lag_before = before.value(LAG, &group);
    assert!(
        (1.0..10.0).contains(&lag_before),
        "newest event ~2 s old: {lag_before}"
    );

    // ---- total outage ----
    let outage_start = Instant::now();
    proxy
        .faults
        .throttle_per_mille
        .store(1000, Ordering::Relaxed);
    // A poll in flight when the outage began may still succeed. One group
    // is polled one call at a time, so once a call made after the switch is
    // throttled, every success has been recorded: from then on the clock
    // must show in every scrape.
    let first_failure = wait_until(
        "a FilterLogEvents call throttled",
        Duration::from_secs(10),
        || {
            proxy
                .calls()
                .into_iter()
                .find(|c| {
                    c.operation == "FilterLogEvents"
                        && c.fate == "throttled"
                        && c.at >= outage_start
                })
                .map(|c| c.at)
        },
    );
    std::thread::sleep(Duration::from_millis(200));
    let first = Scrape::take(&h);
    let last_poll_at_start = first.value(LAST_POLL, &group);
    let mut prev = first;
    let mut scrapes = 1;
    while outage_start.elapsed() < OUTAGE {
        std::thread::sleep(Duration::from_millis(1500));
        let s = Scrape::take(&h);
        assert_grew_with_clock(SINCE, &group, &prev, &s);
        assert_grew_with_clock(LAG, &group, &prev, &s);
        assert_eq!(
            s.value(LAST_POLL, &group),
            last_poll_at_start,
            "no poll succeeded during the outage"
        );
        prev = s;
        scrapes += 1;
    }
    let end = prev;
    assert!(scrapes >= 4, "{scrapes} scrapes during the outage");
    // No success since before the first failed call.
    let failing = end.sent.duration_since(first_failure).as_secs_f64();
    let since = end.value(SINCE, &group);
    assert!(
        since >= failing - 0.05,
        "{SINCE} is {since:.3} s, {failing:.3} s after the first failed call:\n{}",
        end.text
    );
    // No event was written meanwhile: the lag grew with the clock from
    // before the outage to its end.
    assert_grew_with_clock(LAG, &group, &before, &end);
    // It was a total outage of FilterLogEvents, seen by the exporter.
    let forwarded = proxy
        .calls()
        .into_iter()
        .filter(|c| c.operation == "FilterLogEvents" && c.fate == "forwarded")
        .filter(|c| c.at >= first_failure && c.at <= end.answered)
        .count();
    assert_eq!(forwarded, 0, "no FilterLogEvents call got through");
    assert!(h.api("FilterLogEvents", "throttled") > 0);

    // ---- recovery ----
    proxy.faults.throttle_per_mille.store(0, Ordering::Relaxed);
    let recovery = Instant::now();
    let event_ms = now_ms();
    logs.put_new(&group, "b", &connected_events(&server, 1, event_ms, 0));
    wait_until(
        "the event written after the outage counted",
        Duration::from_secs(60),
        || (h.connected(&server) == 6).then_some(()),
    );
    // The poll that counted it records its success when it ends.
    let after = wait_until(
        &format!("{SINCE} back to about a poll interval"),
        Duration::from_secs(10),
        || {
            let s = Scrape::take(&h);
            (s.value(SINCE, &group) < 2.0).then_some(s)
        },
    );
    // The lag is the age of that event again (however long the retries'
    // backoff took to notice the end of the outage).
    let lag = after.value(LAG, &group);
    let min = (after.sent_ms - event_ms - 50) as f64 / 1000.0;
    let max = (after.answered_ms - event_ms + 50) as f64 / 1000.0;
    assert!(
        (min..=max).contains(&lag),
        "lag {lag:.3} s is the age of the newest event ({min:.3}..{max:.3} s; recovered in {:?}):\n{}",
        recovery.elapsed(),
        after.text
    );
    assert!(after.value(LAST_POLL, &group) > last_poll_at_start);
}
