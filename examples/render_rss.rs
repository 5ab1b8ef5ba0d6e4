//! Resident memory of the metrics registry at N series, before and after a
//! render (a scrape allocates the whole exposition once). Linux only: reads
//! VmRSS/VmHWM from /proc/self/status. Run through `scripts/bench-rss.sh`.

use aws_transfer_exporter::metrics::{render, Limits, Metrics};
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
    let text = render(&reg);
    let after_render = rss_kib("VmRSS:");
    let peak = rss_kib("VmHWM:");
    println!(
        "series={n} exposition_bytes={} rss_start_kib={base} rss_filled_kib={after_fill} rss_after_render_kib={after_render} peak_kib={peak} registry_kib={}",
        text.len(),
        after_fill.saturating_sub(base)
    );
}
