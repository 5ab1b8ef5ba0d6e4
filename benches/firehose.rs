//! Throughput of the Firehose receiver per event — gzip body → JSON →
//! base64 → gunzip record → subscription JSON → dedup → pipeline — beside
//! the bare pipeline on the same events in the same order, in the same run.
//!
//!     cargo bench --bench firehose
//!
//! Three measurements over one corpus (`corpus::mixed`, 100,000 events):
//!
//! - `bare_pipeline`: `Pipeline::process` on every event (the reference).
//! - `receiver_process`: `Receiver::process` on every request body: the
//!   work of `POST /firehose` after the socket, on the calling thread.
//! - `receiver_http`: the same requests through the real listener
//!   (`firehose::serve` on 127.0.0.1, hyper, the blocking-thread hand-off)
//!   from one keep-alive client connection, one request at a time. It adds
//!   the socket, HTTP parsing and thread hand-offs; requests are sequential
//!   so at most about one core is busy at any time.
//!
//! Requests are built once, before measuring, shaped like CloudWatch Logs →
//! Firehose traffic:
//! - Event ids are 56-digit strings as on AWS.
//! - CloudWatch Logs delivers what arrived in a short window as one
//!   subscription message per (log group, log stream): the corpus is cut
//!   into windows of [`WINDOW`] events, each window's events are grouped by
//!   (group, stream) keeping their order, and consecutive events of one
//!   (group, stream) make one message (at most [`EVENTS_PER_MESSAGE`]).
//!   The bare pipeline sees the events in that same order.
//! - Each message gzipped at the default level (as CloudWatch Logs does),
//!   base64 in the request, requests of about 1 MiB of records, the body
//!   gzipped (`Content-Encoding: gzip`).
//!
//! Every receiver measurement uses a fresh receiver per iteration (set up
//! outside the timing) so its dedup memories start empty and every request
//! id and event id is new, as in production; the pipeline behind it is
//! shared across iterations (its label series exist: the steady state), as
//! is the bare pipeline's. Figures go in BENCHMARKS.md.
//!
//! For instruction counts (repeatable on a loaded machine), one measured pass
//! of each, after one warm-up pass, without criterion:
//!
//!     FIREHOSE_BENCH_ONCE=1 valgrind --tool=callgrind \
//!         target/release/deps/firehose-<hash> --bench
//!     callgrind_annotate --inclusive=yes callgrind.out.<pid> | grep measured_

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prometheus::Registry;
use tokio_util::sync::CancellationToken;

use aws_transfer_exporter::corpus;
use aws_transfer_exporter::event::RawEvent;
use aws_transfer_exporter::metrics::{Limits, Metrics};
use aws_transfer_exporter::pipeline::{Pipeline, PipelineConfig};
use aws_transfer_exporter::source::firehose::decode::encode;
use aws_transfer_exporter::source::firehose::{
    serve, FirehoseConfig, FirehoseMetrics, PipelineSink, Receiver,
};

const EVENTS: usize = 100_000;
/// Events that arrive together and are grouped into messages by stream.
const WINDOW: usize = 10_000;
/// At most this many events per subscription message.
const EVENTS_PER_MESSAGE: usize = 100;
/// Base64 record data per request.
const REQUEST_BYTES: usize = 1024 * 1024;

/// The corpus in delivery order, with AWS-shaped event ids.
fn delivery_order(mut events: Vec<RawEvent>) -> Vec<RawEvent> {
    for (i, e) in events.iter_mut().enumerate() {
        e.event_id = format!("{:056}", 37_000_000_000_000_000u64 + i as u64);
    }
    for w in events.chunks_mut(WINDOW) {
        // A stable sort keeps each stream's events in their order.
        w.sort_by(|a, b| (&a.log_group, &a.log_stream).cmp(&(&b.log_group, &b.log_stream)));
    }
    events
}

/// The events as gzipped Firehose request bodies.
fn requests(events: &[RawEvent]) -> (Vec<Vec<u8>>, usize) {
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
        records.push(encode::base64(&encode::gzip(msg.as_bytes())));
    }
    let n_records = records.len();
    let mut bodies = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut size = 0;
    let flush = |cur: &mut Vec<String>, bodies: &mut Vec<Vec<u8>>| {
        let id = format!("bench-{}", bodies.len());
        let json = encode::request_body(&id, 1_764_000_000_000, cur);
        bodies.push(encode::gzip(json.as_bytes()));
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
    (bodies, n_records)
}

fn receiver(sink: &Arc<PipelineSink>) -> Receiver {
    let mut cfg = FirehoseConfig::new("127.0.0.1:0".parse().expect("address"));
    cfg.allow_unauthenticated = true;
    Receiver::new(cfg, sink.clone(), FirehoseMetrics::new(&Registry::new())).expect("receiver")
}

/// A receiver served on 127.0.0.1 and one keep-alive connection to it;
/// the listener stops when this is dropped.
struct Served {
    conn: BufReader<TcpStream>,
    cancel: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn served(rt: &tokio::runtime::Runtime, sink: &Arc<PipelineSink>) -> Served {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let cancel = CancellationToken::new();
    rt.spawn(serve(listener, receiver(sink), cancel.clone()));
    let conn = TcpStream::connect(addr).expect("connect");
    conn.set_nodelay(true).expect("nodelay");
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    Served {
        conn: BufReader::new(conn),
        cancel,
    }
}

/// One request with Firehose's headers; returns the status. Reads the
/// whole answer so the connection can carry the next request.
fn post(conn: &mut BufReader<TcpStream>, id: &str, body: &[u8]) -> u16 {
    let head = format!(
        "POST /firehose HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nX-Amz-Firehose-Protocol-Version: 1.0\r\nX-Amz-Firehose-Request-Id: {id}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let s = conn.get_mut();
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut line = String::new();
    conn.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        conn.read_line(&mut line).expect("header");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut rest = vec![0; len];
    conn.read_exact(&mut rest).expect("body");
    status
}

fn pipeline() -> Pipeline {
    Pipeline::new(
        Arc::new(Metrics::new(&Registry::new(), Limits::default())),
        PipelineConfig::default(),
    )
}

/// One pass of the bare pipeline over the events.
fn bare_pass(p: &mut Pipeline, events: &[RawEvent]) {
    for e in events {
        black_box(p.process(e));
    }
}

/// One pass of a fresh receiver over the request bodies.
fn receiver_pass(sink: &Arc<PipelineSink>, bodies: &[Vec<u8>]) -> u64 {
    let rx = receiver(sink);
    let mut counted = 0;
    for body in bodies {
        counted += rx.process(true, body, "bench").expect("accepted").events;
    }
    counted
}

#[inline(never)]
fn measured_bare(p: &mut Pipeline, events: &[RawEvent]) {
    bare_pass(p, events)
}

#[inline(never)]
fn measured_receiver(sink: &Arc<PipelineSink>, bodies: &[Vec<u8>]) -> u64 {
    receiver_pass(sink, bodies)
}

/// `FIREHOSE_BENCH_ONCE`: a warm-up and one measured pass of each (for
/// callgrind), checking that the receiver counted every event.
fn once(events: &[RawEvent], bodies: &[Vec<u8>]) {
    let mut p = pipeline();
    bare_pass(&mut p, events);
    measured_bare(&mut p, events);
    let sink = Arc::new(PipelineSink(Arc::new(Mutex::new(pipeline()))));
    assert_eq!(receiver_pass(&sink, bodies), EVENTS as u64);
    assert_eq!(measured_receiver(&sink, bodies), EVENTS as u64);
}

fn bench(c: &mut Criterion) {
    let events = delivery_order(corpus::mixed(EVENTS, 42));
    let (bodies, n_records) = requests(&events);
    if std::env::var_os("FIREHOSE_BENCH_ONCE").is_some() {
        once(&events, &bodies);
        return;
    }
    let wire: usize = bodies.iter().map(Vec::len).sum();
    let mut g = c.benchmark_group("firehose");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(20);

    // Bare pipeline: the reference, as in benches/pipeline.rs.
    let mut p = pipeline();
    g.bench_function("bare_pipeline", |b| {
        b.iter(|| {
            for e in &events {
                black_box(p.process(e));
            }
        })
    });

    let sink = Arc::new(PipelineSink(Arc::new(Mutex::new(pipeline()))));
    g.bench_function("receiver_process", |b| {
        b.iter_batched(
            || receiver(&sink),
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

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let http_sink = Arc::new(PipelineSink(Arc::new(Mutex::new(pipeline()))));
    g.bench_function("receiver_http", |b| {
        b.iter_batched(
            || served(&rt, &http_sink),
            |mut s| {
                for (i, body) in bodies.iter().enumerate() {
                    let status = post(&mut s.conn, &format!("bench-{i}"), body);
                    assert_eq!(status, 200);
                }
                s
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    rt.shutdown_timeout(Duration::from_secs(5));
    eprintln!(
        "corpus: {EVENTS} events in {n_records} records ({:.1} events/record), {} requests, {wire} bytes on the wire ({} bytes/event)",
        EVENTS as f64 / n_records as f64,
        bodies.len(),
        wire / EVENTS
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
