//! One poll of one log group: read the poll window page by page (following
//! `nextToken` until it is absent; pages may be empty while a token
//! remains), skip ids already handled, feed the rest to the pipeline, then
//! move the checkpoint; then, when one is due, the sweep of a stretch whose
//! late-arrival window has closed (see [`super::checkpoint`] for the rules).

use std::sync::{Arc, Mutex};

use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::checkpoint::{Admit, GroupProgress, ReadKind, Timing, Window};
use super::cloudwatch::{LogsApi, OP_FILTER};
use super::ratelimit::{CallError, Caller};
use crate::event::RawEvent;
use crate::ingest::Ingest;
use crate::metrics::Metrics;

/// Pages followed in one read before it is abandoned as runaway (its range
/// stays, so nothing is lost). At the default page limit that is ten million
/// events in one range.
pub const MAX_PAGES_PER_POLL: usize = 1000;

pub use crate::clock::now_ms;

/// What one poll of one group needs.
pub struct PollCtx<'a> {
    pub api: &'a dyn LogsApi,
    /// The target's counted calls to CloudWatch Logs (budget, retries, health).
    pub calls: &'a Caller,
    pub metrics: &'a Metrics,
    pub ingest: &'a Ingest,
    pub cancel: &'a CancellationToken,
    pub page_limit: i32,
    /// Late-arrival window, overlap floor, sweep interval and reach.
    pub timing: Timing,
    /// The clock (Unix milliseconds): [`now_ms`] in the daemon; benchmarks
    /// pass a simulated one to run hours of traffic in seconds.
    pub clock: &'a (dyn Fn() -> i64 + Sync),
}

/// What one poll did (its sweep included).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollSummary {
    pub pages: usize,
    pub read: u64,
    pub new: u64,
    pub duplicate: u64,
    pub late: u64,
    pub api_calls: usize,
    /// A sweep ran (and completed) after the poll.
    pub swept: bool,
}

/// Polls `group` once, then sweeps if a sweep is due. On error the range
/// being read stays (the next poll reads it again; ids already handled are
/// remembered, so nothing is counted twice).
pub async fn poll_group(
    ctx: &PollCtx<'_>,
    group: &str,
    progress: &Arc<Mutex<GroupProgress>>,
) -> Result<PollSummary, CallError> {
    let started = Instant::now();
    let now = (ctx.clock)();
    let window = {
        let mut p = lock(progress);
        p.normalize(&ctx.timing);
        p.window(now, &ctx.timing)
    };
    let mut s = PollSummary::default();
    read_range(ctx, group, progress, &window, ReadKind::Poll, now, &mut s).await?;
    let newest = lock(progress).newest_event_ms;
    ctx.metrics
        .poll_duration
        .with_label_values(&[group])
        .observe(started.elapsed().as_secs_f64());
    let now_s = (ctx.clock)() as f64 / 1000.0;
    ctx.metrics
        .last_successful_poll
        .with_label_values(&[group])
        .set(now_s);
    // The lag is not set here: it is computed when scraped
    // (`Sources::refresh_scrape_time_gauges`), so it keeps growing while
    // polls fail instead of freezing at the last success.
    if let Some(n) = newest {
        ctx.metrics
            .log_group_last_event
            .with_label_values(&[group])
            .set(n as f64 / 1000.0);
    }
    // The sweep runs after a successful poll, so a failing group spends its
    // budget on catching up first.
    let now = (ctx.clock)();
    let due = lock(progress).sweep_due(now, &ctx.timing);
    if let Some(range) = due {
        read_range(ctx, group, progress, &range, ReadKind::Sweep, now, &mut s).await?;
        s.swept = true;
    }
    Ok(s)
}

/// Reads `window` (started at `read_at_ms`) page by page, counting what is
/// new, reporting what is late, and completes it in the group's progress.
async fn read_range(
    ctx: &PollCtx<'_>,
    group: &str,
    progress: &Arc<Mutex<GroupProgress>>,
    window: &Window,
    kind: ReadKind,
    read_at_ms: i64,
    s: &mut PollSummary,
) -> Result<(), CallError> {
    let late_ms = ctx.timing.late_window_ms;
    let late_after = (kind == ReadKind::Sweep).then_some(late_ms);
    let mut token: Option<String> = None;
    let read_c = ctx.metrics.events_read.with_label_values(&[group]);
    let dup_c = ctx.metrics.events_duplicate.with_label_values(&[group]);
    let delay_h = ctx.metrics.ingestion_delay.with_label_values(&[group]);
    let mut late = 0u64;
    for pages in 0.. {
        if pages >= MAX_PAGES_PER_POLL {
            return Err(CallError::Api(super::cloudwatch::ApiError::new(
                super::cloudwatch::ErrorKind::Other,
                format!("more than {MAX_PAGES_PER_POLL} pages in one range; will retry"),
            )));
        }
        let page = ctx
            .calls
            .call(OP_FILTER, ctx.cancel, || {
                ctx.api.filter_page(
                    group,
                    window.start_ms,
                    window.end_ms,
                    token.clone(),
                    ctx.page_limit,
                )
            })
            .await?;
        s.pages += 1;
        s.api_calls += 1;
        let page_len = page.events.len() as u64;
        s.read += page_len;
        if !page.events.is_empty() {
            let (dup_before, late_before) = (s.duplicate, late);
            // Admit and process under the group's lock, so a state-file
            // snapshot never records an id whose event was not yet counted.
            let mut p = lock(progress);
            let mut fresh = Vec::with_capacity(page.events.len());
            for e in page.events {
                let admit = p.admit(
                    window,
                    &e.event_id,
                    e.timestamp_ms,
                    e.ingestion_time_ms,
                    late_after,
                );
                if matches!(admit, Admit::New | Admit::Late) {
                    // Each event once, when first handled (not per read).
                    if let Some(i) = e.ingestion_time_ms {
                        delay_h.observe((i - e.timestamp_ms).max(0) as f64 / 1000.0);
                    }
                }
                match admit {
                    Admit::New => fresh.push(RawEvent {
                        log_group: group.to_owned(),
                        log_stream: e.log_stream,
                        event_id: e.event_id,
                        timestamp_ms: e.timestamp_ms,
                        message: e.message,
                    }),
                    Admit::Duplicate => s.duplicate += 1,
                    Admit::Late => late += 1,
                    Admit::OutOfWindow => {
                        tracing::debug!(log_group = group, event_id = %e.event_id, "event before the range ignored")
                    }
                }
            }
            s.new += fresh.len() as u64;
            // Counted before the checkpoint can move (and before the lock
            // is released): the ingest boundary's contract.
            ctx.ingest.submit(&fresh);
            drop(p);
            // Counted per page, together, so read = new + duplicate + late
            // (+ ignored) holds between pages too.
            read_c.inc_by(page_len);
            dup_c.inc_by(s.duplicate - dup_before);
            if late > late_before {
                ctx.metrics
                    .events_late
                    .with_label_values(&[group])
                    .inc_by(late - late_before);
            }
        }
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    lock(progress).complete(window, kind, read_at_ms, &ctx.timing);
    s.late += late;
    if late > 0 {
        tracing::warn!(
            log_group = group,
            late,
            from_ms = window.start_ms,
            to_ms = window.end_ms,
            late_arrival_window_ms = late_ms,
            "events became visible after the late-arrival window; they are not counted (raise the late-arrival window if this repeats)"
        );
    }
    Ok(())
}

/// Locks, recovering from a poisoned mutex (a panic elsewhere must not stop
/// polling; the data under these locks stays consistent between statements).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
