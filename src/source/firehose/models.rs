//! The wire shapes: the Firehose HTTP endpoint delivery request and answer
//! (protocol 1.0), and the CloudWatch Logs subscription payload each record
//! carries. Unknown fields are ignored everywhere: AWS adds fields, and a
//! receiver that rejects them would stop counting on the day it does.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::event::RawEvent;

/// Header names Firehose sends (lower case, as hyper stores them).
pub mod headers {
    pub const REQUEST_ID: &str = "x-amz-firehose-request-id";
    pub const ACCESS_KEY: &str = "x-amz-firehose-access-key";
    pub const PROTOCOL_VERSION: &str = "x-amz-firehose-protocol-version";
    pub const SOURCE_ARN: &str = "x-amz-firehose-source-arn";
}

/// The delivery request body. Record data is borrowed from the body buffer
/// when it needs no unescaping (always, for base64), so parsing a 64 MiB
/// body copies no record.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseRequest<'a> {
    #[serde(borrow)]
    pub request_id: Cow<'a, str>,
    /// Milliseconds since the epoch when Firehose sent the request. Only
    /// informative: events keep their own timestamps.
    #[serde(default)]
    pub timestamp: Option<i64>,
    #[serde(borrow)]
    pub records: Vec<FirehoseRecord<'a>>,
}

/// One record: base64 of what the producer put (here: a gzipped CloudWatch
/// Logs subscription message). May be empty.
#[derive(Debug, Deserialize)]
pub struct FirehoseRecord<'a> {
    #[serde(borrow, default)]
    pub data: Cow<'a, str>,
}

/// The answer Firehose expects: the request's id, now in milliseconds, and
/// an optional error message (at most 8,192 characters).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseResponse {
    pub request_id: String,
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error_message: Option<String>,
}

/// Firehose rejects an `errorMessage` longer than this (the whole answer
/// then counts as a failure).
pub const MAX_ERROR_MESSAGE_CHARS: usize = 8192;

/// `messageType` of a subscription message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// Log events.
    Data,
    /// A reachability check from CloudWatch Logs: no events.
    Control,
    /// Anything else (a future type): counted as undecodable.
    Other,
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s: Cow<'de, str> = Deserialize::deserialize(d)?;
        Ok(match s.as_ref() {
            "DATA_MESSAGE" => MessageType::Data,
            "CONTROL_MESSAGE" => MessageType::Control,
            _ => MessageType::Other,
        })
    }
}

/// The decoded events of one request, in reused slots: a slot's strings
/// keep their capacity from one request to the next, so decoding writes
/// into memory that is already there.
#[derive(Debug, Default)]
pub struct EventBuf {
    slots: Vec<RawEvent>,
    len: usize,
}

impl EventBuf {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The events in use.
    pub fn events(&self) -> &[RawEvent] {
        &self.slots[..self.len]
    }

    pub(super) fn events_mut(&mut self) -> &mut [RawEvent] {
        &mut self.slots[..self.len]
    }

    /// A slot for one more event (its old contents are overwritten by the
    /// caller, field by field).
    pub(super) fn push_slot(&mut self) -> &mut RawEvent {
        if self.len == self.slots.len() {
            self.slots.push(RawEvent::default());
        }
        self.len += 1;
        &mut self.slots[self.len - 1]
    }

    /// Drops the events from `len` on (the slots stay for reuse).
    pub(super) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Keeps, in order, the events `keep` says yes to among `range`, moved
    /// down to start at `to` (≤ `range.start`); returns how many were kept.
    /// Every event before `to` and every kept one stays; call on
    /// consecutive ranges with a growing `to`, then [`EventBuf::truncate`].
    pub(super) fn compact(
        &mut self,
        range: std::ops::Range<usize>,
        to: usize,
        mut keep: impl FnMut(&RawEvent) -> bool,
    ) -> usize {
        let mut w = to;
        for i in range {
            if keep(&self.slots[i]) {
                self.slots.swap(w, i);
                w += 1;
            }
        }
        w - to
    }

    /// Gives memory back when the slots hold more than `keep` bytes of
    /// strings (a burst of large requests must not stay resident).
    pub(super) fn trim(&mut self, keep: usize) {
        let mut bytes = 0usize;
        for (i, e) in self.slots.iter().enumerate() {
            bytes += e.log_group.capacity()
                + e.log_stream.capacity()
                + e.event_id.capacity()
                + e.message.capacity()
                + std::mem::size_of::<RawEvent>();
            if bytes > keep {
                self.slots.truncate(i);
                self.slots.shrink_to_fit();
                break;
            }
        }
        self.len = self.len.min(self.slots.len());
    }
}

/// A CloudWatch Logs subscription message (the JSON inside each record):
/// `{"messageType", "owner", "logGroup", "logStream", "subscriptionFilters",
/// "logEvents": [{"id", "timestamp", "message"}, …]}`, in any key order.
///
/// Deserialized straight into reused event slots ([`EventBuf`]) instead of
/// owned strings per event: the events are appended to `events`, the group
/// and stream written to `group` and `stream`, and the message type
/// returned. The caller stamps the group and stream on the appended events
/// (they may come after `logEvents`) or drops them (a control message).
pub struct MessageSeed<'a> {
    pub events: &'a mut EventBuf,
    pub group: &'a mut String,
    pub stream: &'a mut String,
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum MessageField {
    MessageType,
    LogGroup,
    LogStream,
    LogEvents,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = MessageType;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<MessageType, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = MessageType;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a CloudWatch Logs subscription message")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MessageType, A::Error> {
        let mut kind = None;
        self.group.clear();
        self.stream.clear();
        while let Some(field) = map.next_key::<MessageField>()? {
            match field {
                MessageField::MessageType => kind = Some(map.next_value::<MessageType>()?),
                MessageField::LogGroup => map.next_value_seed(StrInto(&mut *self.group))?,
                MessageField::LogStream => map.next_value_seed(StrInto(&mut *self.stream))?,
                MessageField::LogEvents => map.next_value_seed(EventsSeed(&mut *self.events))?,
                MessageField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        kind.ok_or_else(|| de::Error::missing_field("messageType"))
    }
}

/// `logEvents`: each element into a new slot.
struct EventsSeed<'a>(&'a mut EventBuf);

impl<'de> DeserializeSeed<'de> for EventsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of log events")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        loop {
            let n = self.0.len();
            let slot = self.0.push_slot();
            match seq.next_element_seed(EventSeed(slot)) {
                Ok(Some(())) => {}
                Ok(None) => {
                    self.0.truncate(n);
                    return Ok(());
                }
                Err(e) => {
                    self.0.truncate(n);
                    return Err(e);
                }
            }
        }
    }
}

/// One log event, written over a slot's previous contents.
struct EventSeed<'a>(&'a mut RawEvent);

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum EventField {
    Id,
    Timestamp,
    Message,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a log event {id, timestamp, message}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let e = self.0;
        // Each of the three is required; the event's own time, never the
        // request's (pitfall 9).
        let (mut id, mut timestamp, mut message) = (false, false, false);
        while let Some(field) = map.next_key::<EventField>()? {
            match field {
                EventField::Id => {
                    map.next_value_seed(IdInto(&mut e.event_id))?;
                    id = true;
                }
                EventField::Timestamp => {
                    e.timestamp_ms = map.next_value::<i64>()?;
                    timestamp = true;
                }
                EventField::Message => {
                    map.next_value_seed(StrInto(&mut e.message))?;
                    message = true;
                }
                EventField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        for (have, name) in [(id, "id"), (timestamp, "timestamp"), (message, "message")] {
            if !have {
                return Err(de::Error::missing_field(name));
            }
        }
        Ok(())
    }
}

/// A JSON string, copied over `String`'s previous contents (no allocation
/// when its capacity suffices).
struct StrInto<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for StrInto<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for StrInto<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.clear();
        self.0.push_str(v);
        Ok(())
    }
}

/// An event id: a 56-digit string on AWS, a number in moto; kept as an
/// opaque string either way.
struct IdInto<'a>(&'a mut String);

impl<'de> DeserializeSeed<'de> for IdInto<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Visitor<'_> for IdInto<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event id (string or integer)")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.clear();
        self.0.push_str(v);
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        use std::fmt::Write as _;
        self.0.clear();
        let _ = write!(self.0, "{v}");
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        use std::fmt::Write as _;
        self.0.clear();
        let _ = write!(self.0, "{v}");
        Ok(())
    }
}

/// A hand-written reader for the same subscription messages as
/// [`MessageSeed`], for speed: one pass over the bytes that finds the
/// strings' ends and decodes their escapes straight into the event slots
/// (serde_json copies each escaped string into a scratch buffer, checks it
/// as UTF-8 again, and then it is copied into the slot). The payload is
/// checked as UTF-8 once, up front.
///
/// It only ever accepts what the serde path accepts, with the same result:
/// anything it is not sure of (invalid JSON, a missing field, a number that
/// is not a plain integer, an escaped key, a lone surrogate, deep nesting)
/// makes it give up (`None`), and the caller decodes the payload again with
/// [`MessageSeed`], which decides. So its only effect is speed.
pub struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    /// For values read only to be compared or skipped.
    junk: String,
}

/// Bytes that end a run of plain string content: the quote, the backslash
/// and the control characters (which JSON forbids raw in a string).
const fn string_stops() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}
static STRING_STOPS: [bool; 256] = string_stops();

/// The index of the first string stop ([`STRING_STOPS`]) at or after `i`,
/// or `b.len()`. Eight bytes at a time while none of them can be a stop
/// (the word tests may say "maybe" falsely, never "no" falsely; the byte
/// loop decides), since messages run long between escapes.
fn plain_run(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(w) = b.get(i..i + 8) {
        let Ok(w) = <[u8; 8]>::try_from(w) else {
            break;
        };
        let x = u64::from_le_bytes(w);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // A zero byte in `quote` or `backslash`, or a byte below 0x20 in `x`.
        let maybe = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        if maybe & HIGH != 0 {
            break;
        }
        i += 8;
    }
    while b.get(i).is_some_and(|&c| !STRING_STOPS[usize::from(c)]) {
        i += 1;
    }
    i
}

/// Nesting deeper than this in a skipped value makes the scanner give up
/// (serde_json's own limit is 128).
const MAX_SKIP_DEPTH: usize = 64;

impl<'a> Scanner<'a> {
    /// None if `payload` is not UTF-8 (the serde path then says why).
    pub fn new(payload: &'a [u8]) -> Option<Scanner<'a>> {
        let text = std::str::from_utf8(payload).ok()?;
        Some(Scanner {
            text,
            b: text.as_bytes(),
            pos: 0,
            junk: String::new(),
        })
    }

    /// Skips JSON whitespace; true if the input ends there.
    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.pos >= self.b.len()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Some(())
        } else {
            None
        }
    }

    /// After a member or element: `,` (true: another follows) or `close`.
    fn next_or_close(&mut self, close: u8) -> Option<bool> {
        self.ws();
        match self.peek()? {
            b',' => {
                self.pos += 1;
                self.ws();
                Some(true)
            }
            c if c == close => {
                self.pos += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// An object key without escapes, then the colon.
    fn key(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        let i = plain_run(self.b, start);
        if *self.b.get(i)? != b'"' {
            return None;
        }
        self.pos = i + 1;
        let key = self.text.get(start..i)?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(key)
    }

    /// A JSON string, unescaped over `dst`'s previous contents.
    fn string_into(&mut self, dst: &mut String) -> Option<()> {
        self.eat(b'"')?;
        dst.clear();
        // `seg`: where the text not yet copied starts; `from`: where to
        // look for the next stop.
        let mut seg = self.pos;
        let mut from = seg;
        loop {
            let i = plain_run(self.b, from);
            let stop = *self.b.get(i)?;
            dst.push_str(self.text.get(seg..i)?);
            match stop {
                b'"' => {
                    self.pos = i + 1;
                    return Some(());
                }
                // `\"`, `\\` and `\/` stand for the byte after the backslash:
                // it starts the next run instead of being pushed alone.
                b'\\' if matches!(self.b.get(i + 1), Some(b'"' | b'\\' | b'/')) => {
                    seg = i + 1;
                    from = i + 2;
                }
                b'\\' => {
                    seg = self.escape(i + 1, dst)?;
                    from = seg;
                }
                _ => return None, // a raw control character
            }
        }
    }

    /// The escape after a backslash at `i`, pushed to `dst`; returns the
    /// index after it.
    fn escape(&self, i: usize, dst: &mut String) -> Option<usize> {
        let c = match *self.b.get(i)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4(i + 1)?;
                if (0xd800..0xdc00).contains(&hi) {
                    // A surrogate pair, or give up.
                    if self.b.get(i + 5..i + 7)? != b"\\u" {
                        return None;
                    }
                    let lo = self.hex4(i + 7)?;
                    if !(0xdc00..0xe000).contains(&lo) {
                        return None;
                    }
                    let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                    dst.push(char::from_u32(c)?);
                    return Some(i + 11);
                }
                dst.push(char::from_u32(hi)?); // None for a lone low surrogate
                return Some(i + 5);
            }
            _ => return None,
        };
        dst.push(c);
        Some(i + 1)
    }

    fn hex4(&self, i: usize) -> Option<u32> {
        let h = self.text.get(i..i + 4)?;
        if !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(h, 16).ok()
    }

    /// A plain JSON integer that fits an i64: `-?(0|[1-9][0-9]*)`, not
    /// `-0`, not followed by a fraction or exponent.
    fn integer(&mut self) -> Option<i64> {
        let neg = self.peek()? == b'-';
        let start = self.pos + usize::from(neg);
        let mut i = start;
        let mut v: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.b.get(i) {
            v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || (digits > 1 && self.b[start] == b'0') || (neg && v == 0) {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.b.get(i) {
            return None;
        }
        let v = if neg {
            0i64.checked_sub_unsigned(v)?
        } else {
            i64::try_from(v).ok()?
        };
        self.pos = i;
        Some(v)
    }

    /// Skips one JSON value, checking its syntax.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_SKIP_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => {
                let mut junk = std::mem::take(&mut self.junk);
                let r = self.string_into(&mut junk);
                self.junk = junk;
                r
            }
            b'{' => {
                self.pos += 1;
                self.ws();
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                loop {
                    self.skip_value_key()?;
                    self.skip_value(depth + 1)?;
                    if !self.next_or_close(b'}')? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                self.ws();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    if !self.next_or_close(b']')? {
                        return Some(());
                    }
                }
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.skip_number(),
        }
    }

    /// A key of a skipped object (escapes allowed), then the colon.
    fn skip_value_key(&mut self) -> Option<()> {
        if self.peek()? != b'"' {
            return None;
        }
        self.skip_value(0)?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(())
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        if self.b.get(self.pos..self.pos + word.len())? == word.as_bytes() {
            self.pos += word.len();
            Some(())
        } else {
            None
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn skip_number(&mut self) -> Option<()> {
        let b = self.b;
        let mut i = self.pos;
        let digits = |mut i: usize| -> Option<usize> {
            let s = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            (i > s).then_some(i)
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        if b.get(i) == Some(&b'0') {
            i += 1;
        } else {
            i = digits(i)?;
        }
        if b.get(i) == Some(&b'.') {
            i = digits(i + 1)?;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            i = digits(i)?;
        }
        self.pos = i;
        Some(())
    }

    /// One subscription message (an object), as [`MessageSeed`] reads it:
    /// events appended to `events`, group and stream written, the type
    /// returned.
    pub fn message(
        &mut self,
        events: &mut EventBuf,
        group: &mut String,
        stream: &mut String,
    ) -> Option<MessageType> {
        self.ws();
        self.eat(b'{')?;
        group.clear();
        stream.clear();
        self.ws();
        let mut kind = None;
        if self.eat(b'}').is_some() {
            return None; // no messageType
        }
        loop {
            match self.key()? {
                "messageType" => {
                    let mut junk = std::mem::take(&mut self.junk);
                    let r = self.string_into(&mut junk);
                    kind = Some(match junk.as_str() {
                        "DATA_MESSAGE" => MessageType::Data,
                        "CONTROL_MESSAGE" => MessageType::Control,
                        _ => MessageType::Other,
                    });
                    self.junk = junk;
                    r?;
                }
                "logGroup" => self.string_into(group)?,
                "logStream" => self.string_into(stream)?,
                "logEvents" => self.events(events)?,
                _ => self.skip_value(1)?,
            }
            if !self.next_or_close(b'}')? {
                return kind;
            }
        }
    }

    fn events(&mut self, events: &mut EventBuf) -> Option<()> {
        self.eat(b'[')?;
        self.ws();
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.event(events.push_slot())?;
            if !self.next_or_close(b']')? {
                return Some(());
            }
        }
    }

    fn event(&mut self, e: &mut RawEvent) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        let (mut id, mut timestamp, mut message) = (false, false, false);
        if self.peek()? == b'}' {
            return None;
        }
        loop {
            match self.key()? {
                "id" => {
                    if self.peek()? == b'"' {
                        self.string_into(&mut e.event_id)?;
                    } else {
                        let v = self.integer()?;
                        e.event_id.clear();
                        e.event_id.push_str(itoa::Buffer::new().format(v));
                    }
                    id = true;
                }
                "timestamp" => {
                    e.timestamp_ms = self.integer()?;
                    timestamp = true;
                }
                "message" => {
                    self.string_into(&mut e.message)?;
                    message = true;
                }
                _ => self.skip_value(3)?,
            }
            if !self.next_or_close(b'}')? {
                return (id && timestamp && message).then_some(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses one message with the seed: (type, group, stream, events).
    fn parse(json: &str) -> Result<(MessageType, String, String, Vec<RawEvent>), String> {
        let mut events = EventBuf::default();
        let (mut group, mut stream) = (String::new(), String::new());
        let kind = MessageSeed {
            events: &mut events,
            group: &mut group,
            stream: &mut stream,
        }
        .deserialize(&mut serde_json::Deserializer::from_str(json))
        .map_err(|e| e.to_string())?;
        Ok((kind, group, stream, events.events().to_vec()))
    }

    #[test]
    fn event_id_is_a_string_or_a_number() {
        let cases = [
            (
                r#"{"id":"36914210591845216345678","timestamp":1,"message":"m"}"#,
                Some("36914210591845216345678"),
            ),
            (r#"{"id":17,"timestamp":1,"message":"m"}"#, Some("17")),
            (r#"{"id":-3,"timestamp":1,"message":"m"}"#, Some("-3")),
            (r#"{"id":1.5,"timestamp":1,"message":"m"}"#, None),
            (r#"{"id":null,"timestamp":1,"message":"m"}"#, None),
            (r#"{"timestamp":1,"message":"m"}"#, None),
            (r#"{"id":"a","message":"m"}"#, None),
            (r#"{"id":"a","timestamp":1}"#, None),
            (r#"{"id":"a","timestamp":"1","message":"m"}"#, None),
        ];
        for (event, want) in cases {
            let json = format!(r#"{{"messageType":"DATA_MESSAGE","logEvents":[{event}]}}"#);
            let got = parse(&json).ok().map(|(_, _, _, e)| e[0].event_id.clone());
            assert_eq!(got.as_deref(), want, "{event}");
        }
    }

    #[test]
    fn message_types() {
        for (t, want) in [
            ("DATA_MESSAGE", MessageType::Data),
            ("CONTROL_MESSAGE", MessageType::Control),
            ("SOMETHING_NEW", MessageType::Other),
        ] {
            let (kind, ..) = parse(&format!(r#"{{"messageType":"{t}","extra":[1]}}"#)).unwrap();
            assert_eq!(kind, want, "{t}");
        }
        assert!(
            parse(r#"{"logGroup":"/g"}"#).is_err(),
            "messageType is required"
        );
        assert!(parse(r#"[1]"#).is_err());
    }

    /// Keys in any order, unknown keys skipped, escapes decoded, and a
    /// reused slot holds exactly the new event (nothing left of the old).
    #[test]
    fn message_fields_in_any_order_into_reused_slots() {
        let json = r#"{"logEvents":[{"message":"{\"a\":\"\u00e9\\n\"}","extra":{"x":[1]},"timestamp":1700000000123,"id":"7"},{"id":8,"timestamp":-1,"message":""}],"owner":"1","logStream":"s-1/u","messageType":"DATA_MESSAGE","logGroup":"/aws/transfer/s-1"}"#;
        let (kind, group, stream, events) = parse(json).unwrap();
        assert_eq!(
            (kind, group.as_str(), stream.as_str()),
            (MessageType::Data, "/aws/transfer/s-1", "s-1/u")
        );
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].message, "{\"a\":\"\u{e9}\\n\"}");
        assert_eq!(
            (events[0].event_id.as_str(), events[0].timestamp_ms),
            ("7", 1_700_000_000_123)
        );
        assert_eq!(
            (
                events[1].event_id.as_str(),
                events[1].timestamp_ms,
                events[1].message.as_str()
            ),
            ("8", -1, "")
        );

        let mut buf = EventBuf::default();
        let (mut g, mut s) = (String::new(), String::new());
        for (json, id, msg) in [
            (
                r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":"long-id-1","timestamp":1,"message":"a long message first"}]}"#,
                "long-id-1",
                "a long message first",
            ),
            (
                r#"{"messageType":"DATA_MESSAGE","logEvents":[{"id":2,"timestamp":2,"message":"short"}]}"#,
                "2",
                "short",
            ),
        ] {
            buf.clear();
            MessageSeed {
                events: &mut buf,
                group: &mut g,
                stream: &mut s,
            }
            .deserialize(&mut serde_json::Deserializer::from_str(json))
            .unwrap();
            assert_eq!(buf.len(), 1);
            assert_eq!(
                (
                    buf.events()[0].event_id.as_str(),
                    buf.events()[0].message.as_str()
                ),
                (id, msg)
            );
        }
    }

    #[test]
    fn response_shape() {
        let r = FirehoseResponse {
            request_id: "abc".into(),
            timestamp: 1_700_000_000_123,
            error_message: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"requestId":"abc","timestamp":1700000000123}"#
        );
    }
}
