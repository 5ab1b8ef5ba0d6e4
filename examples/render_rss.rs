//! Resident memory of the metrics at N series, before and after a render
//! (a scrape copies the values and allocates the whole exposition once),
//! and the time of that render as a scrape does it (copy, order, encode
//! the text format): `render_ms` is the first render (it sorts every
//! series once), `render_again_ms` the next one (the steady state: the sort
//! order is cached). Linux only: reads VmRSS/VmHWM from /proc/self/status.
//! Run through `scripts/bench-rss.sh`.

use std::time::Instant;

use aws_transfer_exporter::metrics::{Limits, Metrics};
use prometheus::Registry;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let base = rss_kib("VmRSS:");
    let reg = Registry::new();
    let m = Metrics::new(&reg, Limits::default());
    let causes = [
        ("auth", "unknown_user"),
        ("auth", "key_mismatch"),
        ("iam", "access_denied"),
        ("storage", "bucket_not_found"),
    ];
    for i in 0..n {
        let server = format!("s-{:017x}", i / 500);
        let user = format!("user{:04}", i % 500);
        let (cat, cause) = causes[i % causes.len()];
        m.errors
            .with_label_values(&[&server, &user, cat, cause])
            .inc();
    }
    let after_fill = rss_kib("VmRSS:");
    let t = Instant::now();
    let text = m.snapshot().text();
    let render_ms = t.elapsed().as_secs_f64() * 1000.0;
    let after_render = rss_kib("VmRSS:");
    let peak = rss_kib("VmHWM:");
    let len = text.len();
    drop(text);
    let t = Instant::now();
    let again = m.snapshot().text();
    let render_again_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(again.len(), len);
    println!(
        "series={n} exposition_bytes={len} render_ms={render_ms:.1} render_again_ms={render_again_ms:.1} rss_start_kib={base} rss_filled_kib={after_fill} rss_after_render_kib={after_render} peak_kib={peak} registry_kib={}",
        after_fill.saturating_sub(base)
    );
}
