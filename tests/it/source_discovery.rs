//! Discovery against moto: more groups than one DescribeLogGroups page are
//! all found; a group created while running is picked up; a group deleted
//! while running is dropped and the others carry on; groups added at run
//! time (the inventory's structured destinations) are polled.

use std::time::Duration;

use crate::source_harness::{connected_events, server_id, target, Harness};
use crate::support::{now_ms, unique, wait_until, Logs, Moto};

#[test]
fn discovery_follows_pages_picks_up_new_groups_and_survives_deleted_ones() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let prefix = unique("/it/source/disc/");
    let server = server_id();
    // 60 groups: more than one page (DescribeLogGroups returns at most 50).
    let n = 60;
    let groups: Vec<String> = (0..n).map(|i| format!("{prefix}/g{i:02}")).collect();
    for g in &groups {
        logs.create_group(g);
        logs.put_new(g, "s", &connected_events(&server, 1, now_ms() - 10_000, 0));
    }
    // A group outside the prefix is not polled.
    let outsider = unique("/it/source/outsider/");
    logs.create_group(&outsider);
    logs.put_new(
        &outsider,
        "s",
        &connected_events(&server, 1, now_ms() - 10_000, 0),
    );

    let mut t = target(&moto.url, &[&prefix], &[]);
    t.api_rate_per_second = 100.0;
    t.discovery_interval = Duration::from_secs(1);
    let h = Harness::start(vec![t]);
    wait_until("first round", Duration::from_secs(120), || {
        h.sources().is_ready().then_some(())
    });
    assert_eq!(h.metrics.log_groups.get(), n as i64);
    assert_eq!(
        h.connected(&server),
        n as u64,
        "one event per group, outsider excluded"
    );
    assert!(
        h.api("DescribeLogGroups", "success") >= 2,
        "followed the second page"
    );
    assert_eq!(h.sources().status().len(), n);

    // Created while running.
    let newcomer = format!("{prefix}/new");
    logs.create_group(&newcomer);
    logs.put_new(
        &newcomer,
        "s",
        &connected_events(&server, 3, now_ms() - 1_000, 1),
    );
    wait_until("new group counted", Duration::from_secs(60), || {
        (h.connected(&server) == n as u64 + 3).then_some(())
    });
    assert_eq!(h.metrics.log_groups.get(), n as i64 + 1);

    // Deleted while running: dropped, others carry on.
    logs.delete_group(&groups[7]);
    wait_until("deleted group dropped", Duration::from_secs(60), || {
        (h.metrics.log_groups.get() == n as i64).then_some(())
    });
    logs.put_new(
        &groups[8],
        "s2",
        &connected_events(&server, 2, now_ms() - 1_000, 1),
    );
    wait_until("others still polled", Duration::from_secs(60), || {
        (h.connected(&server) == n as u64 + 5).then_some(())
    });
    assert!(h
        .sources()
        .status()
        .iter()
        .all(|s| s.log_group != groups[7]));
    // Scraped: the lag is set at scrape time, for the groups still polled.
    let text = h.scrape();
    for name in [
        "aws_transfer_exporter_log_group_lag_seconds",
        "aws_transfer_exporter_log_group_seconds_since_last_successful_poll",
    ] {
        assert!(
            text.contains(&format!("{name}{{log_group=\"{}\"}}", groups[0])),
            "groups still polled have {name}:\n{text}"
        );
        assert!(
            !text.contains(&format!("{name}{{log_group=\"{}\"}}", groups[7])),
            "a dropped group has no {name}:\n{text}"
        );
    }

    // Added at run time (explicit, outside the prefix).
    h.sources().add_groups("test", vec![outsider.clone()]);
    wait_until("added group polled", Duration::from_secs(60), || {
        (h.connected(&server) == n as u64 + 6).then_some(())
    });
}

/// An explicit group that does not exist yields a not_found poll error but
/// does not stop the other groups, and is polled once it is created.
#[test]
fn missing_explicit_group_does_not_stop_others() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let present = unique("/it/source/present/");
    let absent = unique("/it/source/absent/");
    let server = server_id();
    logs.create_group(&present);
    logs.put_new(
        &present,
        "s",
        &connected_events(&server, 4, now_ms() - 5_000, 1),
    );
    let mut t = target(&moto.url, &[], &[&present, &absent]);
    t.discovery_interval = Duration::from_secs(1);
    let h = Harness::start(vec![t]);
    wait_until("present group counted", Duration::from_secs(60), || {
        (h.connected(&server) == 4).then_some(())
    });
    wait_until("not_found counted", Duration::from_secs(30), || {
        (h.metrics
            .poll_errors
            .with_label_values(&[absent.as_str(), "not_found"])
            .get()
            > 0)
        .then_some(())
    });
    logs.create_group(&absent);
    logs.put_new(
        &absent,
        "s",
        &connected_events(&server, 2, now_ms() - 1_000, 1),
    );
    wait_until(
        "absent group counted once created",
        Duration::from_secs(60),
        || (h.connected(&server) == 6).then_some(()),
    );
}
