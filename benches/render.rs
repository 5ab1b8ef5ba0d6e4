//! `/metrics` render time at 10k and 100k series: the cost of one scrape,
//! three ways side by side in one run.
//!
//! - `direct`: what the daemon does: copy every value from the exporter's
//!   counter store (`Metrics::copy_values`, the only part that pauses
//!   counting), order them from the cached sort order, and write the text
//!   format directly from that snapshot (`Snapshot::text`).
//! - `direct_openmetrics`: the same snapshot written as OpenMetrics.
//! - `prometheus_gather_encode`: the `prometheus` crate's way (the
//!   exporter's way before): `Registry::gather` into protobuf-shaped
//!   structures, then `TextEncoder`.
//! - `prometheus_client`: the `prometheus-client` crate's `Family` of
//!   counters and its text encoder (OpenMetrics).
//! - `copy_only`: `copy_values` alone, i.e. how long a scrape pauses
//!   counting.
//!
//! Series are `aws_transfer_errors_total{server_id, user, category, cause}`
//! (the widest family), spread as 500 users per server (the default label
//! cap) over 20 or 200 servers; in `direct`, every other family of the
//! exporter is present in its start-up state.
//!
//! Run: `cargo bench --bench render`. RSS at the same sizes:
//! `scripts/bench-rss.sh`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prometheus::{Encoder, Registry, TextEncoder};
use prometheus_client::encoding::EncodeLabelSet;

use aws_transfer_exporter::metrics::{Limits, Metrics};

const CAUSES: [(&str, &str); 4] = [
    ("auth", "unknown_user"),
    ("auth", "key_mismatch"),
    ("iam", "access_denied"),
    ("storage", "bucket_not_found"),
];

/// The labels and value of series `i`.
fn series(i: usize) -> ([String; 4], u64) {
    let (cat, cause) = CAUSES[i % CAUSES.len()];
    (
        [
            format!("s-{:017x}", i / 500),
            format!("user{:04}", i % 500),
            cat.to_owned(),
            cause.to_owned(),
        ],
        i as u64 + 1,
    )
}

/// The exporter's metrics holding `n` error series.
fn metrics_with(n: usize) -> Metrics {
    let m = Metrics::new(&Registry::new(), Limits::default());
    for i in 0..n {
        let (l, v) = series(i);
        m.errors
            .with_label_values(&[&l[0], &l[1], &l[2], &l[3]])
            .inc_by(v);
    }
    m
}

/// A plain `prometheus` registry with the same series.
fn prometheus_with(n: usize) -> Registry {
    let reg = Registry::new();
    let c = prometheus::IntCounterVec::new(
        prometheus::Opts::new("aws_transfer_errors_total", "Classified server failures."),
        &["server_id", "user", "category", "cause"],
    )
    .unwrap();
    reg.register(Box::new(c.clone())).unwrap();
    for i in 0..n {
        let (l, v) = series(i);
        c.with_label_values(&[&l[0], &l[1], &l[2], &l[3]]).inc_by(v);
    }
    reg
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    server_id: String,
    user: String,
    category: String,
    cause: String,
}

/// A `prometheus-client` registry with the same series.
fn prometheus_client_with(n: usize) -> prometheus_client::registry::Registry {
    use prometheus_client::metrics::{counter::Counter, family::Family};
    let mut reg = prometheus_client::registry::Registry::default();
    let fam = Family::<ErrorLabels, Counter>::default();
    reg.register(
        "aws_transfer_errors",
        "Classified server failures.",
        fam.clone(),
    );
    for i in 0..n {
        let ([server_id, user, category, cause], v) = series(i);
        fam.get_or_create(&ErrorLabels {
            server_id,
            user,
            category,
            cause,
        })
        .inc_by(v);
    }
    reg
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("render");
    g.sample_size(10);
    for n in [10_000usize, 100_000] {
        g.throughput(Throughput::Elements(n as u64));

        let m = metrics_with(n);
        let text = m.snapshot().text();
        eprintln!("render/{n}: exposition is {} bytes", text.len());
        g.bench_function(format!("{n}/direct"), |b| {
            b.iter(|| black_box(m.copy_values().finish().text()))
        });
        g.bench_function(format!("{n}/direct_openmetrics"), |b| {
            b.iter(|| {
                black_box(aws_transfer_exporter::web::encode::openmetrics_snapshot(
                    &m.snapshot(),
                ))
            })
        });
        g.bench_function(format!("{n}/copy_only"), |b| {
            b.iter(|| black_box(m.copy_values()))
        });
        drop(m);

        let reg = prometheus_with(n);
        g.bench_function(format!("{n}/prometheus_gather_encode"), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(text.len());
                TextEncoder::new().encode(&reg.gather(), &mut out).unwrap();
                black_box(out)
            })
        });
        drop(reg);

        let reg = prometheus_client_with(n);
        g.bench_function(format!("{n}/prometheus_client"), |b| {
            b.iter(|| {
                let mut out = String::with_capacity(text.len());
                prometheus_client::encoding::text::encode(&mut out, &reg).unwrap();
                black_box(out)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
