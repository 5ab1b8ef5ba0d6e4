//! How often each event is read (issue 13, part 2), against moto: polls
//! read a little behind their checkpoint, a slower sweep reads each stretch
//! once more after its late-arrival window has closed.
//!
//! The default timing (10 s polls, 5 min window, 1 min sweeps, 2 s overlap
//! floor) needs more than ten minutes to reach and measure a steady state.
//! The steady-state test runs every duration scaled by 1/30 (polls every
//! 333 ms, window 10 s, sweeps every 2 s reaching back 12 s, floor 67 ms),
//! which keeps the ratios the read count depends on: overlap / interval and
//! sweep reach / window. `cargo bench --bench poll_reads` runs the exact
//! defaults on a simulated clock (BENCHMARKS.md).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::source_harness::{connected_events, server_id, target, Harness};
use crate::support::{now_ms, unique, wait_until, Logs, Moto};

/// ~50 events/s into one group for ~45 s: between two points in steady
/// state, events read / events counted stays ≤ 3 (the old poller read each
/// event ~30× at its defaults); and every event is counted exactly once
/// while later sweeps re-read the tail.
#[test]
fn steady_state_reads_each_event_at_most_three_times() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let group = unique("/it/source/reads/");
    let server = server_id();
    logs.create_group(&group);
    logs.create_stream(&group, "w");

    let mut t = target(&moto.url, &[], &[&group]);
    t.initial_lookback = Duration::from_secs(1);
    t.poll_interval = Duration::from_millis(333);
    t.late_arrival_window = Duration::from_secs(10);
    t.overlap_floor = Duration::from_millis(67);
    t.sweep_interval = Duration::from_secs(2);
    t.sweep_reach = None; // window + sweep interval = 12 s
    let h = Harness::start(vec![t]);

    // The writer: 5 events every 100 ms, stamped now.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, written, url, group, server) = (
            stop.clone(),
            written.clone(),
            moto.url.clone(),
            group.clone(),
            server.clone(),
        );
        std::thread::spawn(move || {
            let logs = Logs::new(&url);
            let deadline = Instant::now() + Duration::from_secs(90);
            while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                logs.put(&group, "w", &connected_events(&server, 5, now_ms(), 1));
                written.fetch_add(5, Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    // Steady state: the sweeps have reached the stretch written from the
    // start (lag 10 s + one sweep interval).
    std::thread::sleep(Duration::from_secs(14));
    let (read0, counted0) = (h.read(&group), h.connected(&server));
    std::thread::sleep(Duration::from_secs(16));
    let (read1, counted1) = (h.read(&group), h.connected(&server));
    stop.store(true, Ordering::Release);
    writer.join().expect("writer");
    let written = written.load(Ordering::Acquire);

    let counted = counted1 - counted0;
    let ratio = (read1 - read0) as f64 / counted as f64;
    eprintln!(
        "steady state: {} read, {counted} counted, ratio {ratio:.2}",
        read1 - read0
    );
    assert!(
        counted >= 400,
        "the writer kept ~50/s going: {counted} counted in 16 s"
    );
    assert!(
        (1.0..=3.0).contains(&ratio),
        "events read / events counted = {ratio:.2} ({} read, {counted} counted)",
        read1 - read0
    );

    // Exactly once, also after the sweeps have re-read the last events.
    wait_until("every event counted", Duration::from_secs(30), || {
        (h.connected(&server) == written).then_some(())
    });
    let dup = h.duplicates(&group);
    std::thread::sleep(Duration::from_secs(14));
    assert_eq!(h.connected(&server), written, "{}", h.render());
    assert!(h.duplicates(&group) > dup, "the sweep re-read the tail");
    assert_eq!(h.late(&group), 0);
    // One delay observation per event, not per read.
    let delays = h
        .metrics
        .ingestion_delay
        .with_label_values(&[&group])
        .get_sample_count();
    assert_eq!(delays, written, "one ingestion delay per event");
}

/// Once it has seen moto's near-zero delays the overlap sits at its floor, so
/// an event stamped 2 s in the past (inside the 4 s window) is missed by the
/// polls and counted by the sweep, once; events stamped 8 s in the past
/// (beyond the window, within the sweep's reach) are reported late, once,
/// and never counted; the delay histogram sees each of them once.
#[test]
fn sweep_counts_in_window_stragglers_once_and_reports_later_ones() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let group = unique("/it/source/sweep/");
    let server = server_id();
    logs.create_group(&group);
    // Written as they happen (delay ~0), enough for a delay estimate: the
    // overlap goes to its floor.
    logs.put_new(
        &group,
        "a",
        &connected_events(&server, 30, now_ms() - 300, 10),
    );
    let mut t = target(&moto.url, &[], &[&group]);
    t.late_arrival_window = Duration::from_secs(4);
    t.poll_interval = Duration::from_millis(300);
    t.overlap_floor = Duration::from_millis(100);
    t.sweep_interval = Duration::from_secs(1);
    t.sweep_reach = Some(Duration::from_secs(12)); // sweeps 11 s behind now
    let h = Harness::start(vec![t]);
    wait_until("first round", Duration::from_secs(60), || {
        h.sources().is_ready().then_some(())
    });
    assert_eq!(h.connected(&server), 30);
    h.wait_polls(&group, 2, Duration::from_secs(30));

    let written_at = Instant::now();
    logs.put_new(
        &group,
        "straggler",
        &connected_events(&server, 1, now_ms() - 2_000, 0),
    );
    logs.put_new(
        &group,
        "too-late",
        &connected_events(&server, 2, now_ms() - 8_000, 1),
    );
    wait_until("straggler counted", Duration::from_secs(40), || {
        (h.connected(&server) == 31).then_some(())
    });
    assert!(
        written_at.elapsed() >= Duration::from_secs(5),
        "counted by the sweep (11 s behind), not by a poll: {:?}",
        written_at.elapsed()
    );
    wait_until("late events reported", Duration::from_secs(40), || {
        (h.late(&group) == 2).then_some(())
    });
    // Further sweeps and polls: nothing more counted or reported.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(h.connected(&server), 31, "{}", h.render());
    assert_eq!(h.late(&group), 2, "reported once");
    let delay = h.metrics.ingestion_delay.with_label_values(&[&group]);
    assert_eq!(delay.get_sample_count(), 33, "each event observed once");
    assert!(
        delay.get_sample_sum() >= 2.0 * 8.0 + 2.0 - 0.5,
        "delays observed: sum {}",
        delay.get_sample_sum()
    );
}
