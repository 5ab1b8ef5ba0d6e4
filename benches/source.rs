//! Events per second through the full source path — FilterLogEvents pages
//! from an in-process page source implementing `LogsApi` (moto replaced, so
//! the exporter's own work is measured) → token bucket → window/dedup
//! bookkeeping → pipeline (parse, attribute, classify, count).
//!
//! Two cases per window of 100,000 realistic events (the mixed corpus),
//! pages of 10,000:
//! * `first_read`: every event is new and goes through the pipeline;
//! * `reread_duplicates`: the next poll returns the same events again; all
//!   are skipped by id (the cost of each re-read: polls' overlap, sweeps).
//!
//!     cargo bench --bench source

use std::hint::black_box;
use std::sync::{Arc, Mutex};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use prometheus::Registry;
use tokio_util::sync::CancellationToken;

use aws_transfer_exporter::aws::{Api, Caller, TokenBucket};
use aws_transfer_exporter::corpus;
use aws_transfer_exporter::ingest::Ingest;
use aws_transfer_exporter::metrics::{Limits, Metrics};
use aws_transfer_exporter::pipeline::PipelineConfig;
use aws_transfer_exporter::source::checkpoint::{GroupProgress, Timing};
use aws_transfer_exporter::source::cloudwatch::{
    ApiError, BoxFuture, GroupsPage, LogEvent, LogsApi, Page,
};
use aws_transfer_exporter::source::poller::{poll_group, PollCtx};

const EVENTS: usize = 100_000;
const PAGE: i32 = 10_000;
const GROUP: &str = "/aws/transfer/s-0123456789abcdef0";

/// An in-process FilterLogEvents: events of one group, paged by offset.
struct MemLogs {
    events: Vec<LogEvent>,
}

impl LogsApi for MemLogs {
    fn filter_page<'a>(
        &'a self,
        _group: &'a str,
        start_ms: i64,
        end_ms: i64,
        next_token: Option<String>,
        limit: i32,
    ) -> BoxFuture<'a, Result<Page, ApiError>> {
        Box::pin(async move {
            let from: usize = next_token.and_then(|t| t.parse().ok()).unwrap_or(0);
            let to = (from + limit as usize).min(self.events.len());
            let events = self.events[from..to]
                .iter()
                .filter(|e| e.timestamp_ms >= start_ms && e.timestamp_ms <= end_ms)
                .cloned()
                .collect();
            Ok(Page {
                events,
                next_token: (to < self.events.len()).then(|| to.to_string()),
            })
        })
    }

    fn describe_groups_page<'a>(
        &'a self,
        _prefix: &'a str,
        _next_token: Option<String>,
    ) -> BoxFuture<'a, Result<GroupsPage, ApiError>> {
        Box::pin(async { Ok(GroupsPage::default()) })
    }
}

fn bench(c: &mut Criterion) {
    let now = aws_transfer_exporter::source::poller::now_ms();
    let api = MemLogs {
        events: corpus::mixed(EVENTS, 7)
            .into_iter()
            .enumerate()
            .map(|(i, e)| LogEvent {
                // 56-digit ids, as AWS sends them
                event_id: format!("{:056}", 10_000_000_000u64 + i as u64),
                log_stream: e.log_stream,
                timestamp_ms: now - 300_000 + (i as i64 % 300_000),
                ingestion_time_ms: Some(now - 299_500 + (i as i64 % 300_000)),
                message: e.message,
            })
            .collect(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reg = Registry::new();
    let metrics = Arc::new(Metrics::new(&reg, Limits::default()));
    let ingest = Ingest::new(metrics.clone(), PipelineConfig::default());
    // The budget is not what is measured.
    let calls = Caller::new(
        "bench",
        Api::Logs,
        Arc::new(TokenBucket::new(1e9)),
        metrics.clone(),
    );
    let cancel = CancellationToken::new();
    let ctx = PollCtx {
        api: &api,
        calls: &calls,
        metrics: &metrics,
        ingest: &ingest,
        cancel: &cancel,
        page_limit: PAGE,
        // Every poll re-reads the whole hour (the overlap floor is the
        // window), so `reread_duplicates` measures the cost of a re-read;
        // no sweep falls due within the run.
        timing: Timing {
            late_window_ms: 3_600_000,
            overlap_floor_ms: 3_600_000,
            sweep_interval_ms: 3_600_000,
            sweep_reach_ms: 2 * 3_600_000,
        },
        clock: &aws_transfer_exporter::source::poller::now_ms,
    };

    let mut g = c.benchmark_group("source");
    g.throughput(Throughput::Elements(EVENTS as u64));
    g.sample_size(10);
    g.bench_function("first_read", |b| {
        b.iter_batched(
            || Arc::new(Mutex::new(GroupProgress::new(now, 3_600_000))),
            |progress| {
                let s = rt.block_on(poll_group(&ctx, GROUP, &progress)).unwrap();
                assert_eq!(s.new, EVENTS as u64);
                black_box(s)
            },
            BatchSize::PerIteration,
        )
    });
    let warmed = Arc::new(Mutex::new(GroupProgress::new(now, 3_600_000)));
    rt.block_on(poll_group(&ctx, GROUP, &warmed)).unwrap();
    g.bench_function("reread_duplicates", |b| {
        b.iter(|| {
            let s = rt.block_on(poll_group(&ctx, GROUP, &warmed)).unwrap();
            assert_eq!(s.duplicate, EVENTS as u64);
            black_box(s)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
