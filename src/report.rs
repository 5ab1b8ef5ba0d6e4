//! The `classify` command: read CloudWatch events from files or stdin, run
//! them through the same [`Pipeline`] the daemon uses, and print the cause
//! table, JSON Lines, or the Prometheus exposition.
//!
//! Accepted input, detected per input and read as a stream (constant memory
//! whatever the input size; files and stdin take the same path):
//! - JSON Lines, one event object per line (`logGroupName`, `logStreamName`,
//!   `timestamp`, `eventId`, `message`; only `message` is required);
//! - the JSON document printed by `aws logs filter-log-events` or
//!   `get-log-events` (`{"events":[…]}`), pretty-printed or on one line, one
//!   or several concatenated: its `events` array is deserialized one element
//!   at a time and never held whole.
//!
//! Invalid UTF-8 is replaced by U+FFFD as the bytes stream in, so one bad
//! byte costs at most the characters it stands for, never the input.
//! Lines that are not events are reported on stderr with their position and
//! skipped; the command fails only when nothing at all could be read.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use prometheus::Registry;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::cli::{ClassifyArgs, OutputFormat};
use crate::event::RawEvent;
use crate::metrics::{self, Limits, Metrics};
use crate::parse::scan;
use crate::pipeline::{Outcome, Pipeline, PipelineConfig};

// ---------------------------------------------------------------------------
// Reading: bytes -> UTF-8 -> lines or a streamed document -> RawEvent
// ---------------------------------------------------------------------------

/// Read buffer of an input. Large enough that a read costs one system call
/// per 64 KiB, small enough to be noise in the memory bound.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// Longest JSON Lines line kept in memory. A CloudWatch event is at most
/// 256 KiB (1 MiB per PutLogEvents batch), and JSON escaping can grow it a
/// few times; 8 MiB holds any real event with room to spare while bounding
/// memory on garbage without newlines. The first line of an input that is
/// longer is read as a stream instead (a one-line `{"events":[…]}` document
/// of any size); a later one is reported and skipped.
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

const REPLACEMENT_UTF8: &[u8] = "\u{FFFD}".as_bytes();

/// A reader that turns any byte stream into valid UTF-8: each invalid
/// sequence becomes U+FFFD (as `String::from_utf8_lossy` would do), a
/// character split across two reads is kept whole, and a truncated one at
/// the end of input is replaced. Memory: one chunk of the inner reader.
///
/// Valid input (nearly all of it) is not copied: the valid prefix of the
/// inner reader's buffer is handed out as it is, checked once; only a chunk
/// that starts with an invalid or split character goes through `out`.
pub struct LossyUtf8<R> {
    inner: R,
    out: Vec<u8>,
    pos: usize,
    /// Bytes at the front of the inner reader's buffer already checked and
    /// being handed out as they are.
    through: usize,
    /// Bytes of an incomplete character at the end of the last chunk.
    pending: Vec<u8>,
    /// Invalid sequences replaced so far.
    pub replaced: u64,
}

impl<R: BufRead> LossyUtf8<R> {
    pub fn new(inner: R) -> Self {
        LossyUtf8 {
            inner,
            out: Vec::new(),
            pos: 0,
            through: 0,
            pending: Vec::new(),
            replaced: 0,
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.pos = 0;
        // An empty chunk can only come from a valid-but-incomplete tail being
        // held back; loop until output or end of input.
        while self.out.is_empty() {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                if !self.pending.is_empty() {
                    self.pending.clear();
                    self.out.extend_from_slice(REPLACEMENT_UTF8);
                    self.replaced += 1;
                }
                return Ok(());
            }
            let n = chunk.len();
            if self.pending.is_empty() {
                if std::str::from_utf8(chunk).is_ok() {
                    self.out.extend_from_slice(chunk);
                } else {
                    let data = chunk.to_vec();
                    self.decode(&data);
                }
            } else {
                let mut data = std::mem::take(&mut self.pending);
                data.extend_from_slice(chunk);
                self.decode(&data);
            }
            self.inner.consume(n);
        }
        Ok(())
    }

    /// Appends `data` to `out`, replacing invalid sequences; an incomplete
    /// character at the very end goes to `pending`.
    fn decode(&mut self, mut data: &[u8]) {
        loop {
            match std::str::from_utf8(data) {
                Ok(s) => {
                    self.out.extend_from_slice(s.as_bytes());
                    return;
                }
                Err(e) => {
                    let (valid, rest) = data.split_at(e.valid_up_to());
                    self.out.extend_from_slice(valid);
                    match e.error_len() {
                        Some(bad) => {
                            self.out.extend_from_slice(REPLACEMENT_UTF8);
                            self.replaced += 1;
                            data = &rest[bad..];
                        }
                        None => {
                            self.pending.extend_from_slice(rest);
                            return;
                        }
                    }
                }
            }
        }
    }
}

impl<R: BufRead> Read for LossyUtf8<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for LossyUtf8<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.out.len() {
            if self.through == 0 && self.pending.is_empty() {
                let chunk = self.inner.fill_buf()?;
                self.through = match std::str::from_utf8(chunk) {
                    Ok(_) => chunk.len(),
                    Err(e) => e.valid_up_to(),
                };
            }
            if self.through > 0 {
                // Unchanged since it was checked: nothing was consumed past it.
                let chunk = self.inner.fill_buf()?;
                return Ok(&chunk[..self.through]);
            }
            self.refill()?;
        }
        Ok(&self.out[self.pos..])
    }

    fn consume(&mut self, amount: usize) {
        if self.pos < self.out.len() {
            self.pos = (self.pos + amount).min(self.out.len());
        } else {
            let n = amount.min(self.through);
            self.inner.consume(n);
            self.through -= n;
        }
    }
}

/// One event as the AWS CLI and CloudWatch APIs spell it (an element of a
/// document's `events` array).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CliEvent {
    #[serde(default)]
    log_group_name: Option<String>,
    #[serde(default)]
    log_stream_name: Option<String>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Keys of a top-level object: an event's fields, or a document's `events`.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum TopKey {
    LogGroupName,
    LogStreamName,
    Timestamp,
    EventId,
    Message,
    Events,
    #[serde(other)]
    Other,
}

/// Where events and input problems go while an input is read.
pub struct Sink<'f> {
    source: String,
    default_group: String,
    on_event: &'f mut dyn FnMut(&RawEvent) -> anyhow::Result<()>,
    on_problem: &'f mut dyn FnMut(String),
    /// Set when `on_event` failed (e.g. stdout closed); reading stops.
    failed: Option<anyhow::Error>,
    events: u64,
    /// The event being read by the fast path, its strings reused from one
    /// line to the next (no allocation per event in the steady state).
    scratch: RawEvent,
}

impl Sink<'_> {
    fn deliver(&mut self, e: CliEvent) -> Result<(), &'static str> {
        let Some(message) = e.message else {
            return Err("missing field `message`");
        };
        let raw = RawEvent {
            log_group: e
                .log_group_name
                .unwrap_or_else(|| self.default_group.clone()),
            log_stream: e.log_stream_name.unwrap_or_default(),
            event_id: e.event_id.unwrap_or_default(),
            timestamp_ms: e.timestamp.unwrap_or(0),
            message,
        };
        self.send(&raw)
    }

    fn send(&mut self, raw: &RawEvent) -> Result<(), &'static str> {
        self.events += 1;
        if let Err(err) = (self.on_event)(raw) {
            self.failed = Some(err);
            return Err(SINK_FAILED);
        }
        Ok(())
    }

    /// Reads one JSON Lines event with the scanner of [`crate::parse::scan`]
    /// into the scratch event and delivers it. `None` when the scanner
    /// declines the line or the line is anything but an event object with a
    /// `message` string whose fields all have the types [`CliEvent`] takes:
    /// the `serde` path then reads it, so what is delivered and what is
    /// reported never depends on which path read a line.
    fn fast_line(&mut self, line: &str) -> Option<Result<(), &'static str>> {
        let raw = &mut self.scratch;
        // Which of the string fields were set; `null` unsets, the last of
        // repeated keys wins (as `CliEvent` reads them).
        let mut set = [false; 4];
        let mut timestamp = None;
        scan::object(line, |key, value| {
            let (i, dst) = match key {
                "logGroupName" => (0, &mut raw.log_group),
                "logStreamName" => (1, &mut raw.log_stream),
                "eventId" => (2, &mut raw.event_id),
                "message" => (3, &mut raw.message),
                "timestamp" => {
                    timestamp = match value {
                        scan::Value::Int(t) => Some(t.parse::<i64>().ok()),
                        scan::Value::Null => None,
                        _ => return false,
                    };
                    return timestamp != Some(None);
                }
                "events" => return false,
                _ => return true,
            };
            dst.clear();
            set[i] = match value {
                scan::Value::Str(t) => {
                    dst.push_str(t);
                    true
                }
                scan::Value::Escaped(t) => {
                    if scan::unescape(t, dst).is_none() {
                        return false;
                    }
                    true
                }
                scan::Value::Null => false,
                _ => return false,
            };
            true
        })?;
        if !set[3] {
            return None;
        }
        for (i, dst) in [&mut raw.log_stream, &mut raw.event_id]
            .into_iter()
            .enumerate()
        {
            if !set[i + 1] {
                dst.clear();
            }
        }
        if !set[0] {
            raw.log_group.clear();
            raw.log_group.push_str(&self.default_group);
        }
        raw.timestamp_ms = timestamp.flatten().unwrap_or(0);
        let raw = std::mem::take(&mut self.scratch);
        let sent = self.send(&raw);
        self.scratch = raw;
        Some(sent)
    }

    fn problem(&mut self, p: String) {
        (self.on_problem)(p);
    }
}

/// Error text that stops deserialization when the sink failed; never shown
/// (the sink's own error is returned instead).
const SINK_FAILED: &str = "output failed";

/// Deserializes one top-level JSON value: an event object (delivered to
/// the sink) or a document whose `events` are delivered one by one.
struct TopSeed<'s, 'f>(&'s mut Sink<'f>);

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CloudWatch event object or the {\"events\": [...]} document")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut ev = CliEvent::default();
        let mut document = false;
        while let Some(key) = map.next_key::<TopKey>()? {
            match key {
                TopKey::LogGroupName => ev.log_group_name = map.next_value()?,
                TopKey::LogStreamName => ev.log_stream_name = map.next_value()?,
                TopKey::Timestamp => ev.timestamp = map.next_value()?,
                TopKey::EventId => ev.event_id = map.next_value()?,
                TopKey::Message => ev.message = map.next_value()?,
                TopKey::Events => {
                    document = true;
                    map.next_value_seed(EventsSeed(&mut *self.0))?;
                }
                TopKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if document {
            return Ok(());
        }
        self.0.deliver(ev).map_err(de::Error::custom)
    }
}

/// Streams a document's `events` array into the sink, element by element.
struct EventsSeed<'s, 'f>(&'s mut Sink<'f>);

impl<'de> DeserializeSeed<'de> for EventsSeed<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of CloudWatch events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while let Some(e) = seq.next_element::<CliEvent>()? {
            match self.0.deliver(e) {
                Ok(()) => {}
                Err(SINK_FAILED) => return Err(de::Error::custom(SINK_FAILED)),
                Err(why) => {
                    let p = format!(
                        "{}: events[{i}]: not a CloudWatch event ({why}); skipped",
                        self.0.source
                    );
                    self.0.problem(p);
                }
            }
            i += 1;
        }
        Ok(())
    }
}

fn not_an_event(source: &str, line: usize, err: &dyn fmt::Display) -> String {
    format!(
        "{source}:{line}: not a CloudWatch event object ({err}); expected JSON with a \"message\" string, or the output of `aws logs filter-log-events`"
    )
}

/// How the lines seen so far read.
#[derive(PartialEq)]
enum Mode {
    /// Nothing readable yet: the next non-blank line decides.
    Undecided,
    /// One JSON value per line.
    Lines,
}

/// Reads one input to its end, delivering every event to `on_event` in
/// input order and every problem to `on_problem`. Returns the number of
/// events delivered. Fails only if `on_event` fails or the input cannot be
/// read; bad content is a problem, never an error.
pub fn read_events(
    input: impl Read,
    source: &str,
    default_group: &str,
    on_event: &mut dyn FnMut(&RawEvent) -> anyhow::Result<()>,
    on_problem: &mut dyn FnMut(String),
) -> anyhow::Result<u64> {
    let mut sink = Sink {
        source: source.to_owned(),
        default_group: default_group.to_owned(),
        on_event,
        on_problem,
        failed: None,
        events: 0,
        scratch: RawEvent::default(),
    };
    let mut reader = LossyUtf8::new(BufReader::with_capacity(READ_BUFFER_BYTES, input));
    let mut buf: Vec<u8> = Vec::new();
    let mut line_no = 0usize;
    let mut mode = Mode::Undecided;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64)
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("reading {source}"))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let complete = buf.last() == Some(&b'\n');
        let too_long = !complete && n == MAX_LINE_BYTES;
        if line_no == 1 && buf.starts_with(b"\xEF\xBB\xBF") {
            buf.drain(..3);
        }
        // `LossyUtf8` only yields valid UTF-8 and `read_until` splits at an
        // ASCII byte, so this never fails.
        let text = std::str::from_utf8(&buf).expect("LossyUtf8 yields UTF-8");
        let line = text.trim();
        if line.is_empty() && !too_long {
            continue;
        }
        if too_long {
            if mode == Mode::Undecided {
                // A one-line document (or event) of any size: stream it.
                let head = std::mem::take(&mut buf);
                line_no = stream_values(head, &mut reader, line_no, &mut sink)?;
                mode = Mode::Lines;
                continue;
            }
            sink.problem(format!(
                "{source}:{line_no}: line longer than {} MiB skipped",
                MAX_LINE_BYTES / (1024 * 1024)
            ));
            reader
                .skip_until(b'\n')
                .with_context(|| format!("reading {source}"))?;
            continue;
        }
        // Nearly every line of JSON Lines: one event read by the scanner.
        match sink.fast_line(line) {
            Some(Ok(())) => {
                mode = Mode::Lines;
                continue;
            }
            Some(Err(_)) => {
                return Err(sink.failed.take().expect("the sink failed"));
            }
            None => {}
        }
        let mut de = serde_json::Deserializer::from_str(line);
        let parsed = TopSeed(&mut sink)
            .deserialize(&mut de)
            .and_then(|()| de.end());
        if let Some(e) = sink.failed.take() {
            return Err(e);
        }
        match parsed {
            Ok(()) => mode = Mode::Lines,
            Err(e) if e.is_eof() && mode == Mode::Undecided && line.starts_with('{') => {
                // The first value spans lines: a pretty-printed document.
                let head = std::mem::take(&mut buf);
                line_no = stream_values(head, &mut reader, line_no, &mut sink)?;
                mode = Mode::Lines;
            }
            Err(e) => sink.problem(not_an_event(source, line_no, &e)),
        }
    }
    Ok(sink.events)
}

/// Reads top-level JSON values (events or documents) as a stream, starting
/// with `head` (the line that began the first one, numbered `head_line`),
/// until the input ends or a value is broken. After a broken value the
/// rest of its line is skipped and reading goes on line by line. Returns the
/// number of the last line consumed.
fn stream_values<R: BufRead>(
    head: Vec<u8>,
    reader: &mut R,
    head_line: usize,
    sink: &mut Sink<'_>,
) -> anyhow::Result<usize> {
    let source = sink.source.clone();
    // No second buffer: serde_json takes bytes from `reader` one at a time
    // (it is buffered already), so after a broken value `reader` stands right
    // after it and line-by-line reading resumes there.
    let chained = io::Cursor::new(head).chain(&mut *reader);
    let mut de = serde_json::Deserializer::from_reader(chained);
    let broken = loop {
        if de.end().is_ok() {
            break None;
        }
        let r = TopSeed(&mut *sink).deserialize(&mut de);
        if let Some(e) = sink.failed.take() {
            return Err(e);
        }
        if let Err(e) = r {
            break Some(e);
        }
    };
    drop(de);
    match broken {
        None => Ok(head_line),
        Some(e) => {
            let line = head_line + e.line().saturating_sub(1);
            let p = not_an_event(&source, line, &e);
            sink.problem(format!(
                "{p}; the rest of that line was skipped and reading goes on line by line"
            ));
            if !e.is_eof() {
                reader
                    .skip_until(b'\n')
                    .with_context(|| format!("reading {source}"))?;
            }
            Ok(line)
        }
    }
}

// ---------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------

fn open_input(path: &std::path::Path) -> anyhow::Result<Box<dyn Read>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(io::stdin().lock()));
    }
    let f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Box::new(f))
}

pub fn run(args: &ClassifyArgs) -> anyhow::Result<ExitCode> {
    let default_group = args.log_group.clone().unwrap_or_default();
    let stdin_only = [std::path::PathBuf::from("-")];
    let paths: &[std::path::PathBuf] = if args.files.is_empty() {
        &stdin_only
    } else {
        &args.files
    };

    let registry = Registry::new();
    let metrics = Arc::new(Metrics::new(
        &registry,
        Limits {
            max_users_per_server: args.max_users_per_server,
            ..Limits::default()
        },
    ));
    let mut pipeline = Pipeline::new(
        metrics,
        PipelineConfig {
            recent_failures: 0,
            ..Default::default()
        },
    );

    let mut table = CauseTable::default();
    let mut unreadable = 0usize;
    let mut read_any = false;
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    for path in paths {
        let name = path.display().to_string();
        let input = match open_input(path) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("aws-transfer-exporter: {e:#}");
                unreadable += 1;
                continue;
            }
        };
        let mut on_event = |raw: &RawEvent| -> anyhow::Result<()> {
            let o = pipeline.process(raw);
            match args.output {
                OutputFormat::Jsonl => {
                    serde_json::to_writer(&mut out, &o).context("writing output")?;
                    out.write_all(b"\n").context("writing output")?;
                }
                OutputFormat::Table => table.add(&o),
                OutputFormat::Prometheus | OutputFormat::Openmetrics => {}
            }
            Ok(())
        };
        let mut problems = 0usize;
        let mut on_problem = |p: String| {
            eprintln!("aws-transfer-exporter: skipped {p}");
            problems += 1;
        };
        let read = read_events(input, &name, &default_group, &mut on_event, &mut on_problem);
        unreadable += problems;
        match read {
            Ok(n) => read_any |= n > 0,
            Err(e) if e.chain().any(|c| c.to_string() == "writing output") => return Err(e),
            Err(e) => {
                eprintln!("aws-transfer-exporter: {e:#}");
                unreadable += 1;
            }
        }
    }
    if !read_any {
        bail!(
            "no events could be read from {} ({unreadable} unreadable inputs or lines); \
             give the output of `aws logs filter-log-events` or JSON Lines with a \"message\" field",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    match args.output {
        OutputFormat::Jsonl => {}
        OutputFormat::Prometheus => out.write_all(metrics::render(&registry).as_bytes())?,
        OutputFormat::Openmetrics => {
            out.write_all(crate::web::encode::render_openmetrics(&registry).as_bytes())?
        }
        OutputFormat::Table => {
            let layout = if args.wide {
                Layout::Wide
            } else {
                Layout::Narrow
            };
            out.write_all(table.render(unreadable, layout).as_bytes())?
        }
    }
    out.flush().context("writing output")?;
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------
// The cause table
// ---------------------------------------------------------------------------

/// Distinct server and user names remembered per cause row. Only the first
/// few (in sort order) are printed and the rest counted, so keeping more
/// only makes the count exact; the cap keeps memory bounded when strangers'
/// names flood a cause (unknown users).
const MAX_NAMES_PER_ROW: usize = 256;

/// The smallest [`MAX_NAMES_PER_ROW`] distinct names seen, and whether
/// more were seen.
#[derive(Default)]
struct Names {
    set: std::collections::BTreeSet<String>,
    more: bool,
}

impl Names {
    fn insert(&mut self, name: &str) {
        // Names from the log go to a terminal: clean them by the label rule
        // (no escape sequences, no line breaks).
        let name = metrics::sanitize_label_value(name);
        if self.set.contains(&*name) {
            return;
        }
        if self.set.len() < MAX_NAMES_PER_ROW {
            self.set.insert(name.into_owned());
            return;
        }
        self.more = true;
        let largest = self.set.last().expect("full set is not empty");
        if *name < **largest {
            self.set.pop_last();
            self.set.insert(name.into_owned());
        }
    }

    /// The first `max` names joined with `sep`, then `+N` for the rest (`-`
    /// when none).
    fn list(&self, max: usize, sep: &str) -> String {
        let v: Vec<&str> = self.set.iter().map(String::as_str).take(max).collect();
        if v.is_empty() {
            return "-".into();
        }
        let mut s = v.join(sep);
        let more = self.set.len().saturating_sub(max);
        if more > 0 || self.more {
            s.push_str(sep);
            s.push_str(&format!("+{more}"));
            if self.more {
                s.push_str(" or more");
            }
        }
        s
    }
}

#[derive(Default)]
struct Row {
    count: u64,
    servers: Names,
    users: Names,
    advice: &'static str,
}

/// How the table is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// At most [`NARROW_WIDTH`] columns: one line per cause, with where it
    /// happened and the advice wrapped under it.
    Narrow,
    /// One line per cause with every column side by side (as wide as the
    /// longest advice, ~270 columns).
    Wide,
}

/// Width of the default layout: a normal terminal.
pub const NARROW_WIDTH: usize = 100;

/// The cause summary an operator reads, accumulated one outcome at a time
/// (memory bounded by the cause vocabulary, not by the number of events).
#[derive(Default)]
pub struct CauseTable {
    rows: BTreeMap<(&'static str, &'static str), Row>,
    parse_errors: BTreeMap<&'static str, u64>,
    events: u64,
    ok: u64,
}

impl CauseTable {
    pub fn add(&mut self, o: &Outcome<'_>) {
        self.events += 1;
        if let Some(e) = o.parse_error {
            *self.parse_errors.entry(e).or_default() += 1;
            return;
        }
        let (Some(category), Some(cause)) = (o.category, o.cause) else {
            self.ok += 1;
            return;
        };
        let row = self.rows.entry((category, cause)).or_default();
        row.count += 1;
        row.advice = o.advice.unwrap_or("");
        if let Some(s) = &o.server_id {
            row.servers.insert(s);
        }
        if let Some(u) = o.user.as_ref().filter(|u| !u.is_empty()) {
            row.users.insert(u);
        }
    }

    /// The table text; `unreadable_lines` input lines were not events.
    pub fn render(&self, unreadable_lines: usize, layout: Layout) -> String {
        let mut sorted: Vec<_> = self.rows.iter().collect();
        sorted.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));

        let failures: u64 = sorted.iter().map(|(_, r)| r.count).sum();
        let mut s = String::new();
        s.push_str(&format!(
            "{} events: {} failures, {} other events, {} unparseable\n\n",
            self.events,
            failures,
            self.ok,
            self.parse_errors.values().sum::<u64>()
        ));
        if sorted.is_empty() {
            s.push_str("No failures.\n");
        } else {
            match layout {
                Layout::Wide => wide(&mut s, &sorted),
                Layout::Narrow => narrow(&mut s, &sorted),
            }
        }
        if !self.parse_errors.is_empty() {
            let parts: Vec<String> = self
                .parse_errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!("\nunparseable messages: {}\n", parts.join(" ")));
        }
        if unreadable_lines > 0 {
            s.push_str(&format!(
                "input lines that were not events: {unreadable_lines} (see stderr)\n"
            ));
        }
        s
    }
}

type SortedRows<'a> = [(&'a (&'static str, &'static str), &'a Row)];

fn wide(s: &mut String, sorted: &SortedRows<'_>) {
    let cells: Vec<[String; 5]> = sorted
        .iter()
        .map(|((cat, cause), r)| {
            [
                r.count.to_string(),
                format!("{cat}/{cause}"),
                r.servers.list(2, ","),
                r.users.list(3, ","),
                r.advice.to_owned(),
            ]
        })
        .collect();
    let head = ["COUNT", "CAUSE", "SERVERS", "USERS", "ADVICE"];
    let mut w = head.map(str::len);
    for c in &cells {
        for i in 0..4 {
            w[i] = w[i].max(c[i].chars().count());
        }
    }
    let line = |c: [&str; 5]| {
        format!(
            "{:>w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}\n",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3]
        )
    };
    s.push_str(&line(head));
    for c in &cells {
        s.push_str(&line([&c[0], &c[1], &c[2], &c[3], &c[4]]));
    }
}

/// One block per cause, every line at most [`NARROW_WIDTH`] characters:
///
/// ```text
/// COUNT  CAUSE
///     3  iam/access_denied
///        servers: s-0123456789abcdef0, s-0fedcba9876543210   users: alice, carol, +1
///        The user's IAM role or session policy lacks S3 (or KMS, for SSE-KMS
///        uploads) permissions for this bucket/prefix: …
/// ```
fn narrow(s: &mut String, sorted: &SortedRows<'_>) {
    let count_w = sorted
        .iter()
        .map(|(_, r)| r.count.to_string().len())
        .max()
        .unwrap_or(0)
        .max("COUNT".len());
    let indent = " ".repeat(count_w + 2);
    s.push_str(&format!("{:>count_w$}  CAUSE\n", "COUNT"));
    for (i, ((cat, cause), r)) in sorted.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        let head = format!("{:>count_w$}  {cat}/{cause}", r.count);
        wrap_into(s, &head, &indent, NARROW_WIDTH);
        let place = format!(
            "{indent}servers: {}   users: {}",
            r.servers.list(2, ", "),
            r.users.list(3, ", ")
        );
        wrap_into(s, &place, &indent, NARROW_WIDTH);
        wrap_into(s, &format!("{indent}{}", r.advice), &indent, NARROW_WIDTH);
    }
}

/// Appends `text` (which starts with its own indentation) wrapped at spaces
/// to `width` characters; continuation lines start with `indent`. A word
/// longer than a line is cut.
fn wrap_into(out: &mut String, text: &str, indent: &str, width: usize) {
    if text.chars().count() <= width {
        out.push_str(text);
        out.push('\n');
        return;
    }
    let first_indent = text.len() - text.trim_start().len();
    let mut line = String::from(&text[..first_indent]);
    let mut line_len = first_indent;
    let mut fresh = true;
    for word in text[first_indent..].split(' ').filter(|w| !w.is_empty()) {
        let mut word = word;
        let wlen = word.chars().count();
        let sep = usize::from(!fresh);
        if line_len + sep + wlen > width && !fresh {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_owned();
            line_len = indent.len();
            fresh = true;
        }
        if !fresh {
            line.push(' ');
            line_len += 1;
        }
        // A word wider than a whole line: cut it.
        while line_len + word.chars().count() > width {
            let room = width.saturating_sub(line_len).max(1);
            let cut = word.char_indices().nth(room).map_or(word.len(), |(i, _)| i);
            line.push_str(&word[..cut]);
            out.push_str(&line);
            out.push('\n');
            word = &word[cut..];
            line = indent.to_owned();
            line_len = indent.len();
        }
        line.push_str(word);
        line_len += word.chars().count();
        fresh = false;
    }
    out.push_str(&line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    fn lossy(bytes: &[u8], chunk: usize) -> (String, u64) {
        // A reader that hands out `chunk` bytes at a time, to split
        // characters across reads.
        struct Chunky<'a>(&'a [u8], usize);
        impl Read for Chunky<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = LossyUtf8::new(BufReader::with_capacity(chunk, Chunky(bytes, chunk)));
        let mut s = String::new();
        r.read_to_string(&mut s).expect("valid UTF-8 out");
        (s, r.replaced)
    }

    /// The adapter agrees with `String::from_utf8_lossy` whatever the chunk
    /// boundaries.
    #[test]
    fn lossy_utf8_matches_from_utf8_lossy_at_every_chunk_size() {
        let cases: &[&[u8]] = &[
            b"plain ascii\n",
            "caf\u{e9} \u{1F600} \u{FFFD}\n".as_bytes(),
            b"bad \xff byte\n",
            b"truncated \xe2\x82",
            b"\xf0\x9f\x98 cut emoji then ok \xf0\x9f\x98\x80\n",
            b"\xc0\xaf overlong, \xed\xa0\x80 surrogate\n",
            b"",
        ];
        for bytes in cases {
            let want = String::from_utf8_lossy(bytes);
            for chunk in 1..=8 {
                let (got, _) = lossy(bytes, chunk);
                assert_eq!(got, want, "input {bytes:?}, chunk {chunk}");
            }
        }
        assert_eq!(lossy(b"a\xffb\xfe", 3).1, 2);
    }

    fn read_all(input: &str) -> (Vec<RawEvent>, Vec<String>) {
        let mut events = Vec::new();
        let mut problems = Vec::new();
        read_events(
            input.as_bytes(),
            "in",
            "/g",
            &mut |e| {
                events.push(e.clone());
                Ok(())
            },
            &mut |p| problems.push(p),
        )
        .expect("read");
        (events, problems)
    }

    /// Every accepted shape, read as a stream.
    #[test]
    fn reads_json_lines_and_documents_in_every_layout() {
        let doc = r#"{"events":[{"logStreamName":"a","message":"m1","eventId":"1","timestamp":5,"ingestionTime":6},{"message":"m2"}],"searchedLogStreams":[],"nextToken":"x"}"#;
        let pretty =
            serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(doc).unwrap())
                .unwrap();
        let cases: Vec<(&str, String, Vec<&str>, usize)> = vec![
            ("jsonl", "{\"message\":\"m1\"}\n\n{\"message\":\"m2\"}".into(), vec!["m1", "m2"], 0),
            ("jsonl crlf", "{\"message\":\"m1\"}\r\n{\"message\":\"m2\"}\r\n".into(), vec!["m1", "m2"], 0),
            ("compact document", doc.into(), vec!["m1", "m2"], 0),
            ("pretty document", pretty.clone(), vec!["m1", "m2"], 0),
            ("two pretty documents", format!("{pretty}\n{pretty}\n"), vec!["m1", "m2", "m1", "m2"], 0),
            ("bom", format!("\u{feff}{doc}"), vec!["m1", "m2"], 0),
            ("bad line among good", "{\"message\":\"m1\"}\nnot json\n{\"nomessage\":1}\n{\"message\":\"m2\"}".into(), vec!["m1", "m2"], 2),
            ("document element without message", r#"{"events":[{"eventId":"1"},{"message":"m2"}]}"#.into(), vec!["m2"], 1),
            ("broken pretty document, then lines", "{\n \"events\": [\n  {\"message\":\"m1\"},\n  {\"message\" 5}\n]}\n{\"message\":\"m2\"}\n".into(), vec!["m1", "m2"], 2),
        ];
        for (name, input, want, want_problems) in cases {
            let (events, problems) = read_all(&input);
            let got: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
            assert_eq!(got, want, "{name}: {input}\nproblems: {problems:?}");
            assert_eq!(problems.len(), want_problems, "{name}: {problems:?}");
        }
        let (events, _) = read_all(doc);
        assert_eq!(events[0].log_stream, "a");
        assert_eq!(events[0].event_id, "1");
        assert_eq!(events[0].timestamp_ms, 5);
        assert_eq!(events[0].log_group, "/g", "default group");
    }

    /// What each path makes of one JSON Lines line: the event delivered,
    /// or `None` (a problem for the serde path, a decline for the scanner).
    fn both_paths(line: &str) -> (Option<RawEvent>, Option<RawEvent>) {
        let mut got = Vec::new();
        let mut on_event = |e: &RawEvent| {
            got.push(e.clone());
            Ok(())
        };
        let mut on_problem = |_| {};
        let mut sink = Sink {
            source: "in".into(),
            default_group: "/g".into(),
            on_event: &mut on_event,
            on_problem: &mut on_problem,
            failed: None,
            events: 0,
            // Left over from an earlier line: must not leak into this one.
            scratch: RawEvent {
                log_group: "old".into(),
                log_stream: "old".into(),
                event_id: "old".into(),
                timestamp_ms: 9,
                message: "old".into(),
            },
        };
        let fast = sink.fast_line(line).map(|r| r.expect("delivered"));
        let mut de = serde_json::Deserializer::from_str(line);
        let slow = TopSeed(&mut sink)
            .deserialize(&mut de)
            .and_then(|()| de.end());
        drop(sink);
        let fast_event = fast.map(|()| got[0].clone());
        let slow_event = slow.ok().and(got.last().cloned());
        (fast_event, slow_event)
    }

    #[test]
    fn fast_line_reads_what_serde_reads() {
        let cases = [
            r#"{"logGroupName":"/aws/transfer/s-1","logStreamName":"ERRORS","eventId":"7","timestamp":1764000000000,"message":"{\"a\":\"b\"}","ingestionTime":5}"#,
            r#"{"message":"m"}"#,
            r#"{"message":"caf\u00e9 \ud83d\ude00","logGroupName":null,"timestamp":null}"#,
            r#"{"message":"a","message":"b","logStreamName":"s","logStreamName":null}"#,
            r#"{"timestamp":1,"timestamp":2,"message":"m","x":{"events":[1]}}"#,
            r#"{"timestamp":-5,"message":"m"}"#,
            r#"{"timestamp":99999999999999999999,"message":"m"}"#,
            r#"{"timestamp":1.5,"message":"m"}"#,
            r#"{"timestamp":"1","message":"m"}"#,
            r#"{"message":5}"#,
            r#"{"message":null}"#,
            r#"{"eventId":"1"}"#,
            r#"{"message":"lone \ud800"}"#,
            r#"{"events":[{"message":"m"}]}"#,
            r#"{"message":"m"} "#,
            r#"{"message":"m"}x"#,
            r#"{"message":"m""#,
        ];
        for line in cases {
            let (fast, slow) = both_paths(line);
            if fast.is_some() {
                assert_eq!(fast, slow, "line: {line}");
            }
        }
        let (fast, _) = both_paths(cases[0]);
        assert!(fast.is_some(), "the usual line takes the fast path");
    }

    proptest::proptest! {
        /// Event objects with any keys of the wrapper, repeated, with any
        /// value types: wherever the scanner answers, it reads what serde does.
        #[test]
        fn arbitrary_event_lines_read_the_same_on_both_paths(
            fields in proptest::collection::vec((
                proptest::sample::select(vec!["logGroupName", "logStreamName", "eventId", "timestamp", "message", "ingestionTime", "events"]),
                proptest::prop_oneof![
                    proptest::prelude::any::<String>().prop_map(serde_json::Value::from),
                    proptest::prelude::any::<i64>().prop_map(serde_json::Value::from),
                    proptest::prelude::any::<u64>().prop_map(serde_json::Value::from),
                    proptest::prelude::any::<f64>().prop_map(|f| serde_json::json!(f)),
                    proptest::prelude::Just(serde_json::Value::Null),
                    proptest::prelude::Just(serde_json::json!([{"message": "m"}])),
                ]), 0..7)) {
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{}", serde_json::json!(k), v))
                .collect();
            let line = format!("{{{}}}", body.join(","));
            let (fast, slow) = both_paths(&line);
            if fast.is_some() {
                proptest::prop_assert_eq!(fast, slow, "line: {}", line);
            }
        }
    }

    #[test]
    fn problems_name_the_line() {
        let (_, problems) = read_all("{\"message\":\"a\"}\n\nnope\n");
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("in:3: not a CloudWatch event object"),
            "{problems:?}"
        );
    }

    #[test]
    fn wrap_keeps_every_line_within_width_and_every_word() {
        let long = format!("{} {}", "word ".repeat(40), "x".repeat(250));
        let mut out = String::new();
        wrap_into(&mut out, &format!("       {long}"), "       ", 100);
        for l in out.lines() {
            assert!(l.chars().count() <= 100, "{l:?}");
            assert!(l.starts_with("       "), "{l:?}");
        }
        let words: String = out.split_whitespace().collect();
        assert_eq!(words, long.split_whitespace().collect::<String>());
    }

    #[test]
    fn names_keep_the_smallest_and_count_the_rest() {
        let mut n = Names::default();
        for i in (0..1000).rev() {
            n.insert(&format!("u{i:04}"));
        }
        assert_eq!(n.set.len(), MAX_NAMES_PER_ROW);
        assert_eq!(n.list(3, ","), "u0000,u0001,u0002,+253 or more");
        let mut few = Names::default();
        for u in ["b", "a", "c", "a", "d"] {
            few.insert(u);
        }
        assert_eq!(few.list(3, ","), "a,b,c,+1");
        assert_eq!(Names::default().list(3, ","), "-");
    }
}
