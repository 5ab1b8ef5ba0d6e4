//! One poll of one log group: read the window page by page (following
//! `nextToken` until it is absent; pages may be empty while a token
//! remains), skip ids already counted, feed the rest to the pipeline, then
//! move the checkpoint. And the late-event audit (see [`super::checkpoint`]).

use std::sync::{Arc, Mutex};

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::checkpoint::{Admit, AuditTally, GroupProgress, Window};
use super::cloudwatch::{LogsApi, OP_FILTER};
use super::ratelimit::{CallError, Caller};
use crate::event::RawEvent;
use crate::ingest::Ingest;
use crate::metrics::Metrics;

/// Pages followed in one poll before the poll is abandoned as runaway (the
/// checkpoint does not move, so nothing is lost). At the default page limit
/// that is ten million events in one window.
pub const MAX_PAGES_PER_POLL: usize = 1000;

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What one poll of one group needs.
pub struct PollCtx<'a> {
    pub api: &'a dyn LogsApi,
    /// The target's counted calls to CloudWatch Logs (budget, retries, health).
    pub calls: &'a Caller,
    pub metrics: &'a Metrics,
    pub ingest: &'a Ingest,
    pub cancel: &'a CancellationToken,
    pub page_limit: i32,
    pub late_window_ms: i64,
    pub audit_delay_ms: i64,
    pub audit_min_span_ms: i64,
}

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollSummary {
    pub pages: usize,
    pub read: u64,
    pub new: u64,
    pub duplicate: u64,
    pub late: u64,
    pub api_calls: usize,
}

/// Polls `group` once: one window, every page. On error the checkpoint
/// stays (the next poll reads the same window again; ids already counted
/// are remembered, so nothing is counted twice).
pub async fn poll_group(
    ctx: &PollCtx<'_>,
    group: &str,
    progress: &Arc<Mutex<GroupProgress>>,
) -> Result<PollSummary, CallError> {
    let started = Instant::now();
    let now = now_ms();
    let window = lock(progress).window(now, ctx.late_window_ms);
    let mut s = PollSummary::default();
    let mut token: Option<String> = None;
    let read_c = ctx.metrics.events_read.with_label_values(&[group]);
    let dup_c = ctx.metrics.events_duplicate.with_label_values(&[group]);
    loop {
        if s.pages >= MAX_PAGES_PER_POLL {
            return Err(CallError::Api(super::cloudwatch::ApiError::new(
                super::cloudwatch::ErrorKind::Other,
                format!("more than {MAX_PAGES_PER_POLL} pages in one window; will retry"),
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
            let dup_before = s.duplicate;
            // Admit and process under the group's lock, so a state-file
            // snapshot never records an id whose event was not yet counted.
            let mut p = lock(progress);
            let mut fresh = Vec::with_capacity(page.events.len());
            for e in page.events {
                match p.admit(&window, &e.event_id, e.timestamp_ms) {
                    Admit::New => fresh.push(RawEvent {
                        log_group: group.to_owned(),
                        log_stream: e.log_stream,
                        event_id: e.event_id,
                        timestamp_ms: e.timestamp_ms,
                        message: e.message,
                    }),
                    Admit::Duplicate => s.duplicate += 1,
                    Admit::OutOfWindow => {
                        tracing::debug!(log_group = group, event_id = %e.event_id, "event before the window ignored")
                    }
                }
            }
            s.new += fresh.len() as u64;
            // Counted before the checkpoint can move (and before the lock
            // is released): the ingest boundary's contract.
            ctx.ingest.submit(&fresh);
            drop(p);
            // Counted per page, together, so read = new + duplicate holds
            // between pages too.
            read_c.inc_by(page_len);
            dup_c.inc_by(s.duplicate - dup_before);
        }
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let newest = {
        let mut p = lock(progress);
        p.complete(&window, ctx.late_window_ms);
        p.newest_event_ms
    };
    ctx.metrics
        .poll_duration
        .with_label_values(&[group])
        .observe(started.elapsed().as_secs_f64());
    let now_s = now_ms() as f64 / 1000.0;
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
    // The audit runs after a successful poll, so its counts compare with a
    // window that is complete.
    s.late = audit_group(ctx, group, progress, &mut s.api_calls).await?;
    Ok(s)
}

/// Re-reads the slices that have left the window, if an audit is due, and
/// counts what it finds beyond what was counted as late. Returns that number.
async fn audit_group(
    ctx: &PollCtx<'_>,
    group: &str,
    progress: &Arc<Mutex<GroupProgress>>,
    api_calls: &mut usize,
) -> Result<u64, CallError> {
    let range: Window = match lock(progress).audit_due(
        ctx.late_window_ms,
        ctx.audit_delay_ms,
        ctx.audit_min_span_ms,
    ) {
        Some(r) => r,
        None => return Ok(0),
    };
    let mut tally = AuditTally::default();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES_PER_POLL {
        let page = ctx
            .calls
            .call(OP_FILTER, ctx.cancel, || {
                ctx.api.filter_page(
                    group,
                    range.start_ms,
                    range.end_ms,
                    token.clone(),
                    ctx.page_limit,
                )
            })
            .await?;
        *api_calls += 1;
        for e in &page.events {
            tally.add(&e.event_id, e.timestamp_ms);
        }
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    let late = lock(progress).audit_done(&range, &tally.per_slice);
    if late > 0 {
        ctx.metrics
            .events_late
            .with_label_values(&[group])
            .inc_by(late);
        tracing::warn!(
            log_group = group,
            late,
            from_ms = range.start_ms,
            to_ms = range.end_ms,
            "events became visible after the late-arrival window; they are not counted (raise the late-arrival window if this repeats)"
        );
    }
    Ok(late)
}

/// Locks, recovering from a poisoned mutex (a panic elsewhere must not stop
/// polling; the data under these locks stays consistent between statements).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
