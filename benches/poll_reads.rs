//! FilterLogEvents calls per log group per minute, before and after the
//! overlap-and-sweep read pattern, side by side in one run.
//!
//! The real poller (`source::poller::poll_group`: window, pages, dedup,
//! sweep, ingest and pipeline) runs against an in-process `LogsApi` that
//! follows AWS's page rules: events in timestamp order, visible only from
//! their `ingestionTime` on, a page ends at `limit` (10,000) events or
//! before it would pass 1 MB (message bytes + 26 per event, as CloudWatch
//! sizes events). moto cannot be used here: it does not model page sizes.
//! The clock is simulated, so an hour of traffic runs in seconds; the poll
//! interval is the default 10 s.
//!
//! * before: what the exporter did until now: every poll reads the whole
//!   late-arrival window (overlap floor = window), and every event is read
//!   once more by the audit, a window at a time, three windows behind (here:
//!   a sweep every window reaching back five).
//! * after: the defaults (overlap from the delay estimate, floor 2 s; a
//!   sweep every minute reaching back the window plus a minute).
//!
//! Delays (`ingestionTime - timestamp`): 98.9% uniform 0.2–2 s, 1% 5–30 s,
//! 0.1% 2–4 min. Messages are ~400 bytes.
//!
//!     cargo bench --bench poll_reads

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

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
use aws_transfer_exporter::source::{
    DEFAULT_INITIAL_LOOKBACK, DEFAULT_LATE_ARRIVAL_WINDOW, DEFAULT_OVERLAP_FLOOR,
    DEFAULT_PAGE_LIMIT, DEFAULT_POLL_INTERVAL, DEFAULT_SWEEP_INTERVAL,
};

const GROUP: &str = "/aws/transfer/s-0123456789abcdef0";
/// FilterLogEvents' response limit.
const PAGE_BYTES: usize = 1_048_576;
/// CloudWatch's per-event overhead in its size accounting.
const EVENT_OVERHEAD: usize = 26;
const MESSAGE_BYTES: usize = 400;
const START_MS: i64 = 1_800_000_000_000;
/// Simulated run: warm-up (the initial lookback read, the first sweeps of
/// the slower "before" audit), then the measured stretch.
const WARMUP_MIN: i64 = 30;
const MEASURE_MIN: i64 = 30;

struct Ev {
    ts: i64,
    ingested: i64,
    msg: usize,
}

/// One group's events and the page rules.
struct SimLogs {
    events: Vec<Ev>,
    messages: Vec<String>,
    now: Arc<AtomicI64>,
}

impl LogsApi for SimLogs {
    fn filter_page<'a>(
        &'a self,
        _group: &'a str,
        start_ms: i64,
        end_ms: i64,
        next_token: Option<String>,
        limit: i32,
    ) -> BoxFuture<'a, Result<Page, ApiError>> {
        Box::pin(async move {
            let now = self.now.load(Ordering::Relaxed);
            let mut i = match next_token {
                Some(t) => t.parse().unwrap_or(self.events.len()),
                None => self.events.partition_point(|e| e.ts < start_ms),
            };
            let mut out = Vec::new();
            let mut bytes = 0;
            while i < self.events.len() && self.events[i].ts <= end_ms {
                let e = &self.events[i];
                if e.ingested <= now {
                    let msg = &self.messages[e.msg];
                    let size = msg.len() + EVENT_OVERHEAD;
                    if out.len() == limit as usize || bytes + size > PAGE_BYTES {
                        break;
                    }
                    bytes += size;
                    out.push(LogEvent {
                        event_id: format!("{:056}", i),
                        log_stream: "s".into(),
                        timestamp_ms: e.ts,
                        ingestion_time_ms: Some(e.ingested),
                        message: msg.clone(),
                    });
                }
                i += 1;
            }
            let more = i < self.events.len() && self.events[i].ts <= end_ms;
            Ok(Page {
                events: out,
                next_token: more.then(|| i.to_string()),
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

/// A small deterministic generator (xorshift).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

fn events(rate: u32) -> Vec<Ev> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ rate as u64);
    let from = START_MS - DEFAULT_INITIAL_LOOKBACK.as_millis() as i64 - 60_000;
    let to = START_MS + (WARMUP_MIN + MEASURE_MIN) * 60_000;
    let step = 1_000.0 / rate as f64;
    let mut out = Vec::new();
    let mut k = 0u64;
    loop {
        let ts = from + (k as f64 * step) as i64;
        if ts > to {
            break;
        }
        let r = rng.next() % 1000;
        let delay = match r {
            0 => rng.between(120_000, 240_000),
            1..=10 => rng.between(5_000, 30_000),
            _ => rng.between(200, 2_000),
        };
        out.push(Ev {
            ts,
            ingested: ts + delay,
            msg: (k % 1000) as usize,
        });
        k += 1;
    }
    out.sort_by_key(|e| e.ts);
    out
}

struct Outcome {
    calls_per_min: f64,
    read_per_counted: f64,
    counted: u64,
}

fn run(rate: u32, timing: Timing, messages: &[String]) -> Outcome {
    let now = Arc::new(AtomicI64::new(START_MS));
    let api = SimLogs {
        events: events(rate),
        messages: messages.to_vec(),
        now: now.clone(),
    };
    let total_events = api.events.len() as u64;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let reg = Registry::new();
    let metrics = Arc::new(Metrics::new(&reg, Limits::default()));
    let ingest = Ingest::new(metrics.clone(), PipelineConfig::default());
    let calls = Caller::new(
        "bench",
        Api::Logs,
        Arc::new(TokenBucket::new(1e9)),
        metrics.clone(),
    );
    let cancel = CancellationToken::new();
    let clock_now = now.clone();
    let clock = move || clock_now.load(Ordering::Relaxed);
    let ctx = PollCtx {
        api: &api,
        calls: &calls,
        metrics: &metrics,
        ingest: &ingest,
        cancel: &cancel,
        page_limit: DEFAULT_PAGE_LIMIT,
        timing,
        clock: &clock,
    };
    let progress = Arc::new(Mutex::new(GroupProgress::new(
        START_MS,
        DEFAULT_INITIAL_LOOKBACK.as_millis() as i64,
    )));
    let interval = DEFAULT_POLL_INTERVAL.as_millis() as i64;
    let (mut calls_at, mut read_at, mut new_at) = (0usize, 0u64, 0u64);
    let (mut api_calls, mut read, mut new) = (0usize, 0u64, 0u64);
    let mut t = START_MS;
    while t < START_MS + (WARMUP_MIN + MEASURE_MIN) * 60_000 {
        if t == START_MS + WARMUP_MIN * 60_000 {
            (calls_at, read_at, new_at) = (api_calls, read, new);
        }
        now.store(t, Ordering::Relaxed);
        let s = rt.block_on(poll_group(&ctx, GROUP, &progress)).unwrap();
        api_calls += s.api_calls;
        read += s.read;
        new += s.new;
        t += interval;
    }
    assert!(new <= total_events, "counted more events than exist");
    Outcome {
        calls_per_min: (api_calls - calls_at) as f64 / MEASURE_MIN as f64,
        read_per_counted: (read - read_at) as f64 / (new - new_at).max(1) as f64,
        counted: new - new_at,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let messages: Vec<String> = corpus::mixed(1000, 11)
        .into_iter()
        .map(|e| {
            let mut m = e.message;
            m.truncate(MESSAGE_BYTES);
            while m.len() < MESSAGE_BYTES {
                m.push(' '); // JSON allows trailing whitespace
            }
            m
        })
        .collect();
    let w = DEFAULT_LATE_ARRIVAL_WINDOW.as_millis() as i64;
    let before = Timing {
        late_window_ms: w,
        overlap_floor_ms: w,
        sweep_interval_ms: w,
        sweep_reach_ms: 5 * w,
    };
    let p = DEFAULT_SWEEP_INTERVAL.as_millis() as i64;
    let after = Timing {
        late_window_ms: w,
        overlap_floor_ms: DEFAULT_OVERLAP_FLOOR.as_millis() as i64,
        sweep_interval_ms: p,
        sweep_reach_ms: w + p,
    };
    let polls_per_min = 60_000 / DEFAULT_POLL_INTERVAL.as_millis() as u64;
    println!(
        "poll interval {:?}, window {:?}, measured {MEASURE_MIN} simulated min after {WARMUP_MIN} of warm-up",
        DEFAULT_POLL_INTERVAL, DEFAULT_LATE_ARRIVAL_WINDOW
    );
    println!(
        "{:>7} | {:>9} | {:>13} {:>7} {:>10} | {:>13} {:>7} {:>10} | {:>9}",
        "ev/s",
        "min calls",
        "before calls",
        "x min",
        "read/count",
        "after calls",
        "x min",
        "read/count",
        "before/after"
    );
    for rate in [1u32, 20, 50, 100] {
        // The least: one read of each new event, every poll: one call per
        // poll, more when a poll's new events pass 1 MB.
        let per_poll_bytes = rate as u64
            * (DEFAULT_POLL_INTERVAL.as_secs())
            * (MESSAGE_BYTES + EVENT_OVERHEAD) as u64;
        let min = (polls_per_min * per_poll_bytes.div_ceil(PAGE_BYTES as u64).max(1)) as f64;
        let b = run(rate, before, &messages);
        let a = run(rate, after, &messages);
        assert!(a.counted > 0 && b.counted > 0);
        println!(
            "{:>7} | {:>9.1} | {:>13.1} {:>7.2} {:>10.2} | {:>13.1} {:>7.2} {:>10.2} | {:>9.2}",
            rate,
            min,
            b.calls_per_min,
            b.calls_per_min / min,
            b.read_per_counted,
            a.calls_per_min,
            a.calls_per_min / min,
            a.read_per_counted,
            b.calls_per_min / a.calls_per_min
        );
    }
}
