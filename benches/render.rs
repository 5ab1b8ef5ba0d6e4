//! `/metrics` render time at 10k and 100k series: the cost of one scrape.
//!
//! Series are `aws_transfer_errors_total{server_id, user, category, cause}`
//! (the widest family), spread as 500 users per server (the default label
//! cap) over 20 or 200 servers, plus every other family at its empty state.
//!
//! Run: `cargo bench --bench render`. RSS at the same sizes:
//! `scripts/bench-rss.sh`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prometheus::Registry;

use aws_transfer_exporter::metrics::{render, Limits, Metrics};

/// Registry holding `n` error series (n a multiple of 500).
pub fn registry_with(n: usize) -> Registry {
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
            .inc_by(i as u64 + 1);
    }
    reg
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("render");
    g.sample_size(20);
    for n in [10_000usize, 100_000] {
        let reg = registry_with(n);
        let bytes = render(&reg).len();
        eprintln!("render/{n}: exposition is {bytes} bytes");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("{n}_series"), |b| b.iter(|| render(&reg)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
