//! Restart: the daemon is killed with SIGKILL at random points while events
//! keep arriving, and restarted on the same state file.
//!
//! Every event is a CONNECTED of its own user, so each event has its own
//! series (`aws_transfer_sessions_total{user="u<i>"}`) and the test can see
//! which life counted which event. Checked:
//! - within one process no event is ever counted twice (no value above 1);
//! - across lives, the events counted add up to exactly the events written
//!   (none lost), the last life catching up from the state file.
//!
//! Each life's count is its last scrape, taken immediately before the
//! SIGKILL (what Prometheus would have seen). A life killed between
//! counting an event and its next state write leaves that event to be
//! counted again by the next life; the test reports how often that
//! happened. Residual race: an event counted *and* written to the state
//! file in the instant between that last scrape and the kill would be
//! invisible to the test (and to Prometheus); with a 1 s poll and the kill
//! following the scrape by well under a millisecond this does not occur in
//! practice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::support::logs::shapes;
use crate::support::{exposition, now_ms, unique, Daemon, Logs, Moto, REGION};

const SERVER: &str = "s-0aaaaaaaaaaaaaaa1";
const TRIALS: usize = 10;

/// Users counted in this exposition, with their values.
fn counted(text: &str) -> BTreeMap<String, f64> {
    exposition::parse(text)
        .into_iter()
        .filter(|s| s.matches("aws_transfer_sessions_total", &[("server_id", SERVER)]))
        .map(|s| (s.label("user").unwrap_or("").to_owned(), s.value))
        .collect()
}

#[test]
fn sigkill_at_random_points_loses_nothing_and_never_double_counts_within_a_process() {
    let moto = Moto::shared();
    let logs = Arc::new(Logs::new(&moto.url));
    let group = format!("/{}/restart", unique("restart"));
    let stream = format!("{SERVER}/many");
    logs.create_group(&group);
    logs.create_stream(&group, &stream);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    // Write the state often, so most kills land after a write: what is
    // counted again after a kill is bounded by this interval plus one round.
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "state:\n  flush_interval: 200ms\n").unwrap();
    let args = vec![
        format!("--config.file={}", config.display()),
        format!("--aws.region={REGION}"),
        format!("--aws.endpoint-url={}", moto.url),
        format!("--logs.group={group}"),
        "--logs.group-prefix=/none-such-prefix/".into(),
        "--poll.interval=1s".into(),
        "--aws.api-rate-per-second=20".into(),
        "--limits.max-users-per-server=100000".into(),
        format!("--state.path={}", state.display()),
    ];

    // Writer: 20 events every 200 ms until told to stop.
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
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    let mut rng = rand::rng();
    let mut seen_by_life: Vec<BTreeSet<String>> = Vec::new();
    for trial in 0..TRIALS {
        let mut d = Daemon::start(&args);
        let kill_at = Instant::now() + Duration::from_millis(rng.random_range(300..3000));
        let mut seen = BTreeSet::new();
        loop {
            let last = Instant::now() >= kill_at;
            // The scrape right before the kill is this life's final count
            // as Prometheus would see it; SIGKILL follows within a
            // millisecond, at a random point of the daemon's poll and
            // state-write cycle.
            let text = d.metrics();
            if last {
                d.kill();
            }
            for (user, v) in counted(&text) {
                assert!(
                    v <= 1.0,
                    "life {trial}: user {user} counted {v} times in one process"
                );
                seen.insert(user);
            }
            if last {
                break;
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(50..250)));
        }
        seen_by_life.push(seen);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let total = written.load(Ordering::Relaxed);

    // The last life catches up on everything.
    let d = Daemon::start(&args);
    let deadline = Instant::now() + Duration::from_secs(60);
    let last = loop {
        let now = counted(&d.metrics());
        for (user, v) in &now {
            assert!(
                *v <= 1.0,
                "last life: user {user} counted {v} times in one process"
            );
        }
        let mut union: BTreeSet<&String> = seen_by_life.iter().flatten().collect();
        union.extend(now.keys());
        if union.len() >= total || Instant::now() >= deadline {
            break now.into_keys().collect::<BTreeSet<String>>();
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    seen_by_life.push(last);

    let union: BTreeSet<&String> = seen_by_life.iter().flatten().collect();
    let expected: BTreeSet<String> = (0..total).map(|i| format!("u{i}")).collect();
    let missing: Vec<&String> = expected
        .iter()
        .filter(|u| !union.contains(u))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {total} events never counted (e.g. {missing:?}); last stderr:\n{}",
        expected.len() - union.len().min(expected.len()),
        d.stderr_tail(30)
    );
    assert_eq!(
        union.len(),
        total,
        "counted something that was never written"
    );
    let counts: Vec<usize> = seen_by_life.iter().map(BTreeSet::len).collect();
    let recounted: usize = counts.iter().sum::<usize>() - total;
    // The state file worked: later lives resumed instead of starting over.
    let last_life = *counts.last().unwrap();
    assert!(
        last_life < total / 2,
        "the last life counted {last_life} of {total} events: it did not resume from the state file; per-life {counts:?}"
    );
    eprintln!(
        "restart: {total} events written over {TRIALS} SIGKILLed lives + 1; per-life counts {counts:?}; \
         counted again by a later life after a kill: {recounted}"
    );
}
