//! Decoding, one layer exactly once each (pitfall 3 of the contract notes):
//! the body by its `Content-Encoding`, each record from base64, then by its
//! own magic bytes (gzip `1f 8b`, possibly several concatenated members, or
//! plain JSON when Firehose was told to decompress), then the CloudWatch
//! Logs subscription JSON (one or several documents back to back).
//!
//! Every decompression is capped: the body at the body cap, each record at
//! [`MAX_RECORD_DECOMPRESSED_BYTES`] and at what is left of the request's
//! budget, so a gzip bomb costs at most the cap in memory and CPU. Pure
//! functions over bytes: no I/O, no metrics, no logging.
//!
//! Built for throughput (a request carries thousands of events and every
//! one passes here): one inflate state, reset per gzip member; output
//! buffers that stay initialised across uses; and the events of a request
//! written into reused [`EventBuf`] slots, so a steady stream of requests
//! allocates no strings per event.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use flate2::{Crc, Decompress, FlushDecompress, Status};
use serde::de::DeserializeSeed as _;

use super::models::{EventBuf, MessageSeed, MessageType, Scanner};

/// One record's decompressed payload can never legitimately exceed this:
/// CloudWatch Logs sends at most ~1 MiB of events per subscription message
/// (the PutLogEvents batch limit) and JSON escaping at most doubles it
/// (plus the envelope). Four times that leaves room and stops a bomb early.
pub const MAX_RECORD_DECOMPRESSED_BYTES: usize = 8 * 1024 * 1024;

/// Standard alphabet; padding optional (Firehose pads, hand-made senders
/// sometimes do not, and the meaning is the same).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a body could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More than the body cap after decompression (413).
    TooLarge,
    /// `Content-Encoding: gzip` but the body is not (valid, complete) gzip (400).
    BadGzip,
}

/// Decompresses a `Content-Encoding: gzip` body, refusing more than `cap` bytes.
pub fn gunzip_body(body: &[u8], cap: usize) -> Result<Vec<u8>, BodyError> {
    let mut scratch = Scratch::default();
    gunzip_body_into(body, cap, &mut scratch)?;
    Ok(scratch.body.filled().to_vec())
}

/// [`gunzip_body`] into the scratch's body buffer ([`Scratch::body`]).
pub fn gunzip_body_into(body: &[u8], cap: usize, scratch: &mut Scratch) -> Result<(), BodyError> {
    scratch.body.clear();
    match gunzip_into(body, cap, &mut scratch.inflaters, &mut scratch.body) {
        Ok(()) => Ok(()),
        Err(GzError::TooLarge) => Err(BodyError::TooLarge),
        Err(GzError::Bad) => Err(BodyError::BadGzip),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GzError {
    Bad,
    TooLarge,
}

/// Output grows by at least this much at a time (and never past its cap
/// by more than this).
const OUT_STEP: usize = 64 * 1024;

/// An output buffer whose bytes stay initialised between uses: inflating
/// into it never zeroes memory again, and growing it zeroes only the new part.
#[derive(Debug, Default)]
pub struct OutBuf {
    /// Initialised storage; `data.len()` is what is allocated and usable.
    data: Vec<u8>,
    /// Bytes in use.
    len: usize,
}

impl OutBuf {
    fn clear(&mut self) {
        self.len = 0;
    }

    /// The bytes written so far.
    pub fn filled(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// Room to write after `len`: the storage doubles when less than
    /// `OUT_STEP / 2` is left, and the room never reaches more than one
    /// byte past `cap`, so one inflate call overshoots the cap by at most
    /// that byte (which the caller sees). Call with `len <= cap`.
    fn spare(&mut self, cap: usize) -> &mut [u8] {
        let limit = cap.saturating_add(1);
        if self.data.len() - self.len < OUT_STEP / 2 {
            let want = (self.len + self.len.max(OUT_STEP)).min(limit);
            if want > self.data.len() {
                self.data.resize(want, 0);
            }
        }
        let end = self.data.len().min(limit);
        &mut self.data[self.len..end]
    }

    /// Exactly `n` bytes of room after `len` (growing the storage, and
    /// zeroing only what is new, if needed).
    fn room(&mut self, n: usize) -> &mut [u8] {
        let end = self.len + n;
        if end > self.data.len() {
            self.data.resize(end, 0);
        }
        &mut self.data[self.len..end]
    }

    /// Gives memory back when it grew past `keep` bytes.
    fn trim(&mut self, keep: usize) {
        if self.data.len() > keep {
            self.data = Vec::new();
            self.len = 0;
        }
    }
}

/// Inflates `input` into `out` (which the caller cleared), at most `cap`
/// bytes: [`gunzip_whole`] when the input is one plain gzip member whose
/// size it can trust, else (several members, a size past the cap or a lie,
/// anything malformed) [`gunzip_stream`], which decides what is wrong.
fn gunzip_into(
    input: &[u8],
    cap: usize,
    inflaters: &mut Inflaters,
    out: &mut OutBuf,
) -> Result<(), GzError> {
    if gunzip_whole(input, cap, &mut inflaters.whole, out) {
        return Ok(());
    }
    gunzip_stream(input, cap, &mut inflaters.stream, out)
}

/// The two inflaters a [`Scratch`] keeps: libdeflate for the common case
/// (a whole member in memory, its size known from its trailer: no
/// streaming state, ~2x faster), zlib-rs streaming for everything else.
struct Inflaters {
    whole: libdeflater::Decompressor,
    stream: Decompress,
}

impl Default for Inflaters {
    fn default() -> Self {
        Inflaters {
            whole: libdeflater::Decompressor::new(),
            stream: Decompress::new(false),
        }
    }
}

/// The fast path: `input` read as exactly one gzip member (what CloudWatch
/// Logs and Firehose send) and inflated in one call into `out`, sized from
/// the member's ISIZE trailer. True when that worked and the trailer's
/// CRC-32 and length match the output; false (nothing decided, `out`
/// holding junk) when the input may be anything else: several members,
/// trailing bytes, an ISIZE over `cap` or a false one, corrupt data.
///
/// libdeflate does not say where the deflate stream ended, so the member
/// is taken to end 8 bytes before the input, where its trailer must then
/// be. A second member would start with the gzip magic somewhere after
/// this one's header: input holding those bytes anywhere there goes to the
/// streaming path, which finds every member (compressed data holds them by
/// chance about once in 16 MiB, which only costs that record the slower
/// path). What could still pass as one member is a member followed by
/// junk that is not a gzip member and ends in exactly this member's CRC-32
/// and length: only a sender's own crafted bytes, hiding nothing but its
/// own events.
fn gunzip_whole(
    input: &[u8],
    cap: usize,
    inflater: &mut libdeflater::Decompressor,
    out: &mut OutBuf,
) -> bool {
    let Some(pos) = member_header_len(input) else {
        return false;
    };
    let Some(body_end) = input.len().checked_sub(8).filter(|&e| e >= pos) else {
        return false;
    };
    if memchr::memmem::find(&input[pos..], &[0x1f, 0x8b, 0x08]).is_some() {
        return false;
    }
    let t = &input[body_end..];
    let want_crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    let size = u32::from_le_bytes([t[4], t[5], t[6], t[7]]) as usize;
    if out.len.saturating_add(size) > cap {
        return false;
    }
    let room = out.room(size);
    match inflater.deflate_decompress(&input[pos..body_end], room) {
        Ok(n) if n == size && libdeflater::crc32(room) == want_crc => {
            out.len += n;
            true
        }
        _ => false,
    }
}

/// The length of the gzip member header at the start of `input` (RFC 1952:
/// magic, deflate, no reserved flags, optional extra, name, comment and
/// header CRC), or None if it is not one.
fn member_header_len(input: &[u8]) -> Option<usize> {
    let h = input.get(..10)?;
    if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 || h[3] & 0xe0 != 0 {
        return None;
    }
    let flags = h[3];
    let mut pos = 10;
    if flags & 0x04 != 0 {
        let x = input.get(pos..pos + 2)?;
        pos += 2 + u16::from_le_bytes([x[0], x[1]]) as usize;
    }
    for bit in [0x08u8, 0x10] {
        if flags & bit != 0 {
            let rest = input.get(pos..)?;
            pos += memchr::memchr(0, rest)? + 1;
        }
    }
    if flags & 0x02 != 0 {
        pos += 2;
    }
    (pos <= input.len()).then_some(pos)
}

/// Inflates every gzip member of `input` (RFC 1952; one or several back to
/// back) into `out`, at most `cap` bytes, checking each member's CRC and
/// length. The inflate state is the caller's and reused: setting one up
/// per record (a 32 KiB window) cost more than the inflating.
fn gunzip_stream(
    input: &[u8],
    cap: usize,
    inflater: &mut Decompress,
    out: &mut OutBuf,
) -> Result<(), GzError> {
    let mut pos = 0usize;
    loop {
        // ---- member header ----
        pos += member_header_len(&input[pos..]).ok_or(GzError::Bad)?;
        // ---- deflate data ----
        inflater.reset(false);
        let start = out.len;
        loop {
            let (in0, out0) = (inflater.total_in(), inflater.total_out());
            let status = inflater
                .decompress(&input[pos..], out.spare(cap), FlushDecompress::None)
                .map_err(|_| GzError::Bad)?;
            pos += (inflater.total_in() - in0) as usize;
            out.len += (inflater.total_out() - out0) as usize;
            if out.len > cap {
                return Err(GzError::TooLarge);
            }
            match status {
                Status::StreamEnd => break,
                _ if inflater.total_in() == in0 && inflater.total_out() == out0 => {
                    return Err(GzError::Bad); // input ended inside the stream
                }
                _ => {}
            }
        }
        // ---- trailer: CRC-32 and length mod 2^32 ----
        let t = input.get(pos..pos + 8).ok_or(GzError::Bad)?;
        let mut crc = Crc::new();
        crc.update(&out.data[start..out.len]);
        let want_crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let want_len = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        if crc.sum() != want_crc || (out.len - start) as u32 != want_len {
            return Err(GzError::Bad);
        }
        pos += 8;
        if pos == input.len() {
            return Ok(());
        }
    }
}

/// Why a record was not counted. Logged (sampled), never a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undecodable {
    NotBase64,
    /// 1 or 2 bytes: too short to be gzip or a subscription message.
    TooShort,
    /// Gzip magic but a corrupt or truncated stream.
    BadGzip,
    /// Decompresses past the per-record or per-request cap.
    TooLarge,
    /// Neither gzip nor a JSON object (e.g. Firehose "extract messages" on).
    NotGzipOrJson,
    /// JSON, but not a CloudWatch Logs subscription message.
    NotSubscription,
    /// A `messageType` other than DATA_MESSAGE / CONTROL_MESSAGE.
    UnknownMessageType,
}

impl Undecodable {
    pub fn as_str(self) -> &'static str {
        match self {
            Undecodable::NotBase64 => "not base64",
            Undecodable::TooShort => "shorter than 3 bytes",
            Undecodable::BadGzip => "corrupt or truncated gzip",
            Undecodable::TooLarge => "decompresses past the cap (gzip bomb?)",
            Undecodable::NotGzipOrJson => {
                "neither gzip nor JSON (is Firehose's message extraction on? it must be off)"
            }
            Undecodable::NotSubscription => "not a CloudWatch Logs subscription message",
            Undecodable::UnknownMessageType => "unknown messageType",
        }
    }
}

/// What one record turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Zero bytes of data: allowed by the contract, nothing to count.
    Empty,
    /// Only CONTROL_MESSAGE documents.
    Control,
    /// One or more DATA_MESSAGE documents (CONTROL_MESSAGEs among them are
    /// dropped): this many events were appended to the [`EventBuf`].
    Data(usize),
    Undecodable(Undecodable),
}

/// Reusable buffers, inflate state and event slots for decoding requests.
#[derive(Default)]
pub struct Scratch {
    /// The decompressed body of a `Content-Encoding: gzip` request.
    pub body: OutBuf,
    /// The request's decoded events.
    pub events: EventBuf,
    records: RecordScratch,
    inflaters: Inflaters,
}

/// Buffers for one record at a time.
#[derive(Default)]
struct RecordScratch {
    raw: Vec<u8>,
    plain: OutBuf,
    group: String,
    stream: String,
}

/// What a [`Scratch`] keeps between requests, at most: above this a buffer
/// is freed after use (and allocated again by the next large request).
const KEEP_BODY_BYTES: usize = 16 * 1024 * 1024;
const KEEP_RECORD_BYTES: usize = 2 * 1024 * 1024;
const KEEP_EVENT_BYTES: usize = 16 * 1024 * 1024;

impl Scratch {
    /// Frees what a large request left behind (see the `KEEP_*` bounds).
    pub fn trim(&mut self) {
        self.body.trim(KEEP_BODY_BYTES);
        self.records.plain.trim(KEEP_RECORD_BYTES);
        if self.records.raw.capacity() > KEEP_RECORD_BYTES {
            self.records.raw = Vec::new();
        }
        self.events.trim(KEEP_EVENT_BYTES);
    }

    /// Splits the scratch for decoding a request whose JSON lives in
    /// `self.body`: the body, and a decoder for its records.
    pub fn split(&mut self) -> (&[u8], RecordDecoder<'_>) {
        (
            self.body.filled(),
            RecordDecoder {
                records: &mut self.records,
                inflaters: &mut self.inflaters,
                events: &mut self.events,
            },
        )
    }

    /// A decoder for records of a body held elsewhere.
    pub fn decoder(&mut self) -> RecordDecoder<'_> {
        self.split().1
    }
}

/// Decodes records into the scratch's [`EventBuf`].
pub struct RecordDecoder<'s> {
    records: &'s mut RecordScratch,
    inflaters: &'s mut Inflaters,
    pub events: &'s mut EventBuf,
}

impl RecordDecoder<'_> {
    /// Decodes one record's base64 `data`, appending its events to
    /// [`RecordDecoder::events`] (nothing is appended unless the whole
    /// record decodes). `budget` is what is left of the request's
    /// decompressed-bytes cap; the bytes of a record that decodes are taken
    /// from it (and returned in the second value).
    pub fn record(&mut self, data: &str, budget: usize) -> (Record, usize) {
        let RecordScratch {
            raw,
            plain,
            group,
            stream,
        } = &mut *self.records;
        raw.clear();
        if BASE64.decode_vec(data.as_bytes(), raw).is_err() {
            return (Record::Undecodable(Undecodable::NotBase64), 0);
        }
        let raw = &raw[..];
        if raw.is_empty() {
            return (Record::Empty, 0);
        }
        if raw.len() < 3 {
            return (Record::Undecodable(Undecodable::TooShort), 0);
        }
        let payload: &[u8] = if raw[0] == 0x1f && raw[1] == 0x8b {
            let cap = MAX_RECORD_DECOMPRESSED_BYTES.min(budget);
            plain.clear();
            match gunzip_into(raw, cap, self.inflaters, plain) {
                Ok(()) => plain.filled(),
                Err(GzError::TooLarge) => return (Record::Undecodable(Undecodable::TooLarge), 0),
                Err(GzError::Bad) => return (Record::Undecodable(Undecodable::BadGzip), 0),
            }
        } else {
            if raw.len() > budget {
                return (Record::Undecodable(Undecodable::TooLarge), 0);
            }
            match raw.iter().find(|b| !b.is_ascii_whitespace()) {
                Some(b'{') => raw,
                _ => return (Record::Undecodable(Undecodable::NotGzipOrJson), 0),
            }
        };
        let used = payload.len();
        (parse_messages(payload, self.events, group, stream), used)
    }
}

/// Decodes one record's base64 `data` with its own scratch: for tests and
/// one-off use (the handler keeps a [`Scratch`] per thread).
pub fn decode_record(data: &str, budget: usize, scratch: &mut Scratch) -> (Record, usize) {
    scratch.decoder().record(data, budget)
}

/// Parses one or more subscription documents written back to back,
/// appending the events of DATA_MESSAGEs to `events`; on any error nothing
/// of the record stays appended. The hand-written [`Scanner`] reads what it
/// can; anything else (all errors among it) is read again by serde.
fn parse_messages(
    payload: &[u8],
    events: &mut EventBuf,
    group: &mut String,
    stream: &mut String,
) -> Record {
    let start = events.len();
    if let Some(r) = scan_messages(payload, events, group, stream) {
        return r;
    }
    events.truncate(start);
    parse_messages_serde(payload, events, group, stream)
}

/// [`parse_messages`] with the [`Scanner`]: the same loop as
/// [`parse_messages_serde`], giving up (None) on anything but a record of
/// DATA and CONTROL messages that all read cleanly.
fn scan_messages(
    payload: &[u8],
    events: &mut EventBuf,
    group: &mut String,
    stream: &mut String,
) -> Option<Record> {
    let start = events.len();
    let (mut control, mut data) = (false, false);
    let mut sc = Scanner::new(payload)?;
    while !sc.at_end() {
        let doc_start = events.len();
        match sc.message(events, group, stream)? {
            MessageType::Control => {
                control = true;
                events.truncate(doc_start);
            }
            MessageType::Data if group.is_empty() => return None,
            MessageType::Data => {
                data = true;
                stamp(&mut events.events_mut()[doc_start..], group, stream);
            }
            MessageType::Other => return None,
        }
    }
    if data {
        Some(Record::Data(events.len() - start))
    } else if control {
        Some(Record::Control)
    } else {
        None
    }
}

/// Writes the message's group and stream on its events.
fn stamp(events: &mut [crate::event::RawEvent], group: &str, stream: &str) {
    for e in events {
        e.log_group.clear();
        e.log_group.push_str(group);
        e.log_stream.clear();
        e.log_stream.push_str(stream);
    }
}

/// [`parse_messages`] with serde_json and [`MessageSeed`]: the reference.
fn parse_messages_serde(
    payload: &[u8],
    events: &mut EventBuf,
    group: &mut String,
    stream: &mut String,
) -> Record {
    let start = events.len();
    let mut control = false;
    let mut data = false;
    let fail = |events: &mut EventBuf, why| {
        events.truncate(start);
        Record::Undecodable(why)
    };
    let mut de = serde_json::Deserializer::from_slice(payload);
    loop {
        // Whitespace between and after documents is allowed; anything else
        // must be another document.
        if de.end().is_ok() {
            break;
        }
        let doc_start = events.len();
        let seed = MessageSeed {
            events: &mut *events,
            group: &mut *group,
            stream: &mut *stream,
        };
        let Ok(kind) = seed.deserialize(&mut de) else {
            return fail(events, Undecodable::NotSubscription);
        };
        match kind {
            MessageType::Control => {
                control = true;
                events.truncate(doc_start);
            }
            MessageType::Data if group.is_empty() => {
                return fail(events, Undecodable::NotSubscription)
            }
            MessageType::Data => {
                data = true;
                stamp(&mut events.events_mut()[doc_start..], group, stream);
            }
            MessageType::Other => return fail(events, Undecodable::UnknownMessageType),
        }
    }
    if data {
        Record::Data(events.len() - start)
    } else if control {
        Record::Control
    } else {
        Record::Undecodable(Undecodable::NotSubscription)
    }
}

/// Test and benchmark helpers: what a CloudWatch Logs subscription puts in
/// a record, and gzip.
pub mod encode {
    use std::io::Write;

    use base64::Engine as _;
    use flate2::write::GzEncoder;
    use flate2::Compression;

    /// Gzip of `bytes` (one member, default level as CloudWatch Logs).
    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        let _ = enc.write_all(bytes);
        enc.finish().unwrap_or_default()
    }

    /// Standard padded base64.
    pub fn base64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// A DATA_MESSAGE with `(id, timestamp_ms, message)` events.
    pub fn data_message(group: &str, stream: &str, events: &[(String, i64, String)]) -> String {
        let events: Vec<serde_json::Value> = events
            .iter()
            .map(|(id, ts, m)| serde_json::json!({"id": id, "timestamp": ts, "message": m}))
            .collect();
        serde_json::json!({
            "messageType": "DATA_MESSAGE",
            "owner": "111122223333",
            "logGroup": group,
            "logStream": stream,
            "subscriptionFilters": ["to-firehose"],
            "logEvents": events,
        })
        .to_string()
    }

    /// The reachability check CloudWatch Logs sends when a subscription is created.
    pub fn control_message() -> String {
        serde_json::json!({
            "messageType": "CONTROL_MESSAGE",
            "owner": "CloudwatchLogs",
            "logGroup": "",
            "logStream": "",
            "subscriptionFilters": [],
            "logEvents": [{"id": "", "timestamp": 1_700_000_000_000_i64,
                "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}],
        })
        .to_string()
    }

    /// A delivery request body with the given base64 record data.
    pub fn request_body(request_id: &str, timestamp_ms: i64, records: &[String]) -> String {
        let records: Vec<serde_json::Value> = records
            .iter()
            .map(|d| serde_json::json!({ "data": d }))
            .collect();
        serde_json::json!({"requestId": request_id, "timestamp": timestamp_ms, "records": records})
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::encode::*;
    use super::*;

    const BIG: usize = 1 << 30;

    fn msg(group: &str, n: usize) -> String {
        let ev: Vec<(String, i64, String)> = (0..n)
            .map(|i| (i.to_string(), 1_700_000_000_000 + i as i64, format!("m{i}")))
            .collect();
        data_message(group, "s", &ev)
    }

    #[test]
    fn record_table() {
        let one = msg("/g", 2);
        let two = format!("{}\n{}", msg("/g", 1), msg("/h", 3));
        let mut concat = gzip(msg("/g", 2).as_bytes());
        concat.extend(gzip(msg("/h", 1).as_bytes()));
        let mut bad_crc = gzip(one.as_bytes());
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 0xff;
        let mut trailing = gzip(one.as_bytes());
        trailing.extend_from_slice(b"junk");
        let mut truncated = gzip(one.as_bytes());
        truncated.truncate(truncated.len() - 6);
        // (name, base64 data, expected: Ok(events) | Err(kind) | "empty"/"control")
        let cases: Vec<(&str, String, &str)> = vec![
            ("gzip record", base64(&gzip(one.as_bytes())), "data:2"),
            ("plain json record", base64(one.as_bytes()), "data:2"),
            (
                "two documents in one member",
                base64(&gzip(two.as_bytes())),
                "data:4",
            ),
            ("concatenated gzip members", base64(&concat), "data:3"),
            ("empty record", String::new(), "empty"),
            (
                "control message",
                base64(&gzip(control_message().as_bytes())),
                "control",
            ),
            ("one byte", base64(&[0x1f]), "TooShort"),
            ("two bytes of gzip magic", base64(&[0x1f, 0x8b]), "TooShort"),
            ("not base64", "%%%not base64%%%".into(), "NotBase64"),
            (
                "not gzip nor json",
                base64(b"CONNECTED user=x"),
                "NotGzipOrJson",
            ),
            (
                "gzip magic, garbage",
                base64(&[0x1f, 0x8b, 8, 0, 1, 2, 3, 4]),
                "BadGzip",
            ),
            ("truncated gzip", base64(&truncated), "BadGzip"),
            ("gzip with a wrong CRC", base64(&bad_crc), "BadGzip"),
            ("gzip with trailing junk", base64(&trailing), "BadGzip"),
            (
                "json, not a subscription",
                base64(br#"{"a":1}"#),
                "NotSubscription",
            ),
            (
                "extracted message",
                base64(&gzip(br#"{"activity-type":"CONNECTED"}"#)),
                "NotSubscription",
            ),
            (
                "unknown type",
                base64(br#"{"messageType":"X"}"#),
                "UnknownMessageType",
            ),
            (
                "data without group",
                base64(br#"{"messageType":"DATA_MESSAGE","logEvents":[]}"#),
                "NotSubscription",
            ),
        ];
        let mut scratch = Scratch::default();
        for (name, data, want) in cases {
            scratch.events.clear();
            let (rec, _) = decode_record(&data, BIG, &mut scratch);
            let appended = match rec {
                Record::Data(n) => n,
                _ => 0,
            };
            assert_eq!(scratch.events.len(), appended, "case {name:?}");
            let got = match &rec {
                Record::Empty => "empty".to_owned(),
                Record::Control => "control".to_owned(),
                Record::Data(n) => format!("data:{n}"),
                Record::Undecodable(k) => format!("{k:?}"),
            };
            assert_eq!(got, want, "case {name:?}: data {data:?}");
        }
    }

    /// What lands in the event slots: every field of every event of a DATA
    /// record, in order, with its own group and stream; nothing of a
    /// record that fails or of a control message; slots reused across
    /// records without leftovers.
    #[test]
    fn records_append_exactly_their_events() {
        let ev = |id: &str, ts: i64, m: &str| (id.to_owned(), ts, m.to_owned());
        let g1 = data_message(
            "/g1",
            "s1",
            &[ev("a", 1, r#"{"k":"v \"q\""}"#), ev("b", 2, "legacy line")],
        );
        let g2 = data_message("/g2", "s2", &[ev("c", 3, "x")]);
        let mixed = format!("{g1}\n{}\n{g2}", control_message());
        let second_broken = format!("{g1}{{\"messageType\":\"DATA_MESSAGE\",\"logGroup\":\"/g\",\"logEvents\":[{{\"id\":\"z\"}}]}}");
        let mut scratch = Scratch::default();
        let mut d = scratch.decoder();
        d.events.clear();
        assert_eq!(
            d.record(&base64(&gzip(mixed.as_bytes())), BIG).0,
            Record::Data(3)
        );
        assert_eq!(
            d.record(&base64(second_broken.as_bytes()), BIG).0,
            Record::Undecodable(Undecodable::NotSubscription)
        );
        assert_eq!(
            d.record(&base64(&gzip(g2.as_bytes())), BIG).0,
            Record::Data(1)
        );
        let got: Vec<(&str, &str, &str, i64, &str)> = d
            .events
            .events()
            .iter()
            .map(|e| {
                (
                    e.log_group.as_str(),
                    e.log_stream.as_str(),
                    e.event_id.as_str(),
                    e.timestamp_ms,
                    e.message.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("/g1", "s1", "a", 1, r#"{"k":"v \"q\""}"#),
                ("/g1", "s1", "b", 2, "legacy line"),
                ("/g2", "s2", "c", 3, "x"),
                ("/g2", "s2", "c", 3, "x"),
            ]
        );
        // A second request on the same scratch: slots reused, contents exact.
        d.events.clear();
        let short = data_message("/h", "t", &[ev("1", 9, "m")]);
        assert_eq!(d.record(&base64(short.as_bytes()), BIG).0, Record::Data(1));
        let e = &d.events.events()[0];
        assert_eq!(
            (
                e.log_group.as_str(),
                e.log_stream.as_str(),
                e.event_id.as_str(),
                e.timestamp_ms,
                e.message.as_str()
            ),
            ("/h", "t", "1", 9, "m")
        );
    }

    /// Decodes `payload` both ways: (scanner's answer if it gave one,
    /// serde's), each as (record, events as tuples).
    #[allow(clippy::type_complexity)]
    fn both_ways(
        payload: &[u8],
    ) -> (
        Option<(Record, Vec<(String, String, String, i64, String)>)>,
        (Record, Vec<(String, String, String, i64, String)>),
    ) {
        let rows = |b: &EventBuf| -> Vec<_> {
            b.events()
                .iter()
                .map(|e| {
                    (
                        e.log_group.clone(),
                        e.log_stream.clone(),
                        e.event_id.clone(),
                        e.timestamp_ms,
                        e.message.clone(),
                    )
                })
                .collect()
        };
        let (mut g, mut s) = (String::new(), String::new());
        let mut fast = EventBuf::default();
        let scanned = scan_messages(payload, &mut fast, &mut g, &mut s).map(|r| (r, rows(&fast)));
        let mut slow = EventBuf::default();
        let r = parse_messages_serde(payload, &mut slow, &mut g, &mut s);
        (scanned, (r, rows(&slow)))
    }

    /// The hand-written scanner is only a faster way to the serde path's
    /// answer: on every payload where it answers, the answer (record kind,
    /// events, every field) is serde's; and it does answer on the messages
    /// CloudWatch Logs sends, whatever their strings hold.
    #[test]
    fn scanner_agrees_with_serde() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet: Vec<char> = "ab \"\\/{}[]:,\n\t\r\u{0}\u{1f}\u{7f}é€😀\u{2028}\u{ffff}"
            .chars()
            .collect();
        let mut valid = Vec::new();
        for _ in 0..300 {
            let n = rng.random_range(0..4);
            let text = |rng: &mut rand::rngs::StdRng| -> String {
                let len = rng.random_range(0..40);
                (0..len)
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                    .collect()
            };
            let ev: Vec<(String, i64, String)> = (0..n)
                .map(|_| {
                    let id = if rng.random_bool(0.5) {
                        format!("{:056}", rng.random::<u64>())
                    } else {
                        text(&mut rng)
                    };
                    (
                        id,
                        rng.random::<i64>() >> rng.random_range(0..64),
                        text(&mut rng),
                    )
                })
                .collect();
            let group = format!("/g{}", text(&mut rng));
            let stream = text(&mut rng);
            valid.push(data_message(&group, &stream, &ev));
        }
        // Hand-written shapes: numeric ids, escapes serde_json never writes,
        // keys in other orders, unknown fields, several documents.
        let hand = [
            r#"{"messageType":"DATA_MESSAGE","logGroup":"/g","logStream":"s","logEvents":[{"id":17,"timestamp":-5,"message":"\u00e9\ud83d\ude00\/\b\f"},{"message":"","id":-3,"timestamp":0,"x":[1.5e-3,true,null,{"k\"":"v"}]}]}"#,
            r#" {"logEvents":[],"messageType":"CONTROL_MESSAGE"} {"messageType":"DATA_MESSAGE","logGroup":"/h","logEvents":[{"id":"1","timestamp":1,"message":"m"}]}  "#,
            r#"{"messageType":"DATA_MESSAGE","logGroup":"/g","logEvents":[{"id":"1","timestamp":1,"message":"a"}],"logEvents":[{"id":"2","timestamp":2,"message":"b"}],"logGroup":"/h"}"#,
        ];
        let mut cases: Vec<Vec<u8>> = valid.iter().map(|v| v.as_bytes().to_vec()).collect();
        cases.extend(hand.iter().map(|h| h.as_bytes().to_vec()));
        cases.push(format!("{}{}", valid[0], control_message()).into_bytes());
        for c in cases.clone() {
            let (fast, slow) = both_ways(&c);
            assert_eq!(
                fast.as_ref(),
                Some(&slow),
                "valid payload {:?}",
                String::from_utf8_lossy(&c)
            );
        }
        // Damaged payloads: whatever the scanner accepts, serde agrees on.
        let bytes = b"\"\\{}[],:0-.eE \nu\xff\x01a";
        let mut answered = 0;
        for i in 0..20_000 {
            let mut c = cases[i % cases.len()].clone();
            for _ in 0..rng.random_range(1..3) {
                let at = rng.random_range(0..c.len());
                match rng.random_range(0..3) {
                    0 => c[at] = bytes[rng.random_range(0..bytes.len())],
                    1 => {
                        c.remove(at);
                    }
                    _ => c.insert(at, bytes[rng.random_range(0..bytes.len())]),
                }
            }
            let (fast, slow) = both_ways(&c);
            if let Some(fast) = fast {
                answered += 1;
                assert_eq!(
                    fast,
                    slow,
                    "damaged payload {:?}",
                    String::from_utf8_lossy(&c)
                );
            }
        }
        assert!(
            answered > 1000,
            "the scanner answered only {answered} damaged payloads"
        );
    }

    #[test]
    fn gzip_bomb_stops_at_the_cap() {
        let zeros = vec![b' '; 64 * 1024 * 1024];
        let bomb = base64(&gzip(&zeros));
        assert!(bomb.len() < 200_000, "bomb is small: {}", bomb.len());
        let mut scratch = Scratch::default();
        let (rec, used) = decode_record(&bomb, BIG, &mut scratch);
        assert!(
            matches!(rec, Record::Undecodable(Undecodable::TooLarge)),
            "{rec:?}"
        );
        assert_eq!(used, 0);
        assert!(scratch.records.plain.data.len() <= MAX_RECORD_DECOMPRESSED_BYTES + 1);
        // The request budget caps too.
        let small = base64(&gzip(msg("/g", 100).as_bytes()));
        let (rec, _) = decode_record(&small, 100, &mut scratch);
        assert!(
            matches!(rec, Record::Undecodable(Undecodable::TooLarge)),
            "{rec:?}"
        );
        let (rec, used) = decode_record(&small, BIG, &mut scratch);
        assert!(matches!(rec, Record::Data(_)));
        assert_eq!(used, msg("/g", 100).len());
    }

    #[test]
    fn body_gunzip() {
        let body = br#"{"requestId":"r","records":[]}"#;
        assert_eq!(gunzip_body(&gzip(body), 1000).unwrap(), body.to_vec());
        assert_eq!(gunzip_body(&gzip(body), 10), Err(BodyError::TooLarge));
        assert_eq!(gunzip_body(body, 1000), Err(BodyError::BadGzip));
        assert_eq!(gunzip_body(b"", 1000), Err(BodyError::BadGzip));
        let mut cut = gzip(body);
        cut.truncate(cut.len() / 2);
        assert_eq!(gunzip_body(&cut, 1000), Err(BodyError::BadGzip));
    }

    /// Two identical members end in the first one's CRC-32 and length:
    /// both are inflated (the one-call path must not take them for one).
    #[test]
    fn identical_concatenated_members_are_both_inflated() {
        let part = br#"{"requestId":"r","records":[]}"#.repeat(20);
        let mut twice = gzip(&part);
        twice.extend(gzip(&part));
        let mut want = part.clone();
        want.extend_from_slice(&part);
        assert_eq!(gunzip_body(&twice, 1 << 20).unwrap(), want);
    }
}
