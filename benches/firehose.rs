//! Throughput of the Firehose receiver's work per event — gzip body →
//! JSON → base64 → gunzip record → subscription JSON → dedup → pipeline —
//! beside the bare pipeline on the same events, in the same run. One core
//! (the receiver processes a request on one blocking thread). The socket
//! and hyper are left out: they cost per request, not per event, and a
//! request carries thousands of events.
//!
//! Requests are shaped like CloudWatch Logs → Firehose traffic: one
//! subscription message per (group, stream) batch of up to 50 events,
//! each gzipped (default level, as CloudWatch does), base64 in the request,
//! requests of about 1 MiB, the body gzipped (`Content-Encoding: gzip`).
//!
//!     cargo bench --bench firehose
//!
//! Figures go in docs/bench-firehose.md.

use std::hint::black_box;
use std::io::Write;
use std::sync::{Arc, Mutex};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flate2::write::GzEncoder;
use flate2::Compression;
use prometheus::Registry;

use aws_transfer_exporter::corpus;
use aws_transfer_exporter::event::RawEvent;
use aws_transfer_exporter::metrics::{Limits, Metrics};
use aws_transfer_exporter::pipeline::{Pipeline, PipelineConfig};
use aws_transfer_exporter::source::firehose::decode::encode;
use aws_transfer_exporter::source::firehose::{
    FirehoseConfig, FirehoseMetrics, PipelineSink, Receiver,
};

const EVENTS: usize = 100_000;
const EVENTS_PER_MESSAGE: usize = 50;
const REQUEST_BYTES: usize = 1024 * 1024;

fn gzip_default(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// The corpus as gzipped Firehose request bodies.
fn requests(events: &[RawEvent]) -> Vec<Vec<u8>> {
    // Consecutive events of one (group, stream) make one subscription message.
    let mut records: Vec<String> = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let (g, s) = (&events[i].log_group, &events[i].log_stream);
        let mut batch = Vec::new();
        while i < events.len()
            && batch.len() < EVENTS_PER_MESSAGE
            && &events[i].log_group == g
            && &events[i].log_stream == s
        {
            let e = &events[i];
            batch.push((e.event_id.clone(), e.timestamp_ms, e.message.clone()));
            i += 1;
        }
        let msg = encode::data_message(g, s, &batch);
        records.push(encode::base64(&gzip_default(msg.as_bytes())));
    }
    let mut bodies = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut size = 0;
    let flush = |cur: &mut Vec<String>, bodies: &mut Vec<Vec<u8>>| {
        let id = format!("bench-{}", bodies.len());
        let json = encode::request_body(&id, 1_764_000_000_000, cur);
        bodies.push(gzip_default(json.as_bytes()));
        cur.clear();
    };
    for r in records {
        if size + r.len() > REQUEST_BYTES && !cur.is_empty() {
            flush(&mut cur, &mut bodies);
            size = 0;
        }
        size += r.len();
        cur.push(r);
    }
    if !cur.is_empty() {
        flush(&mut cur, &mut bodies);
    }
    bodies
}

fn bench(c: &mut Criterion) {
    let events = corpus::mixed(EVENTS, 42);
    let bodies = requests(&events);
    let wire: usize = bodies.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("firehose");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(20);

    // Bare pipeline: the reference, as in benches/pipeline.rs.
    let reg = Registry::new();
    let mut p = Pipeline::new(
        Arc::new(Metrics::new(&reg, Limits::default())),
        PipelineConfig::default(),
    );
    g.bench_function("bare_pipeline", |b| {
        b.iter(|| {
            for e in &events {
                black_box(p.process(e));
            }
        })
    });

    // The receiver: one pipeline across iterations (steady state), a fresh
    // receiver per iteration so the dedup memories start empty (every
    // request id and event id is new, as in production).
    let reg = Registry::new();
    let pipeline = Arc::new(Mutex::new(Pipeline::new(
        Arc::new(Metrics::new(&reg, Limits::default())),
        PipelineConfig::default(),
    )));
    let sink = Arc::new(PipelineSink(pipeline));
    let addr = "127.0.0.1:0".parse().expect("address");
    g.bench_function("receiver_process", |b| {
        b.iter_batched(
            || {
                let mut cfg = FirehoseConfig::new(addr);
                cfg.allow_unauthenticated = true;
                Receiver::new(cfg, sink.clone(), FirehoseMetrics::new(&Registry::new()))
                    .expect("receiver")
            },
            |rx| {
                for body in &bodies {
                    let ack = rx.process(true, body, "bench").expect("accepted");
                    black_box(ack);
                }
                rx
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    eprintln!(
        "corpus: {EVENTS} events in {} requests, {wire} bytes on the wire ({} bytes/event)",
        bodies.len(),
        wire / EVENTS
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
