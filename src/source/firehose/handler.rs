//! `POST /firehose`, in this order (each step can end the request):
//!
//! 1. **auth**: missing or wrong key → 401, same body; nothing read or counted.
//! 2. **overload / shutdown** before reading: 503 (no memory spent).
//! 3. **size cap**: `Content-Length` over the cap, or a body that turns out
//!    longer while streaming → 413. The only source of 413.
//! 4. **decode the whole request** (body gzip per `Content-Encoding`, then
//!    every record) on a blocking thread: a body that is not a delivery
//!    request → 400; bad records are set aside as undecodable.
//! 5. **shutdown check** again: 503 if the receiver started draining while
//!    the body was arriving; nothing has been counted yet.
//! 6. **dedup**: a known request id → 200 without counting; one in flight →
//!    503; events whose (group, id) was counted before are dropped.
//! 7. **submit** every new event of the request in one call, then count the
//!    receiver's own metrics and answer 200 — only after submit returned.
//!
//! Steps 5–7 run without an await point, so a dropped connection cannot
//! leave a request half counted.

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};

use super::decode::{self, Record, Scratch, Undecodable};
use super::dedup::Seen;
use super::errors::Reject;
use super::models::{headers, FirehoseRequest, FirehoseResponse, MAX_ERROR_MESSAGE_CHARS};
use super::{now_ms, Receiver, BODY_READ_TIMEOUT, HEALTH_PATH, PUSH_PATH};
use crate::event::RawEvent;

/// What a request turned into when it was acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ack {
    pub request_id: String,
    /// Events handed to the sink by this request.
    pub events: u64,
    /// True when the request id had been acknowledged before.
    pub duplicate_request: bool,
    pub records_data: u64,
    pub records_control: u64,
    pub records_undecodable: u64,
    pub records_duplicate: u64,
    pub records_empty: u64,
    pub events_duplicate: u64,
}

/// Removes the in-flight mark of a request id unless the request finished.
struct InFlightGuard<'a> {
    rx: &'a Receiver,
    id: Option<&'a str>,
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.rx.inner.lock_requests().abandon(id);
        }
    }
}

fn status_of_reject(r: Reject, request_id: &str) -> Response<Full<Bytes>> {
    let mut msg = r.message().to_owned();
    msg.truncate(MAX_ERROR_MESSAGE_CHARS);
    json_response(
        r.status(),
        &FirehoseResponse {
            request_id: request_id.to_owned(),
            timestamp: now_ms(),
            error_message: Some(msg),
        },
    )
}

/// Firehose's answer rules: JSON content type, a length, no encoding.
fn json_response(status: StatusCode, body: &FirehoseResponse) -> Response<Full<Bytes>> {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec()));
    let len = bytes.len();
    let mut resp = Response::new(Full::new(bytes));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The request id header, if it is printable and not absurdly long (it is
/// echoed in error answers before the body is read).
fn header_request_id(req: &Request<Incoming>) -> String {
    req.headers()
        .get(headers::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| s.len() <= 256)
        .unwrap_or("")
        .to_owned()
}

impl Receiver {
    /// Routes one request of the push listener: `POST /firehose`,
    /// `GET /-/healthy`; anything else is 404/405 and not counted.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        if path == HEALTH_PATH {
            return if req.method() == Method::GET || req.method() == Method::HEAD {
                text(StatusCode::OK, "Healthy\n")
            } else {
                text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n")
            };
        }
        if path != PUSH_PATH {
            return status_of_reject(Reject::NotFound, "");
        }
        if req.method() != Method::POST {
            return status_of_reject(Reject::MethodNotAllowed, "");
        }
        let start = Instant::now();
        let header_id = header_request_id(&req);
        let mut result = self.push(req).await;
        if let (Ok(ack), Some(persist)) = (&result, self.inner.persist.get()) {
            // Acknowledge after persisting: once Firehose has its 200 it
            // never resends, so the counts must already survive a crash.
            if let Err(err) = persist.durable().await {
                tracing::warn!(error = %format!("{err:#}"), "Firehose request counted but the state could not be saved; answering 503 so that it is retried (the retry is recognized by its request id)");
                result = Err((Reject::StateNotSaved, Some(ack.request_id.clone())));
            }
        }
        let resp = match result {
            Ok(ack) => {
                self.inner.metrics.requests.with_label_values(&["ok"]).inc();
                json_response(
                    StatusCode::OK,
                    &FirehoseResponse {
                        request_id: ack.request_id,
                        timestamp: now_ms(),
                        error_message: None,
                    },
                )
            }
            Err((reject, body_id)) => {
                self.inner
                    .metrics
                    .requests
                    .with_label_values(&[reject.outcome()])
                    .inc();
                self.inner.note_error(reject.message());
                let id = body_id.unwrap_or(header_id);
                status_of_reject(reject, &id)
            }
        };
        self.inner
            .metrics
            .duration
            .observe(start.elapsed().as_secs_f64());
        self.inner.note_request();
        resp
    }

    /// Steps 1–7. The error carries the body's request id when it was read.
    async fn push(&self, req: Request<Incoming>) -> Result<Ack, (Reject, Option<String>)> {
        let inner = &self.inner;
        let key = req
            .headers()
            .get(headers::ACCESS_KEY)
            .map(|v| v.as_bytes().to_vec());
        if !inner.auth.check(key.as_deref()) {
            return Err((Reject::Unauthorized, None));
        }
        if inner.draining.load(Ordering::Acquire) {
            return Err((Reject::ShuttingDown, None));
        }
        let Ok(_permit) = inner.permits.clone().try_acquire_owned() else {
            return Err((Reject::Overloaded, None));
        };
        let max = inner.cfg.max_body_bytes;
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err((Reject::TooLarge, None));
        }
        let gzip = req
            .headers()
            .get(CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip"));
        let source_arn = req
            .headers()
            .get(headers::SOURCE_ARN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .chars()
            .take(256)
            .collect::<String>();
        let body = Limited::new(req.into_body(), max).collect();
        let body = match tokio::time::timeout(BODY_READ_TIMEOUT, body).await {
            Err(_) => return Err((Reject::BadRequest("body not received in time"), None)),
            Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => {
                return Err((Reject::TooLarge, None))
            }
            Ok(Err(_)) => {
                return Err((
                    Reject::BadRequest("body could not be read (truncated?)"),
                    None,
                ))
            }
            Ok(Ok(c)) => c.to_bytes(),
        };
        let rx = self.clone();
        tokio::task::spawn_blocking(move || rx.process(gzip, &body, &source_arn))
            .await
            .unwrap_or(Err((Reject::Overloaded, None)))
    }

    /// Steps 4–7 on a received body: decode, dedup, submit, count. Public
    /// for the benchmark (the same work as a request, without the socket).
    pub fn process(
        &self,
        gzip: bool,
        body: &[u8],
        source_arn: &str,
    ) -> Result<Ack, (Reject, Option<String>)> {
        let inner = &self.inner;
        let m = &inner.metrics;
        m.bytes
            .with_label_values(&["compressed"])
            .inc_by(body.len() as u64);
        let unzipped;
        let json: &[u8] = if gzip {
            match decode::gunzip_body(body, inner.cfg.max_body_bytes) {
                Ok(b) => {
                    unzipped = b;
                    &unzipped
                }
                Err(decode::BodyError::TooLarge) => return Err((Reject::TooLarge, None)),
                Err(decode::BodyError::BadGzip) => {
                    return Err((
                        Reject::BadRequest(
                            "Content-Encoding is gzip but the body is not complete gzip",
                        ),
                        None,
                    ))
                }
            }
        } else {
            body
        };
        let request: FirehoseRequest = match serde_json::from_slice(json) {
            Ok(r) => r,
            Err(_) => {
                return Err((
                    Reject::BadRequest(
                        "not a Firehose delivery request (JSON with requestId and records)",
                    ),
                    None,
                ))
            }
        };
        let request_id = request.request_id.as_ref();
        let fail = |r: Reject| Err((r, Some(request_id.to_owned())));

        // ---- 4: decode every record ----
        let mut ack = Ack {
            request_id: request_id.to_owned(),
            ..Ack::default()
        };
        let mut budget = inner.cfg.max_decompressed_bytes;
        let mut decompressed = 0u64;
        let mut scratch = Scratch::default();
        let mut messages = Vec::new();
        let mut bad: Vec<(usize, Undecodable, usize)> = Vec::new();
        for (i, rec) in request.records.iter().enumerate() {
            let (r, used) = decode::decode_record(&rec.data, budget, &mut scratch);
            budget -= used.min(budget);
            decompressed += used as u64;
            match r {
                Record::Empty => ack.records_empty += 1,
                Record::Control => ack.records_control += 1,
                Record::Undecodable(why) => {
                    ack.records_undecodable += 1;
                    bad.push((i, why, rec.data.len()));
                }
                Record::Data(msgs) => messages.push(msgs),
            }
        }

        // ---- 5: shutdown ----
        if inner.draining.load(Ordering::Acquire) {
            return fail(Reject::ShuttingDown);
        }

        // ---- 6: request id ----
        let mut guard = InFlightGuard { rx: self, id: None };
        if !request_id.is_empty() {
            match inner.lock_requests().begin(request_id, Instant::now()) {
                Seen::Done => {
                    m.dedup_hits.with_label_values(&["request"]).inc();
                    m.records
                        .with_label_values(&["duplicate"])
                        .inc_by(request.records.len() as u64);
                    ack.duplicate_request = true;
                    ack.records_duplicate = request.records.len() as u64;
                    ack.records_data = 0;
                    ack.records_control = 0;
                    ack.records_undecodable = 0;
                    ack.records_empty = 0;
                    return Ok(ack);
                }
                Seen::InFlight => return fail(Reject::InFlight),
                Seen::New => guard.id = Some(request_id),
            }
        }

        // ---- 6/7: event ids, then submit (no await from here on) ----
        let mut events: Vec<RawEvent> = Vec::new();
        {
            let mut seen = inner.lock_events();
            for msgs in messages {
                let mut fresh = 0usize;
                let mut total = 0usize;
                for msg in msgs {
                    let group = msg.log_group;
                    let stream = msg.log_stream;
                    for ev in msg.log_events {
                        total += 1;
                        if !seen.insert(&group, &ev.id) {
                            ack.events_duplicate += 1;
                            continue;
                        }
                        fresh += 1;
                        events.push(RawEvent {
                            log_group: group.clone(),
                            log_stream: stream.clone(),
                            event_id: ev.id,
                            timestamp_ms: ev.timestamp,
                            message: ev.message,
                        });
                    }
                }
                if fresh == 0 && total > 0 {
                    ack.records_duplicate += 1;
                } else {
                    ack.records_data += 1;
                }
            }
            m.dedup_entries
                .with_label_values(&["event"])
                .set(seen.len() as i64);
        }
        // Counted and marked done as one step for a state snapshot.
        let commit = inner.commit.read().unwrap_or_else(|e| e.into_inner());
        inner.sink.submit(&events);
        ack.events = events.len() as u64;

        if let Some(id) = guard.id.take() {
            let mut ids = inner.lock_requests();
            ids.finish(id, Instant::now());
            m.dedup_entries
                .with_label_values(&["request"])
                .set(ids.len() as i64);
        }
        drop(commit);
        m.events.inc_by(ack.events);
        m.bytes
            .with_label_values(&["decompressed"])
            .inc_by(decompressed);
        m.dedup_hits
            .with_label_values(&["event"])
            .inc_by(ack.events_duplicate);
        for (outcome, n) in [
            ("data", ack.records_data),
            ("control", ack.records_control),
            ("undecodable", ack.records_undecodable),
            ("duplicate", ack.records_duplicate),
            ("empty", ack.records_empty),
        ] {
            if n > 0 {
                m.records.with_label_values(&[outcome]).inc_by(n);
            }
        }
        for (index, why, len) in bad {
            inner.sample_undecodable(request_id, source_arn, index, why, len);
        }
        Ok(ack)
    }
}
