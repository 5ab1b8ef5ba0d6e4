//! Throughput of the pure core: parse + attribute + classify + count over a
//! realistic mixed corpus, beside bare `serde_json` parsing of the same
//! messages into a `Value` as the reference. One core (the pipeline is
//! single-threaded). Figures go in BENCHMARKS.md.
//!
//! `ingest_submit` is the same corpus through the ingest boundary (the
//! pipeline plus what the daemon keeps beside it: the lock, the recent
//! failures ring, the per-cause summary of the landing page), in batches of
//! a FilterLogEvents page, so its cost over the bare pipeline shows.
//!
//!     cargo bench --bench pipeline
//!
//! Also in the group, to see where the time goes: parsing alone, through
//! the scanner with its `serde_json` fallback (what the pipeline runs) and
//! through the typed `serde_json` visitor alone (the parser before the
//! scanner).

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prometheus::Registry;

use aws_transfer_exporter::corpus;
use aws_transfer_exporter::ingest::Ingest;
use aws_transfer_exporter::metrics::{Limits, Metrics};
use aws_transfer_exporter::parse;
use aws_transfer_exporter::pipeline::{Pipeline, PipelineConfig};

const EVENTS: usize = 100_000;

fn bench(c: &mut Criterion) {
    let events = corpus::mixed(EVENTS, 42);
    let bytes: usize = events.iter().map(|e| e.message.len()).sum();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(20);

    // One pipeline across iterations, as in the daemon: label series and
    // handles exist after the first pass (the steady state).
    let reg = Registry::new();
    let mut p = Pipeline::new(
        Arc::new(Metrics::new(&reg, Limits::default())),
        PipelineConfig::default(),
    );
    g.bench_function("parse_attribute_classify_count", |b| {
        b.iter(|| {
            for e in &events {
                black_box(p.process(e));
            }
        })
    });
    let ingest = Ingest::new(
        Arc::new(Metrics::new(&Registry::new(), Limits::default())),
        PipelineConfig::default(),
    );
    g.bench_function("ingest_submit", |b| {
        b.iter(|| {
            for batch in events.chunks(1_000) {
                ingest.submit(black_box(batch));
            }
        })
    });
    g.bench_function("serde_json_value_only", |b| {
        b.iter(|| {
            for e in &events {
                black_box(serde_json::from_str::<serde_json::Value>(&e.message).ok());
            }
        })
    });
    g.bench_function("parse_only", |b| {
        b.iter(|| {
            for e in &events {
                black_box(parse::parse(&e.message).ok());
            }
        })
    });
    g.bench_function("parse_only_serde_typed", |b| {
        b.iter(|| {
            for e in &events {
                let m = e.message.trim();
                black_box(if m.starts_with('{') {
                    parse::json::parse_with_serde_only(m).ok()
                } else {
                    parse::parse(m).ok()
                });
            }
        })
    });
    g.finish();
    eprintln!(
        "corpus: {EVENTS} events, {bytes} message bytes ({} bytes/event)",
        bytes / EVENTS
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
