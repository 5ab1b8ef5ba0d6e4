//! The source against a real moto server: pagination, exactly-once within a
//! process, late arrival, and resuming from the state file.

use std::time::Duration;

use crate::source_harness::{connected_events, server_id, target, Harness};
use crate::support::{now_ms, unique, wait_until, Logs, Moto};

/// 25,000 events in one group, written to 5 streams (moto returns them
/// grouped by stream, not by time), read with pages of 700: every event is
/// counted exactly once, and the overlapping windows of later polls skip the
/// ones already counted.
#[test]
fn pagination_counts_25000_events_exactly_once() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let group = unique("/it/source/pages/");
    let server = server_id();
    logs.create_group(&group);
    let now = now_ms();
    let total = 25_000;
    let per_stream = total / 5;
    for s in 0..5 {
        // interleaved timestamps across streams: stream s holds every 5th ms
        let events = connected_events(&server, per_stream, now - 600_000 + s as i64, 5);
        logs.put_new(&group, &format!("stream-{s}"), &events);
    }
    let mut t = target(&moto.url, &[], &[&group]);
    t.page_limit = 700;
    t.late_arrival_window = Duration::from_secs(3600); // every later poll re-reads all 25,000
    let mut h = Harness::start(vec![t]);
    wait_until("first round", Duration::from_secs(120), || {
        h.sources().is_ready().then_some(())
    });
    assert_eq!(
        h.connected(&server),
        total as u64,
        "first round counts every event once"
    );
    assert!(
        h.api("FilterLogEvents", "success") >= (total / 700) as u64,
        "followed every page"
    );
    // Two more polls re-read the whole window: all duplicates, none counted.
    h.wait_polls(&group, 2, Duration::from_secs(120));
    h.halt();
    assert_eq!(h.connected(&server), total as u64, "{}", h.render());
    assert!(
        h.duplicates(&group) >= 2 * total as u64,
        "duplicates {}",
        h.duplicates(&group)
    );
    assert_eq!(h.read(&group) - h.duplicates(&group), total as u64);
    assert_eq!(h.late(&group), 0);
}

/// An event stamped before the checkpoint but inside the late-arrival
/// window is counted once (by the sweep: the polls' overlap is 0.5 s); one
/// visible later than the window is never counted in the product metrics
/// but shows up in events_late (the sweep reaches 12 s back, so it finds
/// events up to 10 s late).
#[test]
fn late_events_inside_the_window_count_once_and_outside_are_reported() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let group = unique("/it/source/late/");
    let server = server_id();
    logs.create_group(&group);
    logs.put_new(
        &group,
        "a",
        &connected_events(&server, 10, now_ms() - 30_000, 100),
    );
    let mut t = target(&moto.url, &[], &[&group]);
    t.late_arrival_window = Duration::from_secs(4);
    t.poll_interval = Duration::from_millis(300);
    t.sweep_reach = Some(Duration::from_secs(12));
    let h = Harness::start(vec![t]);
    wait_until("first round", Duration::from_secs(60), || {
        h.sources().is_ready().then_some(())
    });
    assert_eq!(h.connected(&server), 10);
    h.wait_polls(&group, 2, Duration::from_secs(30));

    // Late but inside the window: stamped 1.5 s ago, written now.
    let inside = now_ms() - 1_500;
    logs.put_new(
        &group,
        "late-inside",
        &connected_events(&server, 1, inside, 0),
    );
    wait_until(
        "late event inside the window counted",
        Duration::from_secs(30),
        || (h.connected(&server) == 11).then_some(()),
    );
    // Outside the window: stamped 8 s ago, written (visible) now.
    let outside = now_ms() - 8_000;
    logs.put_new(
        &group,
        "late-outside",
        &connected_events(&server, 2, outside, 1),
    );
    wait_until("late events reported", Duration::from_secs(90), || {
        (h.late(&group) == 2).then_some(())
    });
    h.wait_polls(&group, 3, Duration::from_secs(30));
    assert_eq!(
        h.connected(&server),
        11,
        "late events are not counted in product metrics"
    );
    assert_eq!(h.late(&group), 2, "reported once");
}

/// Stop and start again on the same state file while events keep
/// arriving: no event lost, none counted twice by the second process.
#[test]
fn restart_resumes_from_the_state_file() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let group = unique("/it/source/restart/");
    let server = server_id();
    logs.create_group(&group);
    logs.put_new(
        &group,
        "a",
        &connected_events(&server, 100, now_ms() - 60_000, 10),
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let t = target(&moto.url, &[], &[&group]);

    let first = Harness::start_at(vec![t.clone()], state.clone());
    wait_until("first round", Duration::from_secs(60), || {
        first.sources().is_ready().then_some(())
    });
    assert_eq!(first.connected(&server), 100);
    first.stop();

    // Written while no exporter runs.
    logs.put_new(
        &group,
        "b",
        &connected_events(&server, 50, now_ms() - 5_000, 10),
    );
    // The counter resumes at 100 (what the first life's last state held)
    // and grows by exactly the 50 new events.
    let second = Harness::start_at(vec![t], state);
    wait_until("second life catches up", Duration::from_secs(60), || {
        (second.connected(&server) == 150).then_some(())
    });
    second.wait_polls(&group, 3, Duration::from_secs(30));
    assert_eq!(
        second.connected(&server),
        150,
        "resumed at 100, then only the new events: {}",
        second.render()
    );
}

/// A corrupt state file is moved aside and the source starts from the
/// initial lookback instead of failing.
#[test]
fn corrupt_state_file_starts_from_the_initial_lookback() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let group = unique("/it/source/corrupt/");
    let server = server_id();
    logs.create_group(&group);
    logs.put_new(
        &group,
        "a",
        &connected_events(&server, 5, now_ms() - 60_000, 10),
    );
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    std::fs::write(&state, "{ not json").unwrap();
    let h = Harness::start_at(vec![target(&moto.url, &[], &[&group])], state.clone());
    wait_until("first round", Duration::from_secs(60), || {
        h.sources().is_ready().then_some(())
    });
    assert_eq!(h.connected(&server), 5);
    assert!(dir.path().join("state.json.corrupt").exists());
    wait_until("state written", Duration::from_secs(10), || {
        (h.metrics.state_writes.with_label_values(&["success"]).get() > 0).then_some(())
    });
    // The state file with its journal folded in, as the next start reads it.
    let saved = aws_transfer_exporter::state::StateStore::load(
        &aws_transfer_exporter::state::FileStore::new(&state),
    );
    let text = serde_json::to_string(&saved).unwrap();
    assert!(text.contains(&group), "state records the group");
}
