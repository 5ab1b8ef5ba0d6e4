//! The source through a fault-injecting proxy in front of moto:
//! ThrottlingException on half the calls, bursts of 5xx, slow responses.
//! Nothing is lost or double counted, the call rate stays within the
//! budget, and the throttles show in the self-metrics.

use std::time::Duration;

use std::sync::atomic::Ordering;

use crate::source_harness::{connected_events, server_id, target, Harness};
use crate::support::faultproxy::FaultProxy;
use crate::support::{now_ms, unique, wait_until, Logs, Moto};

#[test]
fn throttling_5xx_and_slow_responses_lose_nothing_and_respect_the_budget() {
    let moto = Moto::shared();
    let logs = Logs::new(&moto.url);
    let proxy = FaultProxy::start(&moto.url);
    proxy
        .faults
        .throttle_per_mille
        .store(500, Ordering::Relaxed);
    proxy.faults.delay_ms.store(150, Ordering::Relaxed);
    proxy.faults.error_burst.store(6, Ordering::Relaxed);

    let prefix = unique("/it/source/faults/");
    let server = server_id();
    let groups: Vec<String> = (0..3).map(|i| format!("{prefix}/g{i}")).collect();
    for g in &groups {
        logs.create_group(g);
        logs.put_new(
            g,
            "a",
            &connected_events(&server, 500, now_ms() - 120_000, 100),
        );
    }
    let rate = 4.0;
    let mut t = target(&proxy.url, &[&prefix], &[]);
    t.page_limit = 100; // 10 pages per group per window
    t.api_rate_per_second = rate;
    t.poll_interval = Duration::from_secs(1);
    let h = Harness::start(vec![t]);
    wait_until("1500 events counted", Duration::from_secs(240), || {
        (h.connected(&server) == 1500).then_some(())
    });

    // Another 5xx burst and more events while running.
    proxy.faults.error_burst.store(5, Ordering::Relaxed);
    for g in &groups {
        logs.put_new(g, "b", &connected_events(&server, 20, now_ms() - 2_000, 10));
    }
    wait_until("1560 events counted", Duration::from_secs(120), || {
        (h.connected(&server) == 1560).then_some(())
    });
    for g in &groups {
        h.wait_polls(g, 1, Duration::from_secs(120));
    }
    assert_eq!(
        h.connected(&server),
        1560,
        "nothing counted twice: {}",
        h.render()
    );

    let fates = proxy.fates("FilterLogEvents");
    assert!(
        fates.get("throttled").copied().unwrap_or(0) > 5,
        "{fates:?}"
    );
    assert!(h.api("FilterLogEvents", "throttled") > 5);
    assert!(h.api("FilterLogEvents", "transient") + h.api("DescribeLogGroups", "transient") >= 11);
    assert_eq!(
        h.api("FilterLogEvents", "throttled") + h.api("DescribeLogGroups", "throttled"),
        (fates.get("throttled").copied().unwrap_or(0)
            + proxy
                .fates("DescribeLogGroups")
                .get("throttled")
                .copied()
                .unwrap_or(0)) as u64,
        "every throttle the proxy answered is counted"
    );
    // The budget: at most rate × span + 1 calls start in any span (one
    // token of burst); one more for arrival jitter on a loaded machine.
    for span_s in [1u64, 5, 10] {
        let max = proxy.max_calls_within(Duration::from_secs(span_s));
        let allowed = (rate * span_s as f64) as usize + 2;
        assert!(
            max <= allowed,
            "{max} calls within {span_s}s, budget {allowed}"
        );
    }
    let text = h.render();
    assert!(text.contains("aws_transfer_exporter_api_calls_total{operation=\"FilterLogEvents\",outcome=\"throttled\"}"), "{text}");
}
